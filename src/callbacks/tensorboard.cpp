#include <trainscope/callbacks/tensorboard.h>
#include <trainscope/models/model.h>
#include <trainscope/track/run.h>
#include <trainscope/track/tensorboard.h>
#include <trainscope/train/metrics.h>

#include <cmath>

namespace trainscope::callbacks {
namespace {

// [min, max, num, sum, sum_squares, count_0 .. count_{B-1}] of `t`, on t's device, no host sync.
// Non-finite entries are counted in the first bucket and left out of min and max (a broken run
// still gets a histogram; the loss curve and the diagnostics say what went wrong).
torch::Tensor histogram_row(const torch::Tensor& t, int buckets) {
  auto x = t.detach().flatten().to(torch::kFloat64);
  auto finite = torch::isfinite(x);
  auto xf = torch::where(finite, x, torch::zeros_like(x));
  auto mn = xf.min();
  auto mx = xf.max();
  auto width = ((mx - mn) / buckets).clamp_min(1e-300);
  // Bucket i holds (limit[i-1], limit[i]], as TensorBoard reads it; the minimum goes to bucket 0.
  auto idx = (((xf - mn) / width).ceil() - 1).clamp(0, buckets - 1).to(torch::kLong);
  auto counts = torch::bincount(idx, {}, buckets).to(torch::kFloat64);
  auto n = torch::full({}, static_cast<double>(x.numel()), x.options());
  return torch::cat({torch::stack({mn, mx, n, xf.sum(), (xf * xf).sum()}), counts});
}

track::Histogram histogram_from_row(const double* row, int buckets) {
  track::Histogram h;
  h.min = row[0], h.max = row[1], h.num = row[2], h.sum = row[3], h.sum_squares = row[4];
  const double width = (h.max - h.min) / buckets;
  for (int i = 0; i < buckets; ++i) {
    h.bucket_limit.push_back(i + 1 == buckets ? h.max : h.min + width * (i + 1));
    h.bucket.push_back(row[5 + i]);
  }
  return h;
}

std::string markdown_cell(const std::string& s) {
  std::string out;
  for (char c : s) {
    if (c == '|')
      out += "\\|";
    else if (c == '\n')
      out += ' ';
    else
      out += c;
  }
  return out;
}

}  // namespace

TensorBoardLogger::TensorBoardLogger(int64_t log_every, std::optional<Config> settings,
                                     int histogram_buckets)
    : log_every_(std::max<int64_t>(log_every, 1)),
      settings_(std::move(settings)),
      buckets_(std::max(histogram_buckets, 1)) {}

TensorBoardLogger::~TensorBoardLogger() = default;

void TensorBoardLogger::on_fit_start(TrainState& state) {
  if (!state.run) return;
  writer_ = std::make_unique<track::EventWriter>(state.run->dir());
  last_flush_ = std::chrono::steady_clock::now();
  // A resumed fit rewrites the steps after its checkpoint: TensorBoard drops the old file's
  // events from the first of them on.
  if (state.resumed) writer_->add_session_start(state.resumed->step + 1, track::wall_time_now());
  if (settings_) {
    std::string text = "| key | value | source | reason |\n|---|---|---|---|\n";
    for (const auto& s : settings_->settings())
      text += "| " + markdown_cell(s.key) + " | " + markdown_cell(to_toml_literal(s.value)) +
              " | " + markdown_cell(s.source) + " | " + markdown_cell(s.reason) + " |\n";
    writer_->add_text("config", text, state.global_step, track::wall_time_now());
  }
  writer_->flush();
}

void TensorBoardLogger::on_train_batch_end(TrainState& state) {
  if (!writer_) return;
  const double now = track::wall_time_now();
  // The lr of every step (no host sync); the loss every log_every steps.
  if (state.optimizer != nullptr) {
    const auto& groups = state.optimizer->param_groups();
    for (size_t i = 0; i < groups.size(); ++i)
      writer_->add_scalar(i == 0 ? "train/lr" : "train/lr/group" + std::to_string(i),
                          groups[i].options().get_lr(), state.global_step, now);
  }
  if (state.global_step % log_every_ != 0) return;
  writer_->add_scalar("train/step_loss", state.loss.item<double>(), state.global_step, now);
  if (std::chrono::steady_clock::now() - last_flush_ > std::chrono::seconds(2)) {
    writer_->flush();
    last_flush_ = std::chrono::steady_clock::now();
  }
}

void TensorBoardLogger::on_epoch_end(TrainState& state) {
  if (!writer_) return;
  const double now = track::wall_time_now();
  for (const auto& [tag, value] : state.train_metrics)
    writer_->add_scalar("train/" + tag, value, state.global_step, now);
  for (const auto& [tag, value] : state.val_metrics)
    writer_->add_scalar("val/" + tag, value, state.global_step, now);
  if (state.model != nullptr) {
    torch::NoGradGuard no_grad;
    std::vector<std::string> tags;
    std::vector<torch::Tensor> rows;
    for (const auto& item : state.model->module().named_parameters()) {
      const torch::Tensor& p = item.value();
      if (p.numel() == 0) continue;
      tags.push_back("weights/" + item.key());
      rows.push_back(histogram_row(p, buckets_));
      if (p.grad().defined()) {
        tags.push_back("grads/" + item.key());
        rows.push_back(histogram_row(p.grad(), buckets_));
      }
    }
    if (!rows.empty()) {
      // One device-to-host copy per epoch for all histograms.
      auto all = torch::stack(rows).to(torch::kCPU).contiguous();
      const double* data = all.data_ptr<double>();
      const int64_t width = all.size(1);
      for (size_t i = 0; i < tags.size(); ++i)
        writer_->add_histogram(tags[i], histogram_from_row(data + i * width, buckets_),
                               state.global_step, now);
    }
  }
  writer_->flush();
  last_flush_ = std::chrono::steady_clock::now();
}

void TensorBoardLogger::on_fit_end(TrainState& state) {
  if (writer_) writer_->flush();
}

void TensorBoardLogger::on_test_end(TrainState& state, const EvalResult& result) {
  if (!writer_) return;
  const double now = track::wall_time_now();
  for (const auto& [tag, value] : result.metrics)
    writer_->add_scalar(result.split + "/" + tag, value, state.global_step, now);
  writer_->flush();
}

}  // namespace trainscope::callbacks
