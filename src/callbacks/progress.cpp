#include <trainscope/track/archive.h>
#include <trainscope/callbacks/progress.h>
#include <trainscope/models/model.h>
#include <trainscope/track/run.h>
#include <trainscope/train/metrics.h>

#include <unistd.h>

#include <cmath>
#include <cstring>
#include <algorithm>
#include <vector>
#include <sstream>
#include <string>

namespace trainscope::callbacks {
namespace {

std::string duration(double seconds) {
  char buf[32];
  const int s = static_cast<int>(std::lround(std::max(0.0, seconds)));
  if (s >= 3600)
    std::snprintf(buf, sizeof buf, "%d:%02d:%02d", s / 3600, s / 60 % 60, s % 60);
  else
    std::snprintf(buf, sizeof buf, "%d:%02d", s / 60, s % 60);
  return buf;
}

std::string metrics_text(const MetricMap& m) {
  std::ostringstream o;
  o.precision(4);
  o << std::fixed;
  bool first = true;
  const std::vector<std::string> first_tags = {"loss", "accuracy", "mae", "rmse"};
  for (const auto& tag : first_tags) {
    auto it = m.find(tag);
    if (it == m.end()) continue;
    o << (first ? "" : " ") << (tag == "accuracy" ? "acc" : tag) << " " << it->second;
    first = false;
  }
  // Then the metrics the fit asked for (train.metrics), by name; not the loader's bookkeeping.
  for (const auto& [tag, value] : m)
    if (std::find(first_tags.begin(), first_tags.end(), tag) == first_tags.end() &&
        tag != "data_wait_fraction")
      o << (first ? "" : " ") << tag << " " << value, first = false;
  return o.str();
}

}  // namespace

ProgressStyle progress_style_from(const std::string& text, std::FILE* out) {
  if (text == "bar") return ProgressStyle::kBar;
  if (text == "plain") return ProgressStyle::kPlain;
  if (text == "off") return ProgressStyle::kOff;
  return isatty(fileno(out)) ? ProgressStyle::kBar : ProgressStyle::kPlain;
}

void ProgressPrinter::on_fit_start(TrainState& state) {
  has_best_ = false;
  if (style_ == ProgressStyle::kOff) return;
  if (settings_) {
    std::ostringstream o;
    settings_->print_defaults(o);
    std::fprintf(out_, "settings (value, then why):\n%s", o.str().c_str());
  }
  if (state.run) std::fprintf(out_, "run: %s\n", state.run->dir().c_str());
  if (state.resumed && state.resumed->file.empty()) {
    std::fprintf(out_, "no usable checkpoint: starting over from epoch 1\n");
  } else if (state.resumed) {
    const ResumePoint& r = *state.resumed;
    std::fprintf(out_, "resuming from %s: %s (step %lld)\n", r.file.filename().c_str(),
                 r.epoch_complete ? ("after epoch " + std::to_string(r.epoch)).c_str()
                                  : ("epoch " + std::to_string(r.epoch) + ", batch " +
                                     std::to_string(r.batches) + " of " +
                                     std::to_string(state.batches_per_epoch))
                                        .c_str(),
                 static_cast<long long>(r.step));
  }
  std::fprintf(out_, "training %s for up to %lld epochs of %lld batches\n",
               state.model ? state.model->name().c_str() : "model",
               static_cast<long long>(state.max_epochs),
               static_cast<long long>(state.batches_per_epoch));
  std::fflush(out_);
}

void ProgressPrinter::on_epoch_start(TrainState&) {
  epoch_start_ = last_draw_ = std::chrono::steady_clock::now();
  samples_ = 0;
}

void ProgressPrinter::on_train_batch_end(TrainState& state) {
  samples_ += state.batch_size;
  if (style_ != ProgressStyle::kBar) return;
  const auto now = std::chrono::steady_clock::now();
  if (now - last_draw_ < std::chrono::milliseconds(100)) return;
  last_draw_ = now;
  draw_bar(state, false);
}

void ProgressPrinter::draw_bar(TrainState& state, bool final) {
  const double elapsed =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - epoch_start_).count();
  const int64_t done = state.batch_in_epoch + 1,
                total = std::max<int64_t>(1, state.batches_per_epoch);
  const double rate = elapsed > 0 ? samples_ / elapsed : 0.0;
  const double eta = done > 0 ? elapsed / done * (total - done) : 0.0;
  constexpr int kWidth = 24;
  const int filled = static_cast<int>(kWidth * std::min<int64_t>(done, total) / total);
  std::string bar = std::string(filled, '#') + std::string(kWidth - filled, '.');
  // Host sync: only when the bar is redrawn.
  const float loss = state.loss.defined() ? state.loss.item<float>() : 0.0f;
  std::fprintf(out_, "\r\033[2Kepoch %lld/%lld [%s] %lld/%lld  %.0f samples/s  ETA %s  loss %.4f%s",
               static_cast<long long>(state.epoch), static_cast<long long>(state.max_epochs),
               bar.c_str(), static_cast<long long>(std::min(done, total)),
               static_cast<long long>(total), rate, duration(eta).c_str(), loss, final ? "\n" : "");
  std::fflush(out_);
}

void ProgressPrinter::on_epoch_end(TrainState& state) {
  if (style_ == ProgressStyle::kOff) return;
  if (style_ == ProgressStyle::kBar) std::fprintf(out_, "\r\033[2K");
  if (state.feature_cache != feature_cache_) {
    feature_cache_ = state.feature_cache;
    std::fprintf(out_, "epoch %lld: %s\n", static_cast<long long>(state.epoch),
                 feature_cache_.c_str());
  }
  const double elapsed =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - epoch_start_).count();
  std::string line = "epoch " + std::to_string(state.epoch) + "/" +
                     std::to_string(state.max_epochs) + "  train " +
                     metrics_text(state.train_metrics);
  auto val = state.val_metrics.find("loss");
  if (val != state.val_metrics.end()) {
    line += " | val " + metrics_text(state.val_metrics);
    if (!has_best_ || val->second < best_val_) {
      best_val_ = val->second;
      has_best_ = true;
      line += " *";
    }
  }
  char tail[128];
  std::snprintf(tail, sizeof tail, " | %.1f s, %.0f samples/s%s", elapsed,
                elapsed > 0 ? samples_ / elapsed : 0.0,
                state.features_cached ? " (head on cached features)" : "");
  // The time and rate of a resumed epoch cover only the batches after the resume.
  if (state.resumed && !state.resumed->file.empty() && !state.resumed->epoch_complete &&
      state.resumed->epoch == state.epoch)
    std::snprintf(tail + std::strlen(tail), sizeof tail - std::strlen(tail),
                  " (resumed at batch %lld)", static_cast<long long>(state.resumed->batches + 1));
  std::fprintf(out_, "%s%s\n", line.c_str(), tail);
  std::fflush(out_);
}

void ProgressPrinter::on_fit_end(TrainState& state) {
  if (style_ == ProgressStyle::kOff) return;
  const double total =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - state.fit_start).count();
  std::fprintf(out_, "fit stopped: %s (%s) after %lld epochs in %s\n", state.stop_message.c_str(),
               to_string(state.stop_reason), static_cast<long long>(state.epoch),
               duration(total).c_str());
  std::fflush(out_);
}

void ProgressPrinter::on_checkpoint_save(TrainState&, torch::serialize::OutputArchive& archive) {
  archive.write("best_val", c10::IValue(best_val_));
  archive.write("has_best", c10::IValue(has_best_));
}

void ProgressPrinter::on_checkpoint_load(TrainState&, torch::serialize::InputArchive& archive) {
  best_val_ = read_double(archive, "best_val");
  has_best_ = read_bool(archive, "has_best");
}

void ProgressPrinter::on_test_end(TrainState&, const EvalResult& result) {
  if (style_ == ProgressStyle::kOff) return;
  std::fprintf(out_, "\n%s", result.report().c_str());
  std::fprintf(out_, "%s: %s (%lld examples)\n", result.split.c_str(),
               metrics_text(result.metrics).c_str(), static_cast<long long>(result.samples));
  std::fflush(out_);
}

}  // namespace trainscope::callbacks
