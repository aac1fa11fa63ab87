#pragma once
// Internal: mixed precision for the Trainer's step. Autocast runs the forward pass and the loss
// in bfloat16 (CPU or CUDA) or float16 (CUDA); float16 gradients underflow, so a loss scaler
// (LibTorch's C++ API has none) scales the loss, unscales the gradients and skips steps whose
// gradients overflowed, as torch.cuda.amp.GradScaler does.
#include <trainscope/train/trainer.h>

#include <ATen/autocast_mode.h>
#include <torch/torch.h>

#include <string>
#include <vector>

namespace trainscope::detail {

// Enables autocast for `device` at `dtype` in a scope, and restores what was before.
class AutocastScope {
 public:
  AutocastScope(bool enabled, torch::Device device, at::ScalarType dtype);
  // The training's autocast: off for fp32, else at bf16's or fp16's dtype (a resolved precision).
  AutocastScope(Precision precision, torch::Device device)
      : AutocastScope(precision != Precision::kFp32, device,
                      precision == Precision::kFp16 ? at::kHalf : at::kBFloat16) {}
  ~AutocastScope();
  AutocastScope(const AutocastScope&) = delete;
  AutocastScope& operator=(const AutocastScope&) = delete;

 private:
  bool enabled_, cuda_, was_enabled_ = false;
  at::ScalarType was_dtype_ = at::kFloat;
};

// torch.cuda.amp.GradScaler's rule: start at 2^16, halve when a step's gradients hold Inf or
// NaN (and skip that step), double after 2000 steps in a row without.
class GradScaler {
 public:
  double scale() const { return scale_; }
  torch::Tensor scale_loss(const torch::Tensor& loss) const { return loss * scale_; }
  // Divides every gradient by the scale; false when one is not finite (one host sync).
  bool unscale(const std::vector<torch::Tensor>& params) const;
  void update(bool finite);
  void set_state(double scale, int64_t good_steps) { scale_ = scale, good_ = good_steps; }
  int64_t good_steps() const { return good_; }

 private:
  double scale_ = 65536.0;
  int64_t good_ = 0;
};

}  // namespace trainscope::detail
