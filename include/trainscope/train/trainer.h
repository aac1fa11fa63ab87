#pragma once
// Trainer: fit / validate / test with a practitioner's defaults, everything optional a Callback.

#include <trainscope/config.h>
#include <trainscope/data/dataset.h>
#include <trainscope/models/model.h>
#include <trainscope/train/callback.h>
#include <trainscope/train/gradient_sync.h>
#include <trainscope/train/loss.h>
#include <trainscope/train/metric.h>
#include <trainscope/train/metrics.h>
#include <trainscope/train/state.h>

#include <filesystem>
#include <memory>
#include <optional>
#include <string>
#include <vector>

namespace trainscope {

namespace track {
class Run;
}
namespace detail {
class GradScaler;
}
namespace data {
class DataLoader;
class Transform;
}  // namespace data

enum class Optimizer { kAdam, kAdamW, kSgd };  // sgd: momentum 0.9
inline constexpr EnumName<Optimizer> kOptimizerNames[] = {
    {Optimizer::kAdam, "adam"}, {Optimizer::kAdamW, "adamw"}, {Optimizer::kSgd, "sgd"}};

// kBf16: autocast to bfloat16 (CPU or CUDA); kFp16: autocast to float16 with a loss scaler (CUDA).
// Weights and the optimizer stay float32 either way. kAuto: what auto_precision chooses.
enum class Precision { kFp32, kBf16, kFp16, kAuto };
inline constexpr EnumName<Precision> kPrecisionNames[] = {{Precision::kFp32, "fp32"},
                                                          {Precision::kBf16, "bf16"},
                                                          {Precision::kFp16, "fp16"},
                                                          {Precision::kAuto, "auto"}};

// Precision::kAuto's rule: bf16 on a CPU that multiplies bfloat16 natively (native_bf16()) when
// the fit does not fine-tune (a head phase trains on cached float32 features), fp32 otherwise
// (CUDA included, where bf16 is not measured yet). The reason says why, in words with numbers.
struct PrecisionChoice {
  Precision precision;
  std::string reason;
};
PrecisionChoice auto_precision(const torch::Device& device, bool fine_tuning);

// Where a fit runs: auto (CUDA when present, else the CPU), the CPU, or a CUDA device (index -1:
// the current one). Config text: "auto", "cpu", "cuda", "cuda:N".
struct DeviceChoice {
  enum class Kind { kAuto, kCpu, kCuda };
  Kind kind = Kind::kAuto;
  int index = -1;
  static std::optional<DeviceChoice> parse(const std::string& text);  // nullopt: not a device
  std::string str() const;
  // torch's device. Throws ConfigError when it names CUDA and this machine (or this LibTorch)
  // has none.
  torch::Device resolve() const;
  bool operator==(const DeviceChoice&) const = default;
};

// What a step of your own (TrainerOptions::step) returns: the batch's loss, which the optimizer
// minimizes and the metrics, callbacks and run report as the loss, and the outputs that the
// metrics (against batch.y) and the diagnostics see.
struct StepResult {
  torch::Tensor loss;
  torch::Tensor outputs;
};
// A step of your own (contrastive, several losses, several targets): from the model and the
// batch on the training device (training batches augmented) to the loss and the outputs.
using StepFunction = std::function<StepResult(const Model& model, const data::Batch& batch)>;

// Options of a Trainer: the loop itself. Defaults are the defaults policy's (the settings table,
// src/session/settings.cpp, which a test holds them to) and are written here as literals.
// Chained setters: TrainerOptions().max_epochs(10).lr(3e-4). Callbacks own their options; the
// default set (logging, diagnostics, early stopping, checkpoints) comes from a Session.
struct TrainerOptions {
  TORCH_ARG(Task, task) = Task::kClassification;
  TORCH_ARG(int64_t, max_epochs) = 50;  // 30-100 from scratch; early stopping ends sooner
  TORCH_ARG(Optimizer, optimizer) = Optimizer::kAdam;
  TORCH_ARG(double, lr) = 1e-3;
  TORCH_ARG(double, weight_decay) = 0.0;  // L2 (decoupled for AdamW)
  // Before each optimizer step, scale the gradients so that their global L2 norm is at most this
  // (0: no clipping). Callbacks see the gradients before clipping.
  TORCH_ARG(double, grad_clip) = 0.0;
  // The built-in loss (train/loss.h) and its options.
  TORCH_ARG(Loss, loss) = Loss::kAuto;
  TORCH_ARG(std::vector<double>, class_weights) = {};  // cross-entropy; empty: all 1
  TORCH_ARG(double, label_smoothing) = 0.0;            // cross-entropy
  TORCH_ARG(double, huber_delta) = 1.0;                // huber
  // A loss of your own, (outputs, targets) -> the batch's mean loss: it replaces the built-in.
  // What it returns is what the step minimizes and what metrics, callbacks and the run report
  // as the loss.
  TORCH_ARG(LossFunction, loss_function) = nullptr;
  // A step of your own: it replaces forward and loss, in training (then backward, clipping, the
  // optimizer step, every callback, checkpoint and diagnostic as usual) and in evaluation (eval
  // mode, without gradients; model.is_training() tells them apart), like Lightning's
  // training_step and validation_step.
  TORCH_ARG(StepFunction, step) = nullptr;
  // Metrics beside the loss and accuracy (MAE, RMSE), reported for every pass as
  // <split>_<name> (train/metric.h: make_metric, or your own Metric) and rankable by `monitor`.
  TORCH_ARG(std::vector<std::shared_ptr<const Metric>>, metrics) = {};
  // A Session's train.batch_size = "auto" chooses it before the fit (tune/batch_size.h).
  TORCH_ARG(int64_t, batch_size) = 128;
  TORCH_ARG(int64_t, eval_batch_size) = 1000;
  TORCH_ARG(uint64_t, seed) = 0;       // shuffling and augmentation (a Session seeds weights too)
  TORCH_ARG(int64_t, log_every) = 50;  // callbacks log per-step values every N steps
  // What the fit ranks its epochs by (TrainState::best): "<split>_<metric>", with mode min, max
  // or auto (max for accuracy-like metrics). Without a validation set a val_ monitor ranks by the
  // training split's metric of the same name.
  TORCH_ARG(std::string, monitor) = "val_loss";
  TORCH_ARG(std::string, monitor_mode) = "auto";
  TORCH_ARG(DeviceChoice, device) = {};
  TORCH_ARG(Precision, precision) = Precision::kFp32;  // a Session's default is kAuto
  TORCH_ARG(bool, channels_last) = false;  // 4-D weights and inputs in NHWC (faster convs on CUDA)
  // Data parallel (dist/data_parallel.h): makes gradients the job's in each step; this rank's
  // shard of every epoch is rank, rank + world_size, ... of the permutation (equal shards).
  TORCH_ARG(std::shared_ptr<GradientSync>, gradient_sync) = nullptr;
  TORCH_ARG(int64_t, rank) = 0;
  TORCH_ARG(int64_t, world_size) = 1;
  // Data: loader threads (data.workers) and the augmentation of training batches, applied on
  // the device after the copy with data::augment_generator(seed, epoch, batch); validation and
  // test batches are never augmented. nullptr: no augmentation.
  TORCH_ARG(int64_t, loader_workers) = 0;  // 0: gather batches in the step loop (in-memory data)
  TORCH_ARG(std::shared_ptr<data::Transform>, augment) = nullptr;
  // Fine-tuning: the model's head, a Linear layer by module name (models::find_head). While it is
  // all that trains (the rest frozen: requires_grad false), the epoch trains it on the backbone's
  // features, computed once in eval mode for the training and validation sets and kept in
  // memory (train/head_features.h): the same batches and optimizer steps, and the same
  // checkpoints, without running the frozen backbone. Inputs are not augmented in that phase
  // (the features are of the inputs as they are), and the backbone's dropout is off there, as in
  // Keras's base_model(x, training=False). Not with bf16 or fp16. Empty: no head phase.
  TORCH_ARG(std::string, head) = "";
  TORCH_ARG(bool, cache_features) = true;
  TORCH_ARG(int64_t, feature_cache_mib) = 2048;  // a larger cache is not built (the fit says so)
  // Run directory: <runs_dir>/<run_name>; an empty runs_dir keeps nothing on disk.
  TORCH_ARG(std::string, runs_dir) = "runs";
  TORCH_ARG(std::string, run_name) = "";  // empty: <model>-<yyyymmdd>-<hhmmss>
  TORCH_ARG(std::vector<std::string>, class_names) = {};
  // The resolved configuration to record in the run (config.toml, every checkpoint); a Session
  // passes its own. Unset: the run records none.
  TORCH_ARG(std::optional<Config>, config) = std::nullopt;

 public:
  // Throws ConfigError naming the first out-of-range field and its value.
  void validate() const;
};

// What fit() did and why it ended.
struct FitResult {
  StopReason stop_reason = StopReason::kNone;
  std::string stop_message;
  bool interrupted = false;  // SIGINT/SIGTERM ended it mid-epoch (whatever else was requested)
  int64_t epochs = 0;        // epochs completed
  int64_t global_step = 0;
  int64_t best_epoch = 0;              // the best epoch by the monitor (0 without validation)
  double best_val_loss = 0.0;          // its validation loss
  MetricMap train_metrics;             // of the last epoch
  MetricMap val_metrics;               // of the last epoch
  std::filesystem::path run_dir;       // empty when no run directory is kept
  std::filesystem::path resumed_from;  // the checkpoint Trainer::resume continued from
  double seconds = 0.0;
  // The head phase's feature cache: what it held, or why there was none; empty without a head.
  std::string feature_cache;
};

// Trains and evaluates models. Owns its callbacks and the run it writes to.
// Not thread-safe; one fit at a time. Throws trainscope::Error for bad options or data, and
// ShapeError when the model's output does not fit the task.
class Trainer {
 public:
  // A bare loop: no callbacks until add_callback() (Session installs the default set). Throws
  // ConfigError for out-of-range options and a device this machine lacks.
  explicit Trainer(TrainerOptions options = {});
  ~Trainer();
  Trainer(const Trainer&) = delete;
  Trainer& operator=(const Trainer&) = delete;

  // Adds a callback; hooks run in CallbackOrder (callback.h), ties in insertion order.
  void add_callback(std::shared_ptr<Callback> callback);
  const std::vector<std::shared_ptr<Callback>>& callbacks() const { return callbacks_; }

  // Trains `model` on `train` for up to max_epochs, validating on `val` (may be null) after
  // each epoch. Creates the run directory on first use. Only parameters that require gradients
  // go into the optimizer (a frozen backbone stays out of it).
  FitResult fit(Model& model, std::shared_ptr<const data::Dataset> train,
                std::shared_ptr<const data::Dataset> val);
  // Continues the fit recorded in `run_dir` from its newest good checkpoint (checkpoints/*.ckpt;
  // a truncated or corrupt file is named on stderr, set aside as <file>.corrupt, and the next
  // newest is tried). `model`, the data and this Trainer's options must be those of the original
  // fit. The model, optimizer, every callback's state, the RNG states, the loader's position
  // within the epoch and the counters are restored, and the run store is cut back to what it held
  // at the checkpoint, so its series continue without duplicates or gaps. On CPU the result is
  // bit-identical to the uninterrupted fit's. A fit that had already stopped ends at once (its
  // stop is part of the checkpoint; an interruption is not). When no checkpoint is usable the fit
  // starts over from `model` as given. Throws Error when `run_dir` holds no run, CheckpointError
  // when a checkpoint does not fit the model, ConfigError when the data no longer match it.
  // kReadOnly (the other ranks of a data-parallel job) restores from the same checkpoint without
  // writing to the run: no store, no renamed files.
  enum class ResumeMode { kWrite, kReadOnly };
  FitResult resume(Model& model, std::shared_ptr<const data::Dataset> train,
                   std::shared_ptr<const data::Dataset> val, const std::filesystem::path& run_dir,
                   ResumeMode mode = ResumeMode::kWrite);
  // Loss and metrics on `dataset`, in eval mode, without gradients. No callbacks.
  EvalResult validate(Model& model, const data::Dataset& dataset);
  // Like validate(), plus the confusion matrix and per-class metrics for classification;
  // callbacks get on_test_end (the run logger stores it, the progress printer prints it).
  EvalResult test(Model& model, const data::Dataset& dataset);

  // The device the options resolved to ("auto": CUDA when present).
  const torch::Device& device() const { return device_; }

  // Continue writing to an existing run (trainscope test RUN) instead of creating one.
  void attach_run(std::shared_ptr<track::Run> run);
  // The run written by the last fit (or attached); null before.
  const std::shared_ptr<track::Run>& run() const { return run_; }
  const TrainerOptions& options() const { return options_; }

 private:
  struct Restore;
  struct FeatureCache;
  enum class Phase { kNone, kFitStart, kBatchEnd, kEpochEnd };

  template <typename Hook, typename... Args>
  void call(Hook hook, Args&&... args);
  FitResult run_fit(Model& model, std::shared_ptr<const data::Dataset> train,
                    std::shared_ptr<const data::Dataset> val, Restore* restore);
  void train_epoch(Model& model, data::DataLoader& loader, int64_t first_batch);
  TrainingSnapshot capture();
  void restore_model(Restore& restore);  // and check that the checkpoint fits this fit
  void restore(Restore& restore);        // the rest: callbacks, optimizer, RNG, counters
  // Archive keys of the callbacks' state: name(), with "#2", "#3" for repeated names.
  std::vector<std::string> callback_keys() const;
  EvalResult evaluate(Model& model, const data::Dataset& dataset, const std::string& split,
                      bool confusion);
  torch::Tensor compute_loss(const torch::Tensor& output, const torch::Tensor& target) const {
    return loss_(output, target);
  }
  void check_output(const torch::Tensor& output, const torch::Tensor& target) const;
  void check_step(const StepResult& result) const;
  void ensure_run(const Model& model);
  // The cache when this epoch trains the head alone on it (built on first use), else null.
  FeatureCache* feature_cache(Model& model, const data::Dataset& train, const data::Dataset* val);

  TrainerOptions options_;
  torch::Device device_;
  LossFunction loss_;
  std::vector<std::shared_ptr<Callback>> callbacks_;
  std::shared_ptr<track::Run> run_;
  TrainState state_;
  // Of the running fit, for capture() and restore().
  std::unique_ptr<torch::optim::Optimizer> optimizer_;
  data::DataLoader* loader_ = nullptr;
  std::unique_ptr<MetricAccumulator> epoch_metrics_;
  std::unique_ptr<detail::GradScaler> scaler_;  // fp16 only
  std::unique_ptr<FeatureCache> cache_;         // of the running fit's head phase
  FitResult result_;
  Phase phase_ = Phase::kNone;
};

}  // namespace trainscope
