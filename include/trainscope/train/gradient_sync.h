#pragma once
// GradientSync: what makes each process's gradients the job's in data-parallel training. The
// Trainer calls it in the step, in plain sight:
//   forward -> loss -> backward -> sync.after_backward -> (unscale) -> on_after_backward -> step
#include <trainscope/train/state.h>

namespace trainscope {

class GradientSync {
 public:
  virtual ~GradientSync() = default;
  // Before the forward pass of every training batch.
  virtual void before_forward(TrainState& state) = 0;
  // After backward: every trainable parameter's .grad holds the average over the job's ranks.
  virtual void after_backward(TrainState& state) = 0;
  // Before validation: every rank evaluates the same model (buffers included).
  virtual void before_validation(TrainState&) {}
  // After on_epoch_end: the ranks agree on whether the fit stops (one rank's decision, such as a
  // failed checkpoint on rank 0, stops them all).
  virtual void after_epoch(TrainState&) {}
};

}  // namespace trainscope
