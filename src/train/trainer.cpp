#include <trainscope/callbacks/defaults.h>
#include <trainscope/data/loader.h>
#include <trainscope/data/transforms.h>
#include <trainscope/error.h>
#include <trainscope/track/run.h>
#include <trainscope/train/trainer.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <csignal>
#include <cmath>
#include <sstream>

namespace trainscope {

const char* to_string(StopReason reason) {
  switch (reason) {
    case StopReason::kNone:
      return "none";
    case StopReason::kMaxEpochs:
      return "max_epochs";
    case StopReason::kPatience:
      return "patience";
    case StopReason::kNonFinite:
      return "non_finite";
    case StopReason::kUserCallback:
      return "callback";
    case StopReason::kDiagnosis:
      return "diagnosis";
    case StopReason::kInterrupted:
      return "interrupted";
    case StopReason::kException:
      return "exception";
  }
  return "unknown";
}

double current_lr(const TrainState& state) {
  if (state.optimizer == nullptr || state.optimizer->param_groups().empty()) return std::nan("");
  return state.optimizer->param_groups().front().options().get_lr();
}

void TrainState::request_stop(StopReason reason, std::string message) {
  if (stop_reason != StopReason::kNone) return;
  stop_reason = reason;
  stop_message = std::move(message);
}

void TrainerOptions::validate() const {
  auto fail = [](const std::string& field, const std::string& value, const std::string& expected) {
    throw ConfigError("TrainerOptions." + field + " = " + value + " is out of range; expected " +
                      expected);
  };
  if (!(std::isfinite(lr_) && lr_ > 0))
    fail("lr", std::to_string(lr_), "a positive number such as 0.001");
  if (max_epochs_ < 1) fail("max_epochs", std::to_string(max_epochs_), "a positive integer");
  if (batch_size_ < 1)
    fail("batch_size", std::to_string(batch_size_), "a positive integer such as 128");
  if (eval_batch_size_ < 1)
    fail("eval_batch_size", std::to_string(eval_batch_size_), "a positive integer");
  if (log_every_ < 1) fail("log_every", std::to_string(log_every_), "a positive integer");
  if (diagnose_every_ < 0)
    fail("diagnose_every", std::to_string(diagnose_every_), ">= 0 (0: log_every)");
  if (patience_ < 0) fail("patience", std::to_string(patience_), ">= 0");
  if (!(weight_decay_ >= 0)) fail("weight_decay", std::to_string(weight_decay_), ">= 0");
  if (optimizer_ != "adam" && optimizer_ != "adamw" && optimizer_ != "sgd")
    fail("optimizer", "\"" + optimizer_ + "\"", "adam, adamw or sgd");
  if (loss_ != "auto" && loss_ != "cross_entropy" && loss_ != "mse")
    fail("loss", "\"" + loss_ + "\"", "auto, cross_entropy or mse");
  if (progress_ != "auto" && progress_ != "bar" && progress_ != "plain" && progress_ != "off")
    fail("progress", "\"" + progress_ + "\"", "auto, bar, plain or off");
}

namespace {

// SIGINT asks the running fit to stop after the current batch; a second SIGINT kills as usual.
std::atomic<bool> g_interrupted{false};
extern "C" void on_sigint(int) {
  g_interrupted.store(true);
  std::signal(SIGINT, SIG_DFL);
}

class InterruptGuard {
 public:
  InterruptGuard() : previous_(std::signal(SIGINT, on_sigint)) { g_interrupted.store(false); }
  ~InterruptGuard() { std::signal(SIGINT, previous_); }
  InterruptGuard(const InterruptGuard&) = delete;
  InterruptGuard& operator=(const InterruptGuard&) = delete;

 private:
  void (*previous_)(int);
};

std::unique_ptr<torch::optim::Optimizer> make_optimizer(const TrainerOptions& o,
                                                        const Model& model) {
  auto params = model.parameters();
  if (o.optimizer() == "adamw")
    return std::make_unique<torch::optim::AdamW>(
        params, torch::optim::AdamWOptions(o.lr()).weight_decay(o.weight_decay()));
  if (o.optimizer() == "sgd")
    return std::make_unique<torch::optim::SGD>(
        params, torch::optim::SGDOptions(o.lr()).momentum(0.9).weight_decay(o.weight_decay()));
  return std::make_unique<torch::optim::Adam>(
      params, torch::optim::AdamOptions(o.lr()).weight_decay(o.weight_decay()));
}

// The options as settings, for runs started from the library without a Config.
Config config_from(const TrainerOptions& o) {
  Config c = Config::defaults();
  auto put = [&](const std::string& key, ConfigValue v) {
    if (to_toml_literal(c.setting(key).value) != to_toml_literal(v))
      c.set(key, std::move(v), "library");
  };
  put("train.task",
      std::string(o.task() == Task::kClassification ? "classification" : "regression"));
  put("train.max_epochs", o.max_epochs());
  put("train.optimizer", o.optimizer());
  put("train.lr", o.lr());
  put("train.weight_decay", o.weight_decay());
  put("train.loss", o.loss());
  put("train.batch_size", std::to_string(o.batch_size()));
  put("train.eval_batch_size", o.eval_batch_size());
  put("train.seed", static_cast<int64_t>(o.seed()));
  put("train.log_every", o.log_every());
  put("train.early_stopping", o.early_stopping());
  put("train.patience", o.patience());
  put("train.min_delta", o.min_delta());
  put("train.restore_best", o.restore_best());
  put("train.checkpoints", o.checkpoints());
  put("data.workers", o.loader_workers());
  put("diagnose.enabled", o.diagnostics());
  put("diagnose.every", o.diagnose_every());
  put("diagnose.activations", o.diagnose_activations());
  put("diagnose.auto_remedy", o.auto_remedy());
  put("ui.progress", o.progress());
  put("run.dir", o.runs_dir());
  put("run.name", o.run_name());
  c.resolve();
  return c;
}

}  // namespace

TrainerOptions TrainerOptions::from(const Config& c) {
  TrainerOptions o;
  o.task(c.get_string("train.task") == "regression" ? Task::kRegression : Task::kClassification)
      .max_epochs(c.get_int("train.max_epochs"))
      .optimizer(c.get_string("train.optimizer"))
      .lr(c.get_double("train.lr"))
      .weight_decay(c.get_double("train.weight_decay"))
      .loss(c.get_string("train.loss"))
      // "auto" is resolved by the batch-size search before training (tune/batch_size.h); until
      // then the Trainer keeps its default.
      .batch_size(c.get_string("train.batch_size") == "auto"
                      ? 128
                      : std::stoll(c.get_string("train.batch_size")))
      .eval_batch_size(c.get_int("train.eval_batch_size"))
      .seed(static_cast<uint64_t>(c.get_int("train.seed")))
      .log_every(c.get_int("train.log_every"))
      .early_stopping(c.get_bool("train.early_stopping"))
      .patience(c.get_int("train.patience"))
      .min_delta(c.get_double("train.min_delta"))
      .restore_best(c.get_bool("train.restore_best"))
      .checkpoints(c.get_bool("train.checkpoints"))
      .loader_workers(c.get_int("data.workers"))
      .diagnostics(c.get_bool("diagnose.enabled"))
      .diagnose_every(c.get_int("diagnose.every"))
      .diagnose_activations(c.get_bool("diagnose.activations"))
      .auto_remedy(c.get_bool("diagnose.auto_remedy"))
      .progress(c.get_string("ui.progress"))
      .runs_dir(c.get_string("run.dir"))
      .run_name(c.get_string("run.name"))
      .config(c);
  return o;
}

Trainer::Trainer(TrainerOptions options) : options_(std::move(options)), device_(torch::kCPU) {
  options_.validate();
  try {
    device_ = torch::Device(options_.device());
  } catch (const c10::Error&) {
    throw ConfigError("device \"" + options_.device() +
                      "\" is not known; expected cpu, cuda or cuda:N");
  }
  if (options_.loss() == "auto")
    options_.loss(options_.task() == Task::kClassification ? "cross_entropy" : "mse");
  if (!options_.config()) options_.config(config_from(options_));
  for (auto& cb : callbacks::default_callbacks(options_)) add_callback(std::move(cb));
}

Trainer::~Trainer() = default;

void Trainer::add_callback(std::shared_ptr<Callback> callback) {
  TORCH_CHECK(callback != nullptr, "Trainer::add_callback: callback is null");
  auto pos = std::upper_bound(callbacks_.begin(), callbacks_.end(), callback,
                              [](const auto& a, const auto& b) { return a->order() < b->order(); });
  callbacks_.insert(pos, std::move(callback));
}

void Trainer::attach_run(std::shared_ptr<track::Run> run) {
  run_ = std::move(run);
  state_.run = run_.get();
}

template <typename Hook, typename... Args>
void Trainer::call(Hook hook, Args&&... args) {
  for (auto& cb : callbacks_) ((*cb).*hook)(state_, std::forward<Args>(args)...);
}

void Trainer::ensure_run(const Model& model) {
  if (run_ || options_.runs_dir().empty()) return;
  const std::string name =
      options_.run_name().empty() ? track::timestamped_name(model.name()) : options_.run_name();
  attach_run(track::Run::create(options_.runs_dir(), name));
  track::write_text_atomically(run_->dir() / "config.toml", options_.config()->to_toml());
}

torch::Tensor Trainer::compute_loss(const torch::Tensor& output,
                                    const torch::Tensor& target) const {
  if (options_.loss() == "mse")
    return torch::mse_loss(output, target.view_as(output).to(output.scalar_type()));
  return torch::cross_entropy_loss(output, target);
}

void Trainer::check_output(const torch::Tensor& output, const torch::Tensor& target) const {
  if (options_.task() == Task::kClassification) {
    if (output.dim() != 2)
      throw ShapeError("the model returns outputs of shape " + c10::str(output.sizes()) +
                       " for a classification task; expected [batch, classes] logits");
    const int64_t classes = output.size(1);
    const int64_t max_label = target.max().item<int64_t>();  // once per pass
    if (max_label >= classes || target.min().item<int64_t>() < 0)
      throw ShapeError("label " + std::to_string(max_label) + " is out of range for a model with " +
                       std::to_string(classes) +
                       " outputs; size the last layer for the data's classes");
    if (!options_.class_names().empty() &&
        static_cast<int64_t>(options_.class_names().size()) != classes)
      throw ShapeError("the model has " + std::to_string(classes) + " outputs but the data has " +
                       std::to_string(options_.class_names().size()) +
                       " classes; size the last layer to match");
  } else if (output.numel() != target.numel()) {
    throw ShapeError("the model returns " +
                     std::to_string(output.numel() / std::max<int64_t>(1, output.size(0))) +
                     " values per example but the targets have " +
                     std::to_string(target.numel() / std::max<int64_t>(1, target.size(0))));
  }
}

FitResult Trainer::fit(Model& model, std::shared_ptr<const data::Dataset> train,
                       std::shared_ptr<const data::Dataset> val) {
  TORCH_CHECK(model.defined() && train, "Trainer::fit needs a model and a training set");
  if (train->size() == 0) throw DataError("the training set is empty");
  ensure_run(model);
  model.to(device_);
  auto optimizer = make_optimizer(options_, model);
  data::LoaderOptions loader_options{options_.batch_size(), /*shuffle=*/true, /*drop_last=*/false,
                                     options_.seed()};
  loader_options.workers = options_.loader_workers();
  loader_options.pin_memory = device_.is_cuda();
  data::DataLoader loader(train, loader_options);

  TrainState& s = state_;
  s = TrainState{};
  s.run = run_.get();
  s.model = &model;
  s.optimizer = optimizer.get();
  s.max_epochs = options_.max_epochs();
  s.batches_per_epoch = loader.batches_per_epoch();
  s.fit_start = std::chrono::steady_clock::now();
  FitResult result;
  InterruptGuard interrupt;

  call(&Callback::on_fit_start);
  try {
    for (s.epoch = 1; s.epoch <= s.max_epochs && !s.stop_requested(); ++s.epoch) {
      call(&Callback::on_epoch_start);
      train_epoch(model, *optimizer, loader);
      if (val && val->size() > 0 && !s.stop_requested()) {
        call(&Callback::on_validation_start);
        s.val_metrics = evaluate(model, *val, "val", /*confusion=*/false).metrics;
        call(&Callback::on_validation_end);
        const double v = s.val_metrics["loss"];
        if (result.best_epoch == 0 || v < result.best_val_loss)
          result.best_epoch = s.epoch, result.best_val_loss = v;
      }
      call(&Callback::on_epoch_end);
      result.epochs = s.epoch;
    }
  } catch (...) {
    s.request_stop(StopReason::kException, "an exception ended the fit");
    const auto error = std::current_exception();
    for (auto& cb : callbacks_) cb->on_exception(s, error);
    throw;
  }
  s.epoch = result.epochs;  // the last completed epoch, for on_fit_end
  s.request_stop(StopReason::kMaxEpochs, "max_epochs=" + std::to_string(s.max_epochs) + " reached");
  call(&Callback::on_fit_end);

  result.stop_reason = s.stop_reason;
  result.stop_message = s.stop_message;
  result.global_step = s.global_step;
  result.train_metrics = s.train_metrics;
  result.val_metrics = s.val_metrics;
  result.run_dir = run_ ? run_->dir() : std::filesystem::path();
  result.seconds =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - s.fit_start).count();
  s.optimizer = nullptr;  // the optimizer dies with this call
  return result;
}

void Trainer::train_epoch(Model& model, torch::optim::Optimizer& optimizer,
                          data::DataLoader& loader) {
  TrainState& s = state_;
  model.train();
  MetricAccumulator metrics(options_.task());
  loader.start_epoch(s.epoch);
  loader.reset_wait();
  const auto loop_start = std::chrono::steady_clock::now();
  data::Batch batch;
  for (s.batch_in_epoch = 0; loader.next(batch); ++s.batch_in_epoch) {
    if (g_interrupted.load()) {
      s.request_stop(StopReason::kInterrupted,
                     "interrupted (SIGINT) in epoch " + std::to_string(s.epoch));
      break;
    }
    auto x = batch.x.to(device_, /*non_blocking=*/true);
    auto y = batch.y.to(device_, /*non_blocking=*/true);
    if (options_.augment()) {
      auto gen = data::augment_generator(options_.seed(), s.epoch, s.batch_in_epoch);
      auto augmented = options_.augment()->apply({x, y}, gen);
      x = augmented.x, y = augmented.y;
    }
    // mixup/cutmix give class probabilities: the loss takes them, accuracy takes the argmax.
    auto labels = (y.dim() == 2 && options_.task() == Task::kClassification) ? y.argmax(1) : y;
    s.batch_size = x.size(0);
    call(&Callback::on_train_batch_start);

    optimizer.zero_grad();
    auto output = model.forward(x);
    if (s.global_step == 0) check_output(output, labels);  // host sync, first step only
    s.inputs = x;
    s.targets = y;
    s.outputs = output;
    s.loss = compute_loss(output, y);
    s.loss.backward();
    call(&Callback::on_after_backward);
    call(&Callback::on_before_optimizer_step);
    optimizer.step();
    ++s.global_step;

    metrics.update(s.loss, output.detach(), labels);
    call(&Callback::on_train_batch_end);
  }
  s.inputs = s.targets = s.outputs = torch::Tensor();  // release the last batch's activations
  s.train_metrics = metrics.compute();                 // host sync: once per epoch
  // Share of the step loop spent blocked on the loader (the run store keeps it per epoch).
  const double loop_seconds =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - loop_start).count();
  s.train_metrics["data_wait_fraction"] =
      loop_seconds > 0 ? loader.wait_seconds() / loop_seconds : 0.0;
}

EvalResult Trainer::evaluate(Model& model, const data::Dataset& dataset, const std::string& split,
                             bool confusion) {
  const auto start = std::chrono::steady_clock::now();
  model.to(device_);
  EvalModeGuard eval_mode(model);
  torch::NoGradGuard no_grad;
  MetricAccumulator metrics(options_.task(), confusion);
  // The loader only reads the dataset; aliasing avoids copying it into a shared_ptr.
  std::shared_ptr<const data::Dataset> view(std::shared_ptr<const data::Dataset>(), &dataset);
  data::DataLoader loader(view,
                          {options_.eval_batch_size(), /*shuffle=*/false, /*drop_last=*/false, 0});
  loader.start_epoch(0);
  data::Batch batch;
  bool first = true;
  EvalResult r;
  constexpr int64_t kMistakes = 16;
  int64_t offset = 0;
  while (loader.next(batch)) {
    auto x = batch.x.to(device_, true), y = batch.y.to(device_, true);
    auto output = model.forward(x);
    if (first) check_output(output, y), first = false;
    metrics.update(compute_loss(output, y), output, y);
    if (confusion && options_.task() == Task::kClassification) {
      // The batch's most confident wrong answers; a host sync per batch, test passes only.
      auto [conf, pred] = torch::softmax(output, 1).max(1);
      auto scored = torch::where(pred.ne(y), conf, torch::full_like(conf, -1.0));
      auto [top, at] = scored.topk(std::min<int64_t>(kMistakes, scored.size(0)));
      auto top_c = top.to(torch::kCPU, torch::kFloat64), at_c = at.to(torch::kCPU);
      auto pred_c = pred.index_select(0, at).to(torch::kCPU),
           y_c = y.index_select(0, at).to(torch::kCPU);
      for (int64_t i = 0; i < top_c.size(0) && top_c[i].item<double>() >= 0; ++i)
        r.mistakes.push_back({offset + at_c[i].item<int64_t>(), y_c[i].item<int64_t>(),
                              pred_c[i].item<int64_t>(), top_c[i].item<double>()});
      std::sort(r.mistakes.begin(), r.mistakes.end(),
                [](const Mistake& a, const Mistake& b) { return a.confidence > b.confidence; });
      if (static_cast<int64_t>(r.mistakes.size()) > kMistakes) r.mistakes.resize(kMistakes);
    }
    offset += x.size(0);
  }
  r.split = split;
  r.metrics = metrics.compute();
  r.samples = metrics.count();
  if (confusion) {
    r.confusion = metrics.confusion();
    r.per_class = per_class_metrics(r.confusion, options_.class_names());
  }
  r.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  return r;
}

EvalResult Trainer::validate(Model& model, const data::Dataset& dataset) {
  return evaluate(model, dataset, "val", /*confusion=*/false);
}

EvalResult Trainer::test(Model& model, const data::Dataset& dataset) {
  if (dataset.size() == 0) throw DataError("the test set is empty");
  EvalResult r = evaluate(model, dataset, "test", options_.task() == Task::kClassification);
  for (auto& cb : callbacks_) cb->on_test_end(state_, r);
  return r;
}

}  // namespace trainscope
