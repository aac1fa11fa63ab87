#include <trainscope/data/loader.h>
#include <trainscope/data/transforms.h>
#include <trainscope/error.h>
#include <trainscope/track/run.h>
#include <trainscope/runtime.h>
#include <trainscope/train/trainer.h>

#include <trainscope/track/checkpoint_dir.h>
#include <trainscope/track/payload.h>
#include <trainscope/train/head_features.h>

#include "models/scripted_module.h"
#include "train/amp.h"

#include <algorithm>
#include <atomic>
#include <map>
#include <optional>
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
    case StopReason::kThreshold:
      return "stopping_threshold";
    case StopReason::kDivergence:
      return "divergence";
    case StopReason::kCheckpointFailed:
      return "checkpoint_failed";
    case StopReason::kPruned:
      return "pruned";
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
  if (!(weight_decay_ >= 0)) fail("weight_decay", std::to_string(weight_decay_), ">= 0");
  if (!(grad_clip_ >= 0)) fail("grad_clip", std::to_string(grad_clip_), ">= 0 (0: off)");
  Monitor::parse(monitor_, monitor_mode_, "monitor");
  if (!loss_function_)  // a loss that does not fit the task
    make_loss(task_, {loss_, class_weights_, label_smoothing_, huber_delta_});
  if (world_size_ < 1 || rank_ < 0 || rank_ >= world_size_)
    fail("rank", std::to_string(rank_) + " of world_size " + std::to_string(world_size_),
         "0 <= rank < world_size");
}

std::optional<DeviceChoice> DeviceChoice::parse(const std::string& text) {
  DeviceChoice d;
  if (text == "auto") return d;
  if (text == "cpu") return d.kind = Kind::kCpu, d;
  if (text == "cuda") return d.kind = Kind::kCuda, d;
  if (text.rfind("cuda:", 0) == 0 && text.size() > 5 && text.size() < 9 &&
      text.find_first_not_of("0123456789", 5) == std::string::npos)
    return d.kind = Kind::kCuda, d.index = std::stoi(text.substr(5)), d;
  return std::nullopt;
}

std::string DeviceChoice::str() const {
  switch (kind) {
    case Kind::kAuto:
      return "auto";
    case Kind::kCpu:
      return "cpu";
    case Kind::kCuda:
      return index < 0 ? "cuda" : "cuda:" + std::to_string(index);
  }
  return "auto";
}

torch::Device DeviceChoice::resolve() const {
  if (kind == Kind::kCpu) return torch::kCPU;
  if (kind == Kind::kAuto)
    return torch::cuda::is_available() ? torch::Device(torch::kCUDA) : torch::Device(torch::kCPU);
  if (!torch::cuda::is_available())
    throw ConfigError("device \"" + str() +
                      "\": this machine has no CUDA device (or this LibTorch has no CUDA); use "
                      "cpu or auto");
  return index < 0 ? torch::Device(torch::kCUDA)
                   : torch::Device(torch::kCUDA, static_cast<c10::DeviceIndex>(index));
}

namespace {

// NHWC with channels-last strides, even where one channel (the first convolution of a grayscale
// model) makes NCHW and NHWC the same bytes: .contiguous(ChannelsLast) keeps the NCHW strides
// there, and a convolution whose input and weight disagree runs a slow mixed-format path (2,378
// against 3,630 samples/s for the reference CNN in Python, bench/README.md).
torch::Tensor channels_last(const torch::Tensor& t) {
  if (t.dim() != 4) return t;
  const int64_t c = t.size(1), h = t.size(2), w = t.size(3);
  if (t.strides() == c10::IntArrayRef({c * h * w, 1, w * c, c})) return t;
  return t.to(t.options(), /*non_blocking=*/false, /*copy=*/true, at::MemoryFormat::ChannelsLast);
}

void to_channels_last(Model& model) {
  torch::NoGradGuard no_grad;
  for (auto& p : model.parameters())
    if (p.dim() == 4) p.set_data(channels_last(p));
}

// SIGINT or SIGTERM asks the running fit to stop after the current batch, which is checkpointed;
// a second signal kills as usual.
std::atomic<int> g_interrupted{0};
}  // namespace

int interrupt_signal() { return g_interrupted.load(); }

namespace {
// Not extern "C": that name would be exported and could be interposed by a program's own.
void on_interrupt(int signal) {
  g_interrupted.store(signal);
  std::signal(signal, SIG_DFL);
}

class InterruptGuard {
 public:
  InterruptGuard()
      : previous_int_(std::signal(SIGINT, on_interrupt)),
        previous_term_(std::signal(SIGTERM, on_interrupt)) {
    g_interrupted.store(0);
  }
  ~InterruptGuard() {
    std::signal(SIGINT, previous_int_);
    std::signal(SIGTERM, previous_term_);
  }
  InterruptGuard(const InterruptGuard&) = delete;
  InterruptGuard& operator=(const InterruptGuard&) = delete;

 private:
  void (*previous_int_)(int);
  void (*previous_term_)(int);
};

std::vector<torch::Tensor> optimizer_params(const torch::optim::Optimizer& optimizer) {
  std::vector<torch::Tensor> out;
  for (const auto& g : optimizer.param_groups())
    out.insert(out.end(), g.params().begin(), g.params().end());
  return out;
}

// The order of the training batches: a feature cache's loader takes the same, so that its epochs
// see the same examples in the same batches.
data::LoaderOptions training_loader_options(const TrainerOptions& o) {
  data::LoaderOptions l{o.batch_size(), /*shuffle=*/true, /*drop_last=*/false, o.seed()};
  l.rank = o.rank();
  l.world_size = o.world_size();
  return l;
}

// Only what trains: frozen parameters (a backbone) stay out of the optimizer.
std::unique_ptr<torch::optim::Optimizer> make_optimizer(const TrainerOptions& o,
                                                        const Model& model) {
  std::vector<torch::Tensor> params;
  for (const auto& p : model.parameters())
    if (p.requires_grad()) params.push_back(p);
  if (params.empty())
    throw ConfigError(
        "the model has no trainable parameters (all of them are frozen); unfreeze "
        "at least the head");
  switch (o.optimizer()) {
    case Optimizer::kAdamW:
      return std::make_unique<torch::optim::AdamW>(
          params, torch::optim::AdamWOptions(o.lr()).weight_decay(o.weight_decay()));
    case Optimizer::kSgd:
      return std::make_unique<torch::optim::SGD>(
          params, torch::optim::SGDOptions(o.lr()).momentum(0.9).weight_decay(o.weight_decay()));
    case Optimizer::kAdam:
      break;
  }
  return std::make_unique<torch::optim::Adam>(
      params, torch::optim::AdamOptions(o.lr()).weight_decay(o.weight_decay()));
}

}  // namespace

PrecisionChoice auto_precision(const torch::Device& device, bool fine_tuning) {
  if (device.is_cuda())
    return {Precision::kFp32, "on CUDA float32 (bf16 is not measured there yet: set bf16)"};
  if (fine_tuning)
    return {Precision::kFp32, "fine-tuning: the head phase trains on cached float32 features"};
  const std::string isa = native_bf16();
  if (isa.empty())
    return {Precision::kFp32,
            "this CPU has no native bfloat16 (AVX512-BF16 or AMX): bf16 would be emulated, "
            "slower than fp32"};
  return {Precision::kBf16,
          "this CPU computes bfloat16 natively (" + isa +
              "): the reference CNN's epochs run 1.7x faster than in fp32, and a full default run "
              "reached 93.04% test accuracy against fp32's 92.96% (bench/README.md)"};
}

Trainer::Trainer(TrainerOptions options) : options_(std::move(options)), device_(torch::kCPU) {
  options_.validate();
  device_ = options_.device().resolve();
  if (options_.precision() == Precision::kAuto)
    options_.precision(auto_precision(device_, !options_.head().empty()).precision);
  if (options_.precision() == Precision::kFp16 && !device_.is_cuda())
    throw ConfigError(
        "precision \"fp16\" needs a CUDA device (float16 matmuls on CPU are slow "
        "or missing); use bf16 on CPU");
  if (options_.precision() == Precision::kFp16) scaler_ = std::make_unique<detail::GradScaler>();
  // cuDNN picks the fastest convolution algorithm for the (fixed) input shapes once.
  if (device_.is_cuda()) at::globalContext().setBenchmarkCuDNN(true);
  loss_ = options_.loss_function();
  if (!loss_)
    loss_ = make_loss(options_.task(), {options_.loss(), options_.class_weights(),
                                        options_.label_smoothing(), options_.huber_delta()});
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
  if (options_.config())
    track::write_text_atomically(run_->dir() / "config.toml", options_.config()->to_toml());
}

void Trainer::check_output(const torch::Tensor& output, const torch::Tensor& target) const {
  const Task task = options_.task();
  const std::string got = "the model returns outputs of shape " + c10::str(output.sizes()) +
                          " for targets of shape " + c10::str(target.sizes()) +
                          " (train.task = " + name_of(task, kTaskNames) + "); expected ";
  if (task == Task::kRegression) {
    if (output.numel() != target.numel())
      throw ShapeError("the model returns " +
                       std::to_string(output.numel() / std::max<int64_t>(1, output.size(0))) +
                       " values per example but the targets have " +
                       std::to_string(target.numel() / std::max<int64_t>(1, target.size(0))));
    return;
  }
  if (task == Task::kMultilabel) {
    if (output.dim() != 2 || target.numel() != output.numel())
      throw ShapeError(got + "[batch, labels] logits, one per label of the targets");
    return;
  }
  int64_t classes = 0;
  if (task == Task::kClassification) {
    if (output.dim() != 2)
      throw ShapeError("the model returns outputs of shape " + c10::str(output.sizes()) +
                       " for a classification task; expected [batch, classes] logits");
    classes = output.size(1);
  } else if (task == Task::kSegmentation) {
    if (output.dim() < 3 || target.dim() != output.dim() - 1 ||
        target.sizes().slice(1) != output.sizes().slice(2) || target.size(0) != output.size(0))
      throw ShapeError(got + "[batch, classes, H, W] logits for [batch, H, W] class indices");
    classes = output.size(1);
  } else {
    if (output.dim() != 3 || target.dim() != 2 || target.sizes() != output.sizes().slice(0, 2))
      throw ShapeError(got + "[batch, time, classes] logits for [batch, time] class indices");
    classes = output.size(2);
  }
  // Padding (-100) aside; once per pass.
  const auto valid = target.masked_select(target.ne(-100));
  const int64_t max_label = valid.numel() ? valid.max().item<int64_t>() : 0;
  const int64_t min_label = valid.numel() ? valid.min().item<int64_t>() : 0;
  if (max_label >= classes || min_label < 0)
    throw ShapeError("label " + std::to_string(min_label < 0 ? min_label : max_label) +
                     " is out of range for a model with " + std::to_string(classes) +
                     " outputs; size the last layer for the data's classes");
  if (!options_.class_names().empty() &&
      static_cast<int64_t>(options_.class_names().size()) != classes)
    throw ShapeError("the model has " + std::to_string(classes) + " outputs but the data has " +
                     std::to_string(options_.class_names().size()) +
                     " classes; size the last layer to match");
}

void Trainer::check_step(const StepResult& r) const {
  if (!r.loss.defined() || r.loss.numel() != 1)
    throw ShapeError("TrainerOptions::step returned a loss of shape " +
                     (r.loss.defined() ? c10::str(r.loss.sizes()) : std::string("(undefined)")) +
                     "; expected the batch's mean loss, one value");
  if (!r.outputs.defined())
    throw ShapeError(
        "TrainerOptions::step returned no outputs; return what the metrics should compare with "
        "batch.y (the model's outputs)");
}

// Everything Trainer::resume found to restore: the checkpoint's payload and where it stands.
struct Trainer::Restore {
  ResumePoint point;  // file empty: no usable checkpoint, the fit starts over
  std::optional<track::PayloadReader> payload;
  track::PayloadCounters counters;  // read once, by restore_model
  bool write = true;                // cut the run store back to `mark` once the state is restored
  track::StoreMark mark;
};

struct Trainer::FeatureCache {
  bool usable = false;  // false: decided against for this fit (state.feature_cache says why)
  Model head_model;     // the head alone, over features
  std::shared_ptr<const data::Dataset> train, val;  // features and targets
  std::unique_ptr<data::DataLoader> loader;         // the training batches, in the fit's order
};

Trainer::FeatureCache* Trainer::feature_cache(Model& model, const data::Dataset& train,
                                              const data::Dataset* val) {
  const std::string& head = options_.head();
  if (head.empty() || (cache_ && !cache_->usable)) return nullptr;
  for (const auto& item : model.module().named_parameters())
    if (item.value().requires_grad() && item.key().rfind(head + ".", 0) != 0) {
      // More than the head trains: the whole model runs, and the features are of no more use.
      if (cache_) cache_ = std::make_unique<FeatureCache>();
      return nullptr;
    }
  if (cache_) return cache_.get();
  cache_ = std::make_unique<FeatureCache>();
  FeatureCache& c = *cache_;
  TrainState& s = state_;
  auto without = [&](const std::string& why) -> FeatureCache* {
    s.feature_cache = "head phase without a feature cache: " + why;
    return nullptr;
  };
  if (!options_.cache_features()) return without("caching is off");
  if (options_.precision() != Precision::kFp32)
    return without(std::string("precision ") + name_of(options_.precision(), kPrecisionNames) +
                   " (the cache holds float32 features of fp32 forwards)");
  const models::LinearLayer layer = models::find_head(model, head);
  const int64_t examples = train.size() + (val ? val->size() : 0);
  const double mib = static_cast<double>(examples) * layer.in_features * 4 / 1048576.0;
  char buf[320];
  if (mib > static_cast<double>(options_.feature_cache_mib())) {
    std::snprintf(buf, sizeof buf, "%lld examples x %lld features would take %.0f MiB, over %lld",
                  static_cast<long long>(examples), static_cast<long long>(layer.in_features), mib,
                  static_cast<long long>(options_.feature_cache_mib()));
    return without(buf);
  }
  const auto sample =
      train.get_batch(torch::arange(std::min<int64_t>(64, train.size()))).x.to(device_);
  if (const std::string why = check_head_outputs(model, layer, sample); !why.empty())
    return without(why);
  const HeadFeatures t = head_features(model, layer, train, options_.eval_batch_size(), device_);
  c.train = std::make_shared<data::TensorDataset>(t.features, t.targets);
  double seconds = t.seconds;
  int64_t val_examples = 0;
  if (val && val->size() > 0) {
    const HeadFeatures v = head_features(model, layer, *val, options_.eval_batch_size(), device_);
    c.val = std::make_shared<data::TensorDataset>(v.features, v.targets);
    seconds += v.seconds;
    val_examples = val->size();
  }
  c.head_model = head_model(model, layer);
  c.loader = std::make_unique<data::DataLoader>(c.train, training_loader_options(options_));
  c.usable = true;
  std::snprintf(buf, sizeof buf,
                "head phase: the frozen backbone's features cached in %.1f s (%lld training + "
                "%lld validation examples x %lld values, %.1f MiB); the head trains on them alone",
                seconds, static_cast<long long>(train.size()), static_cast<long long>(val_examples),
                static_cast<long long>(layer.in_features), mib);
  s.feature_cache = buf;
  return &c;
}

FitResult Trainer::fit(Model& model, std::shared_ptr<const data::Dataset> train,
                       std::shared_ptr<const data::Dataset> val) {
  return run_fit(model, std::move(train), std::move(val), nullptr);
}

FitResult Trainer::run_fit(Model& model, std::shared_ptr<const data::Dataset> train,
                           std::shared_ptr<const data::Dataset> val, Restore* restored) {
  TORCH_CHECK(model.defined() && train, "Trainer::fit needs a model and a training set");
  if (train->size() == 0) throw DataError("the training set is empty");
  ensure_run(model);
  model.to(device_);
  if (options_.channels_last()) to_channels_last(model);
  optimizer_ = make_optimizer(options_, model);
  data::LoaderOptions loader_options = training_loader_options(options_);
  loader_options.workers = options_.loader_workers();
  loader_options.pin_memory = device_.is_cuda();
  data::DataLoader loader(train, loader_options);
  cache_.reset();
  loader_ = &loader;
  epoch_metrics_ = std::make_unique<MetricAccumulator>(options_.task(), false, options_.metrics());

  TrainState& s = state_;
  s = TrainState{};
  s.task = options_.task();
  s.run = run_.get();
  s.model = &model;
  s.optimizer = optimizer_.get();
  s.max_epochs = options_.max_epochs();
  s.batches_per_epoch = loader.batches_per_epoch();
  s.fit_start = std::chrono::steady_clock::now();
  s.capture = [this] { return capture(); };
  s.monitor = Monitor::parse(options_.monitor(), options_.monitor_mode(), "monitor");
  const bool validates = val && val->size() > 0;
  s.best.by = (validates || s.monitor.split != "val") ? s.monitor : s.monitor.of_split("train");
  if (restored) s.resumed = restored->point;
  result_ = FitResult{};
  InterruptGuard interrupt;

  GradientSync* sync = options_.gradient_sync().get();
  // Whether the checkpoint fits (the model's architecture, the epoch's batches) is known before
  // any callback runs: a resume that cannot work leaves the run as it was.
  if (restored && restored->payload) restore_model(*restored);
  // A resumed fit continues inside the checkpoint's epoch, or after it when it was complete.
  int64_t first_epoch = 1, first_batch = 0;
  try {
    phase_ = Phase::kFitStart;
    call(&Callback::on_fit_start);
    phase_ = Phase::kNone;
    if (restored && restored->payload) {
      restore(*restored);
      // Only now that the checkpoint is known to fit: the rows written after it belong to the
      // future the resume replays.
      if (restored->write && run_) run_->store().truncate_to(restored->mark, restored->point.step);
      first_epoch = restored->point.epoch + (restored->point.epoch_complete ? 1 : 0);
      first_batch = restored->point.epoch_complete ? 0 : restored->point.batches;
      result_.resumed_from = restored->point.file;
    }
    for (s.epoch = first_epoch; s.epoch <= s.max_epochs && !s.stop_requested(); ++s.epoch) {
      s.val_metrics.clear();  // an epoch that skips validation reports none, not the last one's
      call(&Callback::on_epoch_start);
      // Fine-tuning's head phase: the head trains alone on the backbone's cached features.
      FeatureCache* cached = feature_cache(model, *train, val.get());
      s.features_cached = cached != nullptr;
      train_epoch(cached ? cached->head_model : model, cached ? *cached->loader : loader,
                  s.epoch == first_epoch ? first_batch : 0);
      if (s.interrupted) break;  // mid-epoch: not a complete epoch
      if (val && val->size() > 0 && !s.stop_requested()) {
        if (sync) sync->before_validation(s);
        call(&Callback::on_validation_start);
        s.val_metrics = (cached ? evaluate(cached->head_model, *cached->val, "val", false)
                                : evaluate(model, *val, "val", /*confusion=*/false))
                            .metrics;
        call(&Callback::on_validation_end);
      }
      update_best(s);
      phase_ = Phase::kEpochEnd;
      call(&Callback::on_epoch_end);
      phase_ = Phase::kNone;
      if (sync) sync->after_epoch(s);
      result_.epochs = s.epoch;
    }
  } catch (...) {
    phase_ = Phase::kNone;
    s.request_stop(StopReason::kException, "an exception ended the fit");
    const auto error = std::current_exception();
    for (auto& cb : callbacks_) cb->on_exception(s, error);
    s.capture = nullptr;
    loader_ = nullptr;
    throw;
  }
  s.epoch = result_.epochs;  // the last completed epoch, for on_fit_end
  s.request_stop(StopReason::kMaxEpochs, "max_epochs=" + std::to_string(s.max_epochs) + " reached");
  call(&Callback::on_fit_end);

  FitResult result = result_;
  if (s.best.by.split == "val" && s.best.epoch > 0)
    result.best_epoch = s.best.epoch, result.best_val_loss = s.best.val_loss;
  result.stop_reason = s.stop_reason;
  result.stop_message = s.stop_message;
  result.interrupted = s.interrupted;
  result.global_step = s.global_step;
  result.train_metrics = s.train_metrics;
  result.val_metrics = s.val_metrics;
  result.run_dir = run_ ? run_->dir() : std::filesystem::path();
  result.seconds =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - s.fit_start).count();
  result.feature_cache = s.feature_cache;
  s.capture = nullptr;
  s.optimizer = nullptr;  // the optimizer lives until the next fit, unreachable from the state
  s.features_cached = false;
  loader_ = nullptr;
  cache_.reset();  // the features belong to this fit's backbone
  return result;
}

void Trainer::train_epoch(Model& model, data::DataLoader& loader, int64_t first_batch) {
  TrainState& s = state_;
  torch::optim::Optimizer& optimizer = *optimizer_;
  model.train();
  // Resuming mid-epoch, the loader continues at the checkpoint's batch and the epoch's running
  // metrics come from the checkpoint.
  if (first_batch > 0) {
    loader.restore({s.epoch, first_batch, options_.seed()});
  } else {
    loader.start_epoch(s.epoch);
    epoch_metrics_->reset();
  }
  loader.reset_wait();
  const auto loop_start = std::chrono::steady_clock::now();
  data::Batch batch;
  // The batch being trained, for TrainState::batch_loss (set once: no allocation per step).
  const data::Batch* current = nullptr;
  s.batch_loss = [&](int64_t n) {
    TORCH_CHECK(current, "TrainState::batch_loss is available in on_train_batch_end");
    torch::NoGradGuard no_grad;
    const data::Batch head = n > 0 ? current->head(n) : *current;
    if (options_.step()) return options_.step()(model, head).loss.detach().to(torch::kFloat32);
    return compute_loss(model.forward(head.x, head.inputs), head.y).detach().to(torch::kFloat32);
  };
  struct Unset {  // however the epoch ends: the function refers to this frame
    std::function<torch::Tensor(int64_t)>& f;
    ~Unset() { f = nullptr; }
  } unset{s.batch_loss};
  for (s.batch_in_epoch = first_batch; loader.next(batch); ++s.batch_in_epoch) {
    data::Batch b = batch.map([&](const torch::Tensor& t) { return t.to(device_, true); });
    if (options_.channels_last()) b.x = channels_last(b.x);
    if (options_.augment() && s.augment_batches && !s.features_cached) {
      // Each rank of a data-parallel job draws its own transforms (rank 0 as a single process).
      auto gen = data::augment_generator(options_.seed() + 1000003ULL * options_.rank(), s.epoch,
                                         s.batch_in_epoch);
      auto augmented = options_.augment()->apply({b.x, b.y}, gen);
      b.x = augmented.x, b.y = augmented.y;
    }
    const torch::Tensor& x = b.x;
    const torch::Tensor& y = b.y;
    // mixup/cutmix give class probabilities: the loss takes them, accuracy takes the argmax.
    auto labels = (y.dim() == 2 && options_.task() == Task::kClassification) ? y.argmax(1) : y;
    s.batch_size = x.size(0);
    call(&Callback::on_train_batch_start);

    GradientSync* sync = options_.gradient_sync().get();
    if (sync) sync->before_forward(s);
    optimizer.zero_grad();
    torch::Tensor output;
    {
      detail::AutocastScope autocast(options_.precision(), device_);
      // The first step checks the outputs against the task before the loss meets them (a host
      // sync, once).
      if (options_.step()) {
        StepResult r = options_.step()(model, b);
        if (s.global_step == 0) check_step(r), check_output(r.outputs, labels);
        output = r.outputs, s.loss = r.loss;
      } else {
        output = model.forward(x, b.inputs);
        if (s.global_step == 0) check_output(output, labels);
        s.loss = compute_loss(output, y);
      }
    }
    s.inputs = s.features_cached ? torch::Tensor() : x;  // features are not the model's inputs
    s.named_inputs = b.inputs;
    s.targets = y;
    s.outputs = output;
    (scaler_ ? scaler_->scale_loss(s.loss) : s.loss).backward();
    if (sync) sync->after_backward(s);  // the job's average gradients, on every rank
    const bool finite = !scaler_ || scaler_->unscale(optimizer_params(optimizer));
    call(&Callback::on_after_backward);
    call(&Callback::on_before_optimizer_step);
    if (finite && options_.grad_clip() > 0)
      torch::nn::utils::clip_grad_norm_(optimizer_params(optimizer), options_.grad_clip());
    if (finite) optimizer.step();  // fp16: a step whose gradients overflowed is skipped
    if (scaler_) scaler_->update(finite);
    ++s.global_step;

    epoch_metrics_->update(s.loss, output.detach(), labels);
    // Checked after the step, before on_train_batch_end, so that the checkpoint callback saves
    // this batch's state before the loop ends. Data-parallel ranks agree on it in after_backward.
    if (const int signal = sync ? 0 : g_interrupted.load(); signal != 0 && !s.interrupted) {
      s.interrupted = true;
      s.request_stop(StopReason::kInterrupted,
                     std::string("interrupted (") + (signal == SIGTERM ? "SIGTERM" : "SIGINT") +
                         ") in epoch " + std::to_string(s.epoch) + " after batch " +
                         std::to_string(s.batch_in_epoch + 1) + " of " +
                         std::to_string(s.batches_per_epoch));
    }
    phase_ = Phase::kBatchEnd;
    current = &b;
    call(&Callback::on_train_batch_end);
    current = nullptr;
    phase_ = Phase::kNone;
    if (s.interrupted) break;
  }
  s.inputs = s.targets = s.outputs = torch::Tensor();  // release the last batch's activations
  s.named_inputs = {};
  if (GradientSync* sync = options_.gradient_sync().get())
    epoch_metrics_->sum_across(
        [sync](std::vector<torch::Tensor>& t) { sync->sum_across_ranks(t); });
  s.train_metrics = epoch_metrics_->compute();  // host sync: once per epoch
  // Share of the step loop spent blocked on the loader (the run store keeps it per epoch).
  const double loop_seconds =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - loop_start).count();
  s.train_metrics["data_wait_fraction"] =
      loop_seconds > 0 ? loader.wait_seconds() / loop_seconds : 0.0;
}

std::vector<std::string> Trainer::callback_keys() const {
  std::vector<std::string> keys;
  std::map<std::string, int> seen;
  for (const auto& cb : callbacks_) {
    const int n = ++seen[cb->name()];
    keys.push_back(n == 1 ? cb->name() : cb->name() + "#" + std::to_string(n));
  }
  return keys;
}

TrainingSnapshot Trainer::capture() {
  TORCH_CHECK(phase_ != Phase::kNone,
              "TrainState::capture is available in on_fit_start, on_train_batch_end and "
              "on_epoch_end");
  TrainState& s = state_;
  track::PayloadWriter payload;
  payload.model(s.model->module());
  payload.optimizer(*optimizer_);
  const auto keys = callback_keys();
  for (size_t i = 0; i < callbacks_.size(); ++i)
    payload.callback(keys[i], [&](torch::serialize::OutputArchive& archive) {
      callbacks_[i]->on_checkpoint_save(s, archive);
    });
  payload.rng();

  TrainingSnapshot snapshot;
  snapshot.step = s.global_step;
  if (phase_ == Phase::kFitStart) {
    snapshot.epoch = 0, snapshot.batches = 0, snapshot.epoch_complete = true;
  } else if (phase_ == Phase::kEpochEnd) {
    snapshot.epoch = s.epoch, snapshot.batches = s.batches_per_epoch;
    snapshot.epoch_complete = true;
  } else {
    snapshot.epoch = s.epoch, snapshot.batches = s.batch_in_epoch + 1;
    snapshot.epoch_complete = false;
  }
  track::PayloadCounters c;
  c.epoch = snapshot.epoch;
  c.batches = snapshot.batches;
  c.epoch_complete = snapshot.epoch_complete;
  c.global_step = s.global_step;
  c.batches_per_epoch = s.batches_per_epoch;
  c.world_size = options_.world_size();
  c.seed = static_cast<int64_t>(options_.seed());
  // At an epoch's end the epoch counts as done: the loop records it after on_epoch_end.
  c.epochs_done = phase_ == Phase::kEpochEnd ? s.epoch : result_.epochs;
  c.best_epoch = s.best.epoch;
  c.best_metric = s.best.by.name;
  c.best_value = s.best.value;
  c.best_val_loss = s.best.val_loss;
  c.stop_reason = static_cast<int64_t>(s.stop_reason);
  c.stop_message = s.stop_message;
  if (scaler_) c.grad_scale = scaler_->scale(), c.grad_scale_good_steps = scaler_->good_steps();
  c.lr = options_.lr();
  c.weight_decay = options_.weight_decay();
  payload.counters(c);
  // The resolved settings, so that a checkpoint alone says what built and trained its model.
  payload.config(options_.config() ? options_.config()->to_toml() : "");
  if (!snapshot.epoch_complete)
    payload.epoch_metrics(
        [&](torch::serialize::OutputArchive& archive) { epoch_metrics_->save(archive); });
  // Serialized here, on the training thread: the archive holds references to live tensors, and
  // the bytes are a copy the caller may write from another thread.
  snapshot.payload = payload.bytes();
  return snapshot;
}

void Trainer::restore_model(Restore& r) {
  TrainState& s = state_;
  track::PayloadReader& payload = *r.payload;
  const std::string& file = payload.origin();
  payload.check_format();
  payload.load_model(s.model->module());
  r.counters = payload.counters();
  const track::PayloadCounters& c = r.counters;
  if (c.lr && *c.lr > 0 && options_.lr() != *c.lr && s.resumed)
    s.resumed->lr_scale = options_.lr() / *c.lr;
  // Each rank's loader position and RNG state mean nothing to a job of another size (checkpoints
  // from before this field are taken as they come).
  if (c.world_size && *c.world_size != options_.world_size()) {
    const int64_t world = *c.world_size;
    throw ConfigError(
        "checkpoint " + file + " was taken by a job of " + std::to_string(world) + " process" +
        (world == 1 ? "" : "es") + ", this one has " + std::to_string(options_.world_size()) +
        (world == 1 ? "; resume it as one process (trainscope resume RUN, no --nproc)"
                    : "; resume at the same world size (trainscope resume RUN --nproc " +
                          std::to_string(world) + ", or as many ranks under your launcher)"));
  }
  // The loader's position and the lr schedule's count steps of the checkpoint's epochs.
  if (c.batches_per_epoch != s.batches_per_epoch)
    throw ConfigError("checkpoint " + file + " was taken with " +
                      std::to_string(c.batches_per_epoch) + " batches per epoch, this fit has " +
                      std::to_string(s.batches_per_epoch) +
                      "; the data set, the batch size or the number of data-parallel ranks "
                      "changed since");
  // Mid-epoch, the loader's position is in the order the checkpoint's seed drew; at an epoch's
  // end the next epoch is drawn afresh, so another seed may take over there.
  if (c.seed != static_cast<int64_t>(options_.seed()) && !r.point.epoch_complete)
    throw ConfigError("checkpoint " + file + " was taken in the middle of epoch " +
                      std::to_string(c.epoch) + " with train.seed " + std::to_string(c.seed) +
                      ", this fit has " + std::to_string(options_.seed()) +
                      "; the seed orders the epoch's batches, so it may change from an epoch's "
                      "end, not within one");
}

void Trainer::restore(Restore& r) {
  TrainState& s = state_;
  track::PayloadReader& payload = *r.payload;
  // Callbacks first: one may change the optimizer's parameter groups (unfreezing) that the
  // optimizer's state then refers to.
  const auto keys = callback_keys();
  for (size_t i = 0; i < callbacks_.size(); ++i) {
    torch::serialize::InputArchive archive;
    if (payload.callback(keys[i], archive)) callbacks_[i]->on_checkpoint_load(s, archive);
  }
  payload.load_optimizer(*optimizer_);
  payload.restore_rng();
  const track::PayloadCounters& c = r.counters;
  // Another train.seed continues the run on another random stream (dropout, and through the
  // loader and augmentation, which follow the seed, another data order): paired replays from
  // one checkpoint differ by their seed alone. Derived from the seed and the step: the same
  // command gives the same run (a later resume restores the new stream from its own checkpoints).
  if (c.seed != static_cast<int64_t>(options_.seed()))
    torch::manual_seed(options_.seed() * 0x9E3779B97F4A7C15ULL + uint64_t(c.global_step));
  // Settings changed on resume apply to what was restored: each group's lr scales by the change
  // of train.lr, and every group takes the new weight decay.
  for (auto& group : optimizer_->param_groups()) {
    auto& o = group.options();
    if (s.resumed) o.set_lr(o.get_lr() * s.resumed->lr_scale);
    if (!c.weight_decay || *c.weight_decay == options_.weight_decay()) continue;
    if (auto* adam = dynamic_cast<torch::optim::AdamOptions*>(&o))
      adam->weight_decay(options_.weight_decay());
    else if (auto* adamw = dynamic_cast<torch::optim::AdamWOptions*>(&o))
      adamw->weight_decay(options_.weight_decay());
    else if (auto* sgd = dynamic_cast<torch::optim::SGDOptions*>(&o))
      sgd->weight_decay(options_.weight_decay());
  }
  s.global_step = c.global_step;
  if (scaler_ && c.grad_scale) scaler_->set_state(*c.grad_scale, c.grad_scale_good_steps);
  // The best so far, unless the resume ranks by another metric (train.monitor changed).
  if (c.best_metric == s.best.by.name) {
    s.best.epoch = c.best_epoch;
    s.best.value = c.best_value;
    s.best.val_loss = c.best_val_loss;
  }
  result_.epochs = c.epochs_done;
  if (!r.point.epoch_complete) {
    torch::serialize::InputArchive metrics;
    payload.epoch_metrics(metrics);
    epoch_metrics_->load(metrics);
  }
  // A stop the callbacks had decided stands; an interruption or a failed save is what the resume
  // is for.
  const auto reason = static_cast<StopReason>(c.stop_reason);
  if (reason != StopReason::kNone && reason != StopReason::kInterrupted &&
      reason != StopReason::kCheckpointFailed) {
    s.request_stop(reason, c.stop_message);
  }
}

FitResult Trainer::resume(Model& model, std::shared_ptr<const data::Dataset> train,
                          std::shared_ptr<const data::Dataset> val,
                          const std::filesystem::path& run_dir, ResumeMode mode) {
  namespace fs = std::filesystem;
  const bool write = mode == ResumeMode::kWrite;
  if (write && (!run_ || run_->dir() != run_dir)) attach_run(track::Run::open(run_dir));
  if (!write && !fs::exists(run_dir / "run.sqlite"))
    throw Error("no run at " + run_dir.string() + " (it has no run.sqlite)");
  const fs::path dir = run_dir / "checkpoints";
  std::optional<Restore> restore;
  if (auto good = track::newest_good_checkpoint(dir, /*set_aside=*/write)) {
    restore.emplace();
    const track::CheckpointInfo& info = good->info;
    restore->point = {good->file, info.epoch, info.step, info.batches, info.epoch_complete};
    restore->payload.emplace(good->payload, good->file.string(), device_);
    restore->write = write;
    restore->mark = {info.metrics_mark, info.findings_mark};
  }
  if (!restore) {
    if (write) {
      // A run killed before its first checkpoint had trained nothing; one with history would
      // lose it.
      if (run_->store().mark().metrics > 0)
        throw CheckpointError(
            "run " + run_dir.string() + " has no usable checkpoint in " + dir.string() +
            " (train.checkpoints was off, or the files are damaged); resuming "
            "would start it over and drop its history. `trainscope train "
            "--config " +
            (run_dir / "config.toml").string() + "` trains a new run with its settings");
      std::fprintf(stderr,
                   "trainscope: no checkpoint in %s yet: the fit starts over from its first "
                   "epoch\n",
                   dir.c_str());
      run_->store().truncate_to({0, 0}, -1);
    }
    restore.emplace();  // a resume from nothing: callbacks see state.resumed with no file
  }
  return run_fit(model, std::move(train), std::move(val), &*restore);
}

EvalResult Trainer::evaluate(Model& model, const data::Dataset& dataset, const std::string& split,
                             bool confusion) {
  const auto start = std::chrono::steady_clock::now();
  model.to(device_);
  if (options_.channels_last()) to_channels_last(model);
  EvalModeGuard eval_mode(model);
  // No autograd bookkeeping at all (no version counters, no views tracked), and the training's
  // autocast, as Lightning evaluates under its precision plugin. Not for TorchScript: its
  // profiling executor keeps tensors of the runs it profiles, and one made under InferenceMode
  // fails the next training step ("Inference tensors cannot be saved for backward"; PyTorch
  // 1.13, reproduced in Python). Those evaluate under NoGradGuard.
  std::optional<c10::InferenceMode> inference;
  std::optional<torch::NoGradGuard> no_grad;
  const auto modules = model.module().modules(/*include_self=*/true);
  if (std::any_of(modules.begin(), modules.end(), [](const auto& m) {
        return dynamic_cast<const models::detail::ScriptedModule*>(m.get()) != nullptr;
      }))
    no_grad.emplace();
  else
    inference.emplace();
  detail::AutocastScope autocast(options_.precision(), device_);
  MetricAccumulator metrics(options_.task(), confusion, options_.metrics());
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
    data::Batch b = batch.map([&](const torch::Tensor& t) { return t.to(device_, true); });
    if (options_.channels_last()) b.x = channels_last(b.x);
    const torch::Tensor &x = b.x, &y = b.y;
    torch::Tensor output, loss;
    if (options_.step()) {
      StepResult r = options_.step()(model, b);
      if (first) check_step(r), check_output(r.outputs, y);
      output = r.outputs, loss = r.loss;
    } else {
      output = model.forward(x, b.inputs);
      if (first) check_output(output, y);
      loss = compute_loss(output, y);
    }
    first = false;
    metrics.update(loss, output, y);
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
  r.task = options_.task();
  r.metrics = metrics.compute();
  r.samples = metrics.count();
  if (confusion && class_indices(r.task)) {
    r.confusion = metrics.confusion();
    r.per_class = per_class_metrics(r.confusion, options_.class_names(), per_position(r.task));
  } else if (confusion && r.task == Task::kMultilabel) {
    r.per_class = per_label_metrics(metrics.label_counts(), options_.class_names());
  }
  r.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  return r;
}

EvalResult Trainer::validate(Model& model, const data::Dataset& dataset) {
  return evaluate(model, dataset, "val", /*confusion=*/false);
}

EvalResult Trainer::test(Model& model, const data::Dataset& dataset) {
  if (dataset.size() == 0) throw DataError("the test set is empty");
  EvalResult r = evaluate(model, dataset, "test", /*confusion=*/true);
  for (auto& cb : callbacks_) cb->on_test_end(state_, r);
  return r;
}

}  // namespace trainscope
