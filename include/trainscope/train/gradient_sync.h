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
};

}  // namespace trainscope
