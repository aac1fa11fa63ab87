#pragma once
// Detectors: small pure classes that read the signal history and say, once, what is going wrong.
// No I/O; the Diagnostics callback wires them to the trainer, the console and the run store.
// Thresholds and their sources: DetectorThresholds.

#include <trainscope/diagnose/finding.h>
#include <trainscope/diagnose/signals.h>

#include <cmath>
#include <deque>
#include <memory>
#include <optional>
#include <vector>

namespace trainscope::diagnose {

// Every detector's thresholds, each a literal default with its source. Diagnostics passes
// DiagnosticsOptions::thresholds to the default detectors; a user may change any of them.
struct DetectorThresholds {
  // A step rule must hold at this many consecutive logging steps, so one odd batch never fires
  // (ours).
  int sustain_steps = 3;

  // AUTOTRAINER (Zhang et al., "AUTOTRAINER: An Automatic DNN Training Problem Detection and
  // Repair System", ICSE 2021): exploding when the first weight's gradient norm exceeds the last
  // weight's by this factor.
  double explode_ratio = 70.0;
  // Ours: a global gradient norm this many times the smallest of the last `growth_window` logging
  // steps is growth no healthy run shows once past its first interval.
  double growth_factor = 100.0;
  int growth_window = 10;

  // AUTOTRAINER: vanishing when the first/last gradient-norm ratio is below vanish_ratio and the
  // first weight's norm below vanish_first_norm.
  double vanish_ratio = 1e-3;
  double vanish_first_norm = 1e-4;
  // SageMaker Debugger's VanishingGradient rule: mean absolute gradient below this.
  double vanish_mean_abs = 1e-7;

  // Overfitting (the usual reading of learning curves; Keras/Lightning docs, Goodfellow et al.
  // ch. 7): validation loss rising for `rising_epochs` epochs while training loss falls;
  // (val - train) / train above `loss_gap` for `gap_epochs` epochs (info); a train-val accuracy
  // gap of at least `accuracy_gap` for two epochs, or `accuracy_gap_high` once training accuracy
  // exceeds `high_accuracy`.
  int rising_epochs = 3;
  // Calibrated on the healthy controls (bench/README.md): the rise must take the validation loss
  // at least this share above its lowest; a GELU MLP with dropout wobbled up 1.9% over 3 epochs
  // where runs that really overfit rose 6-10%.
  double rising_min = 0.03;
  double loss_gap = 0.1;
  int gap_epochs = 3;
  double accuracy_gap = 0.10;
  double accuracy_gap_high = 0.07;
  double high_accuracy = 0.9;

  // Underfitting, once a fair share of the epochs has run (`fair_share` of max_epochs, at least
  // `fair_min_epochs`, at most `fair_max_epochs`): training loss above `trivial_share` of a
  // trivial predictor's (log C, or the target variance); training accuracy below `chance_factor`
  // x chance; or slow convergence: a relative gain per epoch below `slow_gain` for `slow_epochs`
  // epochs while the loss is above `slow_share` of the trivial one (0.58 for 10 classes; a linear
  // model reaches about 0.45 on Fashion-MNIST, the reference CNN 0.2).
  double fair_share = 0.1;
  int fair_min_epochs = 2;
  int fair_max_epochs = 5;
  double trivial_share = 0.9;
  double chance_factor = 1.5;
  double slow_gain = 0.01;
  int slow_epochs = 3;
  double slow_share = 0.25;

  // Dying ReLU (AUTOTRAINER): at least `zero_grad_share` exactly-zero gradient entries in a
  // weight; or over `dead_unit_share` of a layer's units active for less than 1% of the examples
  // (the "dead unit" reading of Lu et al. 2019). Ours: between dead_unit_share and
  // `dead_unit_warning` the network wastes capacity but usually still learns well (the reference
  // CNN's 128-unit hidden layer sits near 55% with Adam at 1e-3 and reaches 92%): an info finding;
  // above it, a warning.
  double zero_grad_share = 0.7;
  double dead_unit_share = 0.5;
  double dead_unit_warning = 0.7;

  // Ours: over this share of a sigmoid/tanh layer's outputs within 1% of their bounds.
  // Calibrated on the healthy controls (bench/README.md): a tanh MLP trained well for 8 epochs of
  // 18,000 examples sits at 50-55%, saturation from unnormalized inputs near 100%; between
  // saturated_share and `saturated_warning` an info finding, above it a warning.
  double saturated_share = 0.5;
  double saturated_warning = 0.7;

  // Update-to-weight ratio (CS231n, "Neural Networks Part 3": about 1e-3 is healthy); a median
  // over the weights outside [update_low, update_high] means the learning rate is far off.
  double update_low = 1e-5;
  double update_high = 1e-1;

  // Ours: 3 direction changes in the last 4 epoch-to-epoch moves of the training loss, each over
  // this share of the loss. The training loss averages a whole epoch; a validation loss over a
  // small split wobbles by more than that in healthy runs, so it is not used.
  double oscillation_share = 0.05;

  // Ours: a weight whose units differ by less than this share of its mean |w| (LayerSignals::
  // unit_spread) at sustain_steps logging steps in a row. A constant initialization gives every
  // unit the same gradient, so they stay the same (the symmetry random initialization exists to
  // break; Goodfellow et al., Deep Learning, sec. 8.4). Float noise between identical units is
  // ~1e-7; the default initializations give ~0.6.
  double symmetric_spread = 1e-4;

  // Ours: after a fair share of the epochs (as underfitting), a training loss within
  // `still_first` of its first logged value and within `still_epoch` of the previous epoch's has
  // not moved: nothing is learning. Healthy runs fall by 20% or more from the first logging step
  // to the second epoch.
  double still_first = 0.05;
  double still_epoch = 0.01;

  // Ours: a run of fewer than `min_run_steps` optimizer steps (steps per epoch x epochs) is too
  // short for Adam at its default lr 1e-3 to move a weight by more than ~0.05; the remedy aims
  // at `advised_run_steps`.
  int64_t min_run_steps = 50;
  int64_t advised_run_steps = 500;

  // Ours: regression targets out of the outputs' reach: at least `unreachable_share` of the
  // targets beyond the bound of the activation the outputs stay within (0 or 1 for a sigmoid or
  // a ReLU, -1 or 1 for a tanh), with at least `pinned_share` of the outputs pinned at that
  // bound, over at least `min_outputs` outputs, at sustain_steps logging steps in a row.
  double unreachable_share = 0.05;
  double pinned_share = 0.1;
  int64_t min_outputs = 32;

  // Ours: a BatchNorm layer whose weights are frozen but whose running mean or variance moved by
  // more than this share between logging steps, at sustain_steps logging steps in a row. In
  // eval mode they do not move at all; in training mode they follow every batch (Keras runs a
  // frozen BatchNormalization in inference mode for this reason: its transfer-learning guide).
  double norm_drift = 1e-3;

  // McCandlish et al. 2018: the gradient noise scale B_noise predicts the critical batch size;
  // batches far above it spend examples for little gain per step, batches far below it take
  // more steps than needed. Advice (info) when the batch is more than `noise_batch_factor` x
  // B_noise or less than 1 / that, over at least `noise_min_samples` estimates in an epoch.
  double noise_batch_factor = 4.0;
  int64_t noise_min_samples = 5;

  // Cohen et al. 2021 (gradient descent is stable while lr x sharpness < 2) applied along the
  // step the optimizer took (StepSignals::step_curvature): lr_eff x sharpness above `edge_ratio`
  // at sustain_steps measured logging steps in a row means each step overshoots the valley it
  // descends into, so that the loss rises on the batch it was computed from. Calibrated on the
  // healthy controls (bench/README.md).
  double edge_ratio = 2.0;
};

// Consumes signals in step order; returns a Finding whenever its rule holds. Diagnostics reports
// the first Finding of each kind, and later ones only when more severe, so the console shows
// each problem once.
// Not thread-safe.
class Detector {
 public:
  virtual ~Detector() = default;
  virtual std::string kind() const = 0;
  virtual std::optional<Finding> on_step(const StepSignals&) { return std::nullopt; }
  virtual std::optional<Finding> on_epoch(const EpochSignals&) { return std::nullopt; }
  // The history the rule keeps, as JSON text, for checkpoints; load_state() continues from it, so
  // a resumed fit finds what the uninterrupted one would.
  virtual std::string save_state() const { return "{}"; }
  virtual void load_state(const std::string&) {}
};

// A detector whose rule reads DetectorThresholds.
class ThresholdDetector : public Detector {
 public:
  explicit ThresholdDetector(DetectorThresholds thresholds = {}) : t_(thresholds) {}

 protected:
  DetectorThresholds t_;
};

// NaN or Inf in the loss or the gradients.
class NonFiniteDetector : public Detector {
 public:
  std::string kind() const override { return "non_finite"; }
  std::optional<Finding> on_step(const StepSignals& s) override;
  std::optional<Finding> on_epoch(const EpochSignals& e) override;
};

// Classification outputs that are already probabilities (every row in [0, 1] and summing to 1,
// within 1e-3, or the outputs' epsilon under bf16 or fp16 autocast) at 2 logging steps in a row: a
// softmax before cross-entropy, which applies log-softmax itself; the gradients through the double
// softmax are flat and the model learns slowly or not at all.
class ProbabilityOutputsDetector : public Detector {
 public:
  std::string kind() const override { return "softmax_before_loss"; }
  std::optional<Finding> on_step(const StepSignals& s) override;
  std::string save_state() const override;
  void load_state(const std::string& state) override;

 private:
  int streak_ = 0;
};

// Classification outputs never negative, and at least 5% of them exactly 0, at 2 logging steps
// in a row (and not probabilities): logits through a ReLU, which cannot say "unlikely" and pass
// no gradient where they are 0.
class NonNegativeLogitsDetector : public Detector {
 public:
  std::string kind() const override { return "relu_on_logits"; }
  std::optional<Finding> on_step(const StepSignals& s) override;
  std::string save_state() const override;
  void load_state(const std::string& state) override;

 private:
  int streak_ = 0;
};

// First/last gradient-norm ratio above explode_ratio, or the global norm growing growth_factor x
// within growth_window logging steps.
class ExplodingGradientDetector : public ThresholdDetector {
 public:
  using ThresholdDetector::ThresholdDetector;
  std::string kind() const override { return "exploding_gradients"; }
  std::optional<Finding> on_step(const StepSignals& s) override;

  std::string save_state() const override;
  void load_state(const std::string& state) override;

 private:
  int ratio_streak_ = 0;
  std::deque<double> norms_;
};

// First/last ratio below vanish_ratio with the first weight's norm below vanish_first_norm, or
// mean |g| below vanish_mean_abs.
class VanishingGradientDetector : public ThresholdDetector {
 public:
  using ThresholdDetector::ThresholdDetector;
  std::string kind() const override { return "vanishing_gradients"; }
  std::optional<Finding> on_step(const StepSignals& s) override;

  std::string save_state() const override;
  void load_state(const std::string& state) override;

 private:
  int streak_ = 0;
};

// Validation loss rising while training loss falls; a sustained loss gap; an accuracy gap.
class OverfittingDetector : public ThresholdDetector {
 public:
  using ThresholdDetector::ThresholdDetector;
  std::string kind() const override { return "overfitting"; }
  std::optional<Finding> on_epoch(const EpochSignals& e) override;

  std::string save_state() const override;
  void load_state(const std::string& state) override;

 private:
  std::vector<EpochSignals> history_;
};

// Training loss near a trivial predictor's, accuracy near chance, or slow convergence, after a
// fair share of the epochs.
class UnderfittingDetector : public ThresholdDetector {
 public:
  using ThresholdDetector::ThresholdDetector;
  std::string kind() const override { return "underfitting"; }
  std::optional<Finding> on_epoch(const EpochSignals& e) override;

  std::string save_state() const override;
  void load_state(const std::string& state) override;

 private:
  std::vector<EpochSignals> history_;
};

// Many exactly-zero gradient entries in a weight, or many of a ReLU layer's units active for less
// than 1% of the examples (zero_grad_share, dead_unit_share).
class DyingReluDetector : public ThresholdDetector {
 public:
  using ThresholdDetector::ThresholdDetector;
  std::string kind() const override { return "dying_relu"; }
  std::optional<Finding> on_step(const StepSignals& s) override;

  std::string save_state() const override;
  void load_state(const std::string& state) override;

 private:
  int streak_ = 0;
};

// Many of a sigmoid/tanh layer's outputs within 1% of their bounds (saturated_share; a warning
// above saturated_warning).
class SaturationDetector : public ThresholdDetector {
 public:
  using ThresholdDetector::ThresholdDetector;
  std::string kind() const override { return "saturated_activations"; }
  std::optional<Finding> on_step(const StepSignals& s) override;

  std::string save_state() const override;
  void load_state(const std::string& state) override;

 private:
  int streak_ = 0;
};

// Training loss going up and down from epoch to epoch (oscillation_share).
class OscillatingLossDetector : public ThresholdDetector {
 public:
  using ThresholdDetector::ThresholdDetector;
  std::string kind() const override { return "oscillating_loss"; }
  std::optional<Finding> on_epoch(const EpochSignals& e) override;

  std::string save_state() const override;
  void load_state(const std::string& state) override;

 private:
  std::vector<double> train_;
};

// Classification scores squashed into [0, 1] or [-1, 1] by a sigmoid or tanh after the last
// layer, where cross-entropy expects unbounded logits: the most confident prediction the model
// can make then has a loss of log(1 + (C - 1) e^(lo - hi)) (1.46 for 10 classes through a
// sigmoid), so it cannot fit its data. Certain when the model ends in one
// (StepSignals::output_activation); otherwise read from scores that stay within the range with
// one bound reached (within 0.01) at 3 logging steps in a row, and do not sum to 1 per row.
class BoundedLogitsDetector : public Detector {
 public:
  std::string kind() const override { return "bounded_logits"; }
  std::optional<Finding> on_step(const StepSignals& s) override;
  std::string save_state() const override;
  void load_state(const std::string& state) override;

 private:
  int streak_ = 0;
};

// Median update-to-weight ratio of the weights outside [update_low, update_high].
class LearningRateDetector : public ThresholdDetector {
 public:
  using ThresholdDetector::ThresholdDetector;
  std::string kind() const override { return "learning_rate"; }
  std::optional<Finding> on_step(const StepSignals& s) override;

  std::string save_state() const override;
  void load_state(const std::string& state) override;

 private:
  int high_streak_ = 0, low_streak_ = 0;
};

// The units of a weight all the same (symmetric_spread): a constant initialization.
class SymmetricUnitsDetector : public ThresholdDetector {
 public:
  using ThresholdDetector::ThresholdDetector;
  std::string kind() const override { return "symmetric_units"; }
  std::optional<Finding> on_step(const StepSignals& s) override;

  std::string save_state() const override;
  void load_state(const std::string& state) override;

 private:
  int streak_ = 0;
};

// Parameters that get a gradient but that the optimizer step leaves exactly unchanged, at
// sustain_steps logging steps in a row: not in the optimizer (a layer added after it was built),
// a learning rate of 0, or updates below float precision.
class StuckParametersDetector : public ThresholdDetector {
 public:
  using ThresholdDetector::ThresholdDetector;
  std::string kind() const override { return "stuck_parameters"; }
  std::optional<Finding> on_step(const StepSignals& s) override;

  std::string save_state() const override;
  void load_state(const std::string& state) override;

 private:
  int streak_ = 0;
};

// The training loss where it started after a fair share of the epochs (still_first,
// still_epoch).
class StillLossDetector : public ThresholdDetector {
 public:
  using ThresholdDetector::ThresholdDetector;
  std::string kind() const override { return "loss_not_moving"; }
  std::optional<Finding> on_step(const StepSignals& s) override;
  std::optional<Finding> on_epoch(const EpochSignals& e) override;

  std::string save_state() const override;
  void load_state(const std::string& state) override;

 private:
  double first_loss_ = NAN;  // the first logged loss of the phase
  std::vector<double> train_;
};

// Fewer optimizer steps in the run than min_run_steps, said after its first epoch.
class FewStepsDetector : public ThresholdDetector {
 public:
  using ThresholdDetector::ThresholdDetector;
  std::string kind() const override { return "too_few_steps"; }
  std::optional<Finding> on_epoch(const EpochSignals& e) override;
};

// Regression targets beyond the range of the model's output activation (sigmoid, tanh, ReLU):
// certain when the model ends in one (StepSignals::output_activation), otherwise read from
// outputs pinned at the bound (unreachable_share, pinned_share).
class UnreachableTargetsDetector : public ThresholdDetector {
 public:
  using ThresholdDetector::ThresholdDetector;
  std::string kind() const override { return "unreachable_targets"; }
  std::optional<Finding> on_step(const StepSignals& s) override;

  std::string save_state() const override;
  void load_state(const std::string& state) override;

 private:
  int streak_ = 0;
};

// BatchNorm layers with frozen weights whose running statistics keep moving (norm_drift): frozen
// layers left in training mode.
class FrozenNormDriftDetector : public ThresholdDetector {
 public:
  using ThresholdDetector::ThresholdDetector;
  std::string kind() const override { return "frozen_norm_drift"; }
  std::optional<Finding> on_step(const StepSignals& s) override;

  std::string save_state() const override;
  void load_state(const std::string& state) override;

 private:
  int streak_ = 0;
};

// The batch against the critical batch size the gradient noise scale gives (noise_batch_factor):
// advice, an info finding, once.
class BatchNoiseDetector : public ThresholdDetector {
 public:
  using ThresholdDetector::ThresholdDetector;
  std::string kind() const override { return "batch_size_advice"; }
  std::optional<Finding> on_epoch(const EpochSignals& e) override;
};

// The step past the edge of stability: lr_eff x sharpness along it above edge_ratio
// (StepSignals::step_curvature); the remedy lowers the learning rate by the measured factor.
class SharpnessDetector : public ThresholdDetector {
 public:
  using ThresholdDetector::ThresholdDetector;
  std::string kind() const override { return "sharpness"; }
  std::optional<Finding> on_step(const StepSignals& s) override;

  std::string save_state() const override;
  void load_state(const std::string& state) override;

 private:
  std::vector<double> ratios_;  // lr_eff x sharpness of the streak so far
};

// One of each, in the order their findings are most useful to read.
std::vector<std::unique_ptr<Detector>> default_detectors(const DetectorThresholds& thresholds = {});

}  // namespace trainscope::diagnose
