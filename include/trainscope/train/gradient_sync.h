#pragma once
// GradientSync: what makes each process's gradients the job's in data-parallel training. The
// Trainer calls it in the step, in plain sight:
//   forward -> loss -> backward -> sync.after_backward -> (unscale) -> on_after_backward -> step
#include <trainscope/train/state.h>

#include <vector>

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
  // Sums `tensors` over the job's ranks, in place; every rank passes the same shapes in the same
  // order. The training epoch's metric state goes through it before the metrics are computed, so
  // that an F1 or an mIoU is the job's, not a mean of the ranks' (MetricAccumulator::sum_across).
  virtual void sum_across_ranks(std::vector<torch::Tensor>& /*tensors*/) {}
};

}  // namespace trainscope
