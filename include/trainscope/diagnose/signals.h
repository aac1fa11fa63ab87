#pragma once
// The signals detectors read: cheap numbers gathered on the training device and read back in
// one transfer per logging interval (step signals) or once per epoch (epoch signals).

#include <cmath>
#include <cstdint>
#include <map>
#include <string>
#include <vector>

namespace trainscope::diagnose {

// Statistics of one parameter tensor at a logging step.
struct LayerSignals {
  std::string name;                 // parameter name, e.g. "0.weight"
  double grad_norm = 0.0;           // L2 norm of the gradient
  double weight_norm = 0.0;         // L2 norm of the weights
  double update_ratio = 0.0;        // ||w_after - w_before|| / ||w_before|| over the optimizer step
  double zero_grad_fraction = 0.0;  // share of gradient entries that are exactly zero
  bool is_weight = false;           // a matrix or kernel (dim >= 2), not a bias or norm scale
  // Weights: their units (output rows: out_features, out_channels) and how much the units differ,
  // as the mean over inputs of the standard deviation across units over the mean |w| (0: every
  // unit the same, as after a constant initialization).
  int64_t units = 0;
  double unit_spread = 1.0;
};

// Statistics of one activation layer (zoo models), over the examples of a batch.
struct ActivationSignals {
  std::string name;                 // e.g. "2:relu"
  std::string kind;                 // "relu", "sigmoid" or "tanh"
  double dead_fraction = 0.0;       // relu: share of units active for < 1% of the examples
  double saturated_fraction = 0.0;  // sigmoid/tanh: share of outputs within 1% of the bounds
};

// A BatchNorm layer whose weights are all frozen but that runs in training mode.
struct FrozenNormSignals {
  std::string name;    // e.g. "features.1"
  double drift = 0.0;  // relative change of its running mean or variance since the last logging
                       // step, the larger
};

struct StepSignals {
  int64_t step = 0;
  int64_t epoch = 0;
  double loss = 0.0;
  bool non_finite = false;     // any NaN/Inf in losses or gradients since the last logging step
  double grad_norm = 0.0;      // global L2 norm over all gradients
  double grad_abs_mean = 0.0;  // mean |g| over all gradient entries
  double lr = 0.0;
  std::vector<LayerSignals> layers;  // in parameter order: first layer first
  // The batch's outputs, for classification ([batch, classes] scores fed to cross-entropy, which
  // expects logits): their range, how far their rows are from summing to 1, the share exactly 0.
  bool classification_outputs = false;
  double output_min = 0.0, output_max = 0.0;
  double row_sum_error = 0.0;  // max over rows of |sum - 1|
  // The outputs' machine epsilon when they are narrower than float32 (autocast: bfloat16
  // 0.0078, float16 0.00098), else 0: probabilities rounded to it sum to 1 only within it.
  double output_epsilon = 0.0;
  double zero_fraction = 0.0;
  int64_t output_classes = 0;  // classification: scores per row (the number of classes)
  // Regression (floating-point targets): the outputs' range and zero share (output_min,
  // output_max, zero_fraction above), how many outputs there were, the share of outputs pinned at
  // a bounded activation's bound (>= 0.99, <= 0.01 and >= 0, <= -0.99), and the share of targets
  // beyond those bounds (above 1.01, below -0.01, below -1.01).
  bool regression_outputs = false;
  int64_t output_count = 0;
  // The model's last module when it is a bounded activation ("sigmoid", "tanh", "relu",
  // "softplus"); "" when it is not, or not known (a model that is not a Sequential or a
  // TorchScript graph). Set for classification and regression.
  std::string output_activation;
  double near_one = 0.0, near_zero = 0.0, near_minus_one = 0.0;
  double targets_above_one = 0.0, targets_below_zero = 0.0, targets_below_minus_one = 0.0;
  std::vector<ActivationSignals> activations;
  std::vector<FrozenNormSignals> frozen_norms;
  // Gradient noise scale estimates from the steps before this one (NaN when not measured):
  // |G|^2 and tr(Sigma), for a batch of `noise_batch` examples.
  double noise_gradient_sq = NAN, noise_trace = NAN;
  int64_t noise_batch = 0;
  // The loss along this step's own update u, on (the head of) the batch it was computed from,
  // with the same dropout masks: L(t) at θ + t·u for t = 0, 1/2, 1 fits a parabola
  // L0 + slope·t + curvature·t²/2 (NaN when not measured). With step_norm = |u|, the sharpness
  // along the step is curvature / |u|², and the optimizer moved as plain gradient descent would
  // with lr_eff = |u|² / -slope; lr_eff x sharpness = curvature / -slope is above 2 exactly when
  // the step overshoots the valley it descends into, so that the loss rises (Cohen et al.,
  // "Gradient Descent on Neural Networks Typically Occurs at the Edge of Stability", 2021).
  double step_slope = NAN, step_curvature = NAN, step_norm = NAN;
};

struct EpochSignals {
  int64_t epoch = 0;
  int64_t step = 0;
  int64_t max_epochs = 0;
  int64_t phase_epoch = 0;  // the first epoch of the fit's current phase (0: one phase)
  bool classification = true;
  int64_t num_classes = 0;  // classification
  double trivial_loss =
      0.0;  // loss of a predictor that ignores the input: log C, or the target variance
  std::map<std::string, double> train;  // loss, accuracy | mae, rmse
  std::map<std::string, double> val;    // empty without validation
  int64_t best_epoch = 0;               // lowest val_loss so far
  double best_val_loss = 0.0;
  double frozen_fraction = 0.0;  // share of parameter values that do not train (fine-tuning)
  int64_t steps_per_epoch = 0;   // optimizer steps per epoch
  int64_t batch_size = 0;        // examples per step (the largest batch of the epoch)
  // The gradient noise scale B_noise = tr(Sigma) / |G|^2 over the epoch's logging steps (ratio of
  // their sums; NaN when not measured), from `noise_samples` estimates; examples_per_step: the
  // batch of the job's optimizer step (batch_size x data-parallel processes).
  double noise_scale = NAN;
  int64_t noise_samples = 0;
  int64_t examples_per_step = 0;
  double lr = 0.0;  // the learning rate at the epoch's end
  // Early stopping will load the best epoch's weights back at the end of the fit
  // (DiagnosticsOptions::restores_best).
  bool restores_best = false;
  // The epoch's training batches were augmented (DiagnosticsOptions::augmentation and
  // TrainState::augment_batches): a remedy for overfitting does not propose adding it.
  bool augmented = false;
};

}  // namespace trainscope::diagnose
