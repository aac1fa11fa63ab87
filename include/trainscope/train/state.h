#pragma once
// TrainState: what the Trainer and its callbacks share while a fit runs.

#include <trainscope/config.h>
#include <trainscope/tensor_map.h>
#include <trainscope/train/monitor.h>

#include <torch/torch.h>

#include <chrono>
#include <cstdint>
#include <filesystem>
#include <functional>
#include <limits>
#include <map>
#include <optional>
#include <string>

namespace trainscope {

class Model;

// What a model's outputs mean, and so the loss, the metrics and the test report:
//   classification: [batch, classes] logits for [batch] class indices;
//   regression:     [batch, targets] values for values;
//   multilabel:     [batch, labels] logits, one independent yes/no per label, for 0/1 targets of
//                   the same shape;
//   segmentation:   [batch, classes, H, W] logits (any number of spatial dimensions) for
//                   [batch, H, W] class indices: a class per pixel;
//   sequence:       [batch, time, classes] logits for [batch, time] class indices: a class per
//                   step (token tagging); a target of -100 marks padding, which counts nowhere.
enum class Task { kClassification, kRegression, kMultilabel, kSegmentation, kSequence };
inline constexpr EnumName<Task> kTaskNames[] = {{Task::kClassification, "classification"},
                                                {Task::kRegression, "regression"},
                                                {Task::kMultilabel, "multilabel"},
                                                {Task::kSegmentation, "segmentation"},
                                                {Task::kSequence, "sequence"}};

// Segmentation and sequence: a class for each position of an example.
inline bool per_position(Task task) {
  return task == Task::kSegmentation || task == Task::kSequence;
}
// The tasks whose targets are class indices (classification, segmentation, sequence).
inline bool class_indices(Task task) { return task == Task::kClassification || per_position(task); }

namespace track {
class Run;
}

// Why fit() ended. Every exit path sets one; fit() returns it and the run store records it.
enum class StopReason {
  kNone,              // still running
  kMaxEpochs,         // the epoch budget was used up
  kPatience,          // early stopping: the monitored metric stopped improving
  kNonFinite,         // loss or metric became NaN or Inf
  kUserCallback,      // a user callback asked to stop
  kDiagnosis,         // diagnostics stopped a failing run (opt-in auto-remedy)
  kInterrupted,       // SIGINT / SIGTERM
  kException,         // an exception escaped the step loop
  kThreshold,         // early stopping: the monitored metric reached stopping_threshold
  kDivergence,        // early stopping: the monitored metric crossed divergence_threshold
  kCheckpointFailed,  // a checkpoint could not be saved (checkpoint.on_error = "stop")
  kPruned,            // a sweep's successive halving stopped a trial behind the others
};

// Short stable name ("max_epochs", "patience", ...), used in the run store and on the console.
const char* to_string(StopReason reason);

// SIGINT or SIGTERM received during the running fit (the signal number), else 0. A fit stops
// after the batch in which it arrives; in data-parallel training the ranks agree on that batch.
int interrupt_signal();

struct TrainState;
// The learning rate of the running fit's first parameter group; NaN outside a fit.
double current_lr(const TrainState& state);

// Metrics of one split at the end of an evaluation pass or an epoch, by tag ("loss", "accuracy").
using MetricMap = std::map<std::string, double>;

// The state of a fit serialized at one moment (TrainState::capture): everything needed to
// continue from there, and where that is.
struct TrainingSnapshot {
  int64_t epoch = 0;            // 1-based; 0 at fit start
  int64_t step = 0;             // optimizer steps taken
  int64_t batches = 0;          // batches of `epoch` done
  bool epoch_complete = false;  // captured at on_epoch_end (or at fit start, epoch 0)
  std::string payload;          // a torch::serialize archive (see Trainer::resume)
};

// Where a resumed fit continues from.
struct ResumePoint {
  // The checkpoint it was restored from; empty when none was usable and the fit starts over
  // (from epoch 1, in the same run).
  std::filesystem::path file;
  int64_t epoch = 0;
  int64_t step = 0;
  int64_t batches = 0;
  bool epoch_complete = false;
  // The resumed fit's lr over the checkpoint's (train.lr changed on resume; 1 otherwise): the
  // learning rates restored with the optimizer and with the callbacks that keep their own (lr
  // schedules' bases, fine-tuning's group targets) are multiplied by it, so a schedule's position
  // and each group's ratio to the first carry over.
  double lr_scale = 1.0;
};

// The best epoch of a fit so far: the one best-so-far that early stopping restores, the best
// checkpoint saves, and the run store, diagnostics and FitResult report.
struct BestEpoch {
  // What epochs are ranked by: the fit's monitor (TrainerOptions::monitor), or, when the fit has
  // no validation set, the training split's metric of the same name ("train_loss").
  Monitor by;
  int64_t epoch = 0;   // 0: no epoch has reported the metric yet
  double value = 0.0;  // the metric at that epoch
  double val_loss = std::numeric_limits<double>::quiet_NaN();  // validation loss at that epoch
  bool improved = false;                                       // the epoch that just ended set it
};

// At an epoch's end, after validation and before on_epoch_end (the Trainer calls it): sets
// best.improved, and moves the best to this epoch when its value beats the best (a NaN or an
// infinity never does).
void update_best(TrainState& state);

// Mutable state of a fit, owned by the Trainer and passed by reference to every callback hook.
// Not thread-safe: only the training thread touches it.
struct TrainState {
  // Counters. `epoch` is 1-based while an epoch runs; `global_step` counts optimizer steps.
  int64_t epoch = 0;
  int64_t max_epochs = 0;
  int64_t global_step = 0;
  int64_t batch_in_epoch = 0;  // 0-based index of the current batch in its epoch
  int64_t batches_per_epoch = 0;
  int64_t batch_size = 0;             // size of the current batch
  Task task = Task::kClassification;  // of the fit (TrainerOptions::task)

  // The current batch on the training device: inputs, targets, the model's outputs (still in
  // the autograd graph until on_train_batch_end) and the loss, kept as tensors so that reading
  // them is the caller's choice (on CUDA, item() is a host-device sync).
  torch::Tensor inputs, targets, outputs;
  TensorMap named_inputs;  // the batch's further inputs (data::Batch::inputs)
  torch::Tensor loss;
  // The training loss of the model as its weights are now, on the first n examples of the
  // current batch (n <= 0: all of them), computed as the step computes it (the model's forward
  // and the loss, or TrainerOptions::step) but in full precision and without a graph. Set by the
  // Trainer for on_train_batch_end: a probe of the loss surface (diagnose: sharpness along the
  // step). It runs the model in its current mode, so a caller keeps BatchNorm's statistics and
  // the RNG as it found them.
  std::function<torch::Tensor(int64_t n)> batch_loss;

  // Fine-tuning's head phase (TrainerOptions::head): whether this epoch trains the head on the
  // cached features of the backbone (then `inputs` is undefined: the batch is features), and a
  // line saying what the cache holds or why there is none, set when that is decided.
  bool features_cached = false;
  std::string feature_cache;
  // Whether this epoch's training batches go through TrainerOptions::augment (when it has one).
  // A callback may hold the augmentation back (callbacks::DelayedAugmentation).
  bool augment_batches = true;
  // The first epoch of the fit's current phase, set by a callback that changes what trains
  // (fine-tuning unfreezing the backbone, augmentation starting); early stopping's patience
  // starts again there, counted from the phase's own best. 0: one phase.
  int64_t phase_epoch = 0;

  // Epoch-level results, filled at epoch end (train) and validation end (val).
  MetricMap train_metrics;
  MetricMap val_metrics;
  // The monitor of the fit (TrainerOptions::monitor) and its best epoch so far; the Trainer
  // checkpoints the best and restores it on resume.
  Monitor monitor;
  BestEpoch best;

  // Model and optimizer of the running fit; callbacks may read and, with care, modify them
  // (restore weights, change lr).
  Model* model = nullptr;
  torch::optim::Optimizer* optimizer = nullptr;
  // The run being written (directory and store); null when the Trainer keeps no run.
  track::Run* run = nullptr;

  std::chrono::steady_clock::time_point fit_start;

  // Set by the Trainer while a fit runs. Serializes the model, the optimizer, every callback's
  // on_checkpoint_save, the RNG states, the loader's position and the counters, so that
  // Trainer::resume continues exactly from this moment. Callable from on_fit_start,
  // on_train_batch_end (the state after that batch) and on_epoch_end (the completed epoch);
  // copies every tensor, so the caller may write the payload on another thread.
  std::function<TrainingSnapshot()> capture;
  // Set by Trainer::resume before on_fit_start; callbacks' on_checkpoint_load runs after it.
  std::optional<ResumePoint> resumed;

  // Ask the Trainer to stop at the end of the current epoch. The first request wins;
  // `message` says why in words with numbers ("val_loss has not improved for 5 epochs ...").
  void request_stop(StopReason reason, std::string message);
  bool stop_requested() const { return stop_reason != StopReason::kNone; }

  // SIGINT or SIGTERM arrived: the fit stops after this batch, which is checkpointed, even when
  // another stop (at the epoch's end) was already requested.
  bool interrupted = false;

  StopReason stop_reason = StopReason::kNone;
  std::string stop_message;
};

}  // namespace trainscope
