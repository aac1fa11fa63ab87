#pragma once
// The Callback interface: everything optional in a fit (logging, progress, early stopping,
// checkpoints, diagnostics, user code) is a Callback.

#include <trainscope/train/state.h>

#include <exception>
#include <string>

namespace trainscope {

struct EvalResult;

// Where a callback runs relative to the others. The Trainer calls hooks in ascending order
// (stable for equal orders), so that a checkpoint records what the others decided:
//   kDistributed (data parallel: makes the numbers the job's) -> kWeights (weight averaging:
//   which weights the model holds) -> kLogging (metrics, run store, console) -> kDiagnostics ->
//   kUser -> kEarlyStopping -> kCheckpoint.
enum class CallbackOrder : int {
  kDistributed = -100,
  kWeights = -50,
  kLogging = 0,
  kDiagnostics = 100,
  kUser = 200,
  kEarlyStopping = 300,
  kCheckpoint = 400,
};

// Abstract base with virtual no-op hooks, grouped by lifecycle. Override the ones you need.
// Hooks run on the training thread; a hook that throws ends the fit (on_exception is then called
// on every callback and the exception propagates out of fit()).
//
// Order of calls in a fit (see tests/unit/hook_order_test.cpp for the literal sequence):
//   on_fit_start
//   per epoch: on_epoch_start,
//              per batch: on_train_batch_start, on_after_backward, on_before_optimizer_step,
//                         on_train_batch_end
//              on_validation_start, on_validation_end, on_epoch_end
//   on_fit_end
class Callback {
 public:
  virtual ~Callback() = default;

  // Name used in logs and, for stateful callbacks, as the stable key of their checkpointed state.
  virtual std::string name() const = 0;
  virtual CallbackOrder order() const { return CallbackOrder::kUser; }

  // fit
  virtual void on_fit_start(TrainState&) {}
  virtual void on_fit_end(TrainState&) {}
  // epoch
  virtual void on_epoch_start(TrainState&) {}
  virtual void on_epoch_end(TrainState&) {}  // state.train_metrics and state.val_metrics are set
  // batch: state.loss holds the batch loss from on_after_backward on
  virtual void on_train_batch_start(TrainState&) {}
  virtual void on_after_backward(TrainState&) {}         // gradients are populated
  virtual void on_before_optimizer_step(TrainState&) {}  // last chance to change gradients
  virtual void on_train_batch_end(TrainState&) {}
  // evaluation
  virtual void on_validation_start(TrainState&) {}
  virtual void on_validation_end(TrainState&) {}  // state.val_metrics is set
  virtual void on_test_end(TrainState&, const EvalResult&) {}
  // checkpoints: stateful callbacks write their state under name() whenever a checkpoint is
  // captured (TrainState::capture), and read it back when Trainer::resume restores one: after
  // on_fit_start (so what on_fit_start resets is then overwritten) and after the model's weights
  // are loaded, before the optimizer's state. A fit resumed mid-epoch calls on_epoch_start again
  // for that epoch: it must give the same result from the restored state. read_int and its
  // siblings (train/archive.h) read the values back.
  virtual void on_checkpoint_save(TrainState&, torch::serialize::OutputArchive&) {}
  virtual void on_checkpoint_load(TrainState&, torch::serialize::InputArchive&) {}
  // failure: called once when an exception escapes the step loop, before it propagates
  virtual void on_exception(TrainState&, const std::exception_ptr&) {}
};

}  // namespace trainscope
