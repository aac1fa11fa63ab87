#pragma once
// Diagnostics: the callback that gathers signals, runs the detectors and reports findings to the
// console (once each), the run store (all of them) and, where the user opts in, applies remedies.

#include <trainscope/diagnose/detectors.h>
#include <trainscope/models/torchscript.h>
#include <trainscope/train/callback.h>

#include <cstdio>
#include <map>
#include <string>
#include <memory>
#include <optional>
#include <vector>

namespace trainscope::diagnose {

struct DiagnosticsOptions {
  int64_t every = 50;       // gather step signals every N optimizer steps
  bool activations = true;  // per-layer activation statistics (Sequential and TorchScript models)
  bool print = true;        // each finding once on the console
  // Opt-in remedies, each recorded as a finding of kind "remedy": clip gradients at clip_norm
  // after exploding gradients or NaN; lower the lr 10x on oscillation, a too-high lr or a plateau;
  // stop on sustained overfitting.
  bool auto_remedy = false;
  double clip_norm = 1.0;
  // The default detectors' thresholds (each documented with its source in detectors.h).
  DetectorThresholds thresholds = {};
  // How printed findings name the settings their remedies propose (null: as config keys,
  // "train.lr = 0.0001"; the CLI names them as its flags). The run store keeps {key=value}.
  SettingNamer name_setting = nullptr;
  // The user chose to let frozen BatchNorm layers update their running statistics
  // (finetune.train_bn): their drift is no finding.
  bool frozen_norms_may_move = false;
  // Early stopping restores the best epoch's weights at the end of the fit (train.early_stopping
  // with restore_best, the default): overfitting that begins after the first quarter of the epoch
  // budget is then an info finding, since the fit keeps the weights from before it.
  bool restores_best = false;
  // The fit has a training-batch augmentation (TrainerOptions::augment).
  bool augmentation = false;
  // The gradient noise scale (McCandlish et al., "An Empirical Model of Large-Batch Training",
  // 2018, appendix A): over the last `noise_window` steps before each logging step, the squared
  // norm of each step's gradient (batch B) against that of their mean (batch kB) estimates |G|^2
  // and tr(Sigma); their ratio is B_noise, near the critical batch size. 0 turns it off.
  int64_t noise_window = 8;
  // Processes of a data-parallel job: a step's gradient is the average over world_size batches.
  int64_t world_size = 1;
  // Sharpness along the step (StepSignals::step_curvature): at each logging step, the loss of
  // this many examples of the batch at three points of the step just taken, in training mode
  // with one seed for the three and in float32 (measured at about 0.5% of the fit for the
  // reference CNN's bf16 step at batch 128: bench/README.md). 0 turns it off.
  int64_t sharpness_examples = 16;
};

// Order kDiagnostics. Signals: every `every` steps, per parameter tensor the gradient norm, weight
// norm, update-to-weight ratio and share of zero gradient entries, the global gradient norm and
// mean |g|, read back in one transfer; with `activations`, one extra no-grad forward of the
// current batch in eval mode through a Sequential model for dead-ReLU and saturation shares; per
// epoch the train and val metrics. All of it goes to the run store (split "train", tags
// "grad_norm", "grad_norm/<param>", "weight_norm/<param>", "update_ratio/<param>",
// "zero_grad/<param>", "dead_relu/<layer>", "saturated/<layer>").
class Diagnostics : public Callback {
 public:
  // With the default detectors, at options.thresholds.
  explicit Diagnostics(DiagnosticsOptions options = {}, std::FILE* out = stdout);
  Diagnostics(DiagnosticsOptions options, std::vector<std::unique_ptr<Detector>> detectors,
              std::FILE* out = stdout);
  std::string name() const override { return "diagnostics"; }
  CallbackOrder order() const override { return CallbackOrder::kDiagnostics; }

  // Findings from pre-flight checks run before the fit: stored (and not printed again) at fit
  // start.
  void add_preflight(std::vector<Finding> findings);
  const std::vector<Finding>& findings() const { return findings_; }
  // Seconds the training thread spent in this callback's step hooks since the fit started, and
  // the part of them the sharpness probe took. At fit end both go into the run's results
  // ("diagnose", "cost"), with the fit's seconds, so that a run says what its diagnostics cost.
  double seconds() const { return seconds_; }
  double sharpness_seconds() const { return sharpness_seconds_; }

  void on_fit_start(TrainState& state) override;
  void on_after_backward(TrainState& state) override;
  void on_before_optimizer_step(TrainState& state) override;
  void on_train_batch_end(TrainState& state) override;
  void on_epoch_end(TrainState& state) override;
  void on_fit_end(TrainState& state) override;
  void on_checkpoint_save(TrainState& state, torch::serialize::OutputArchive& archive) override;
  void on_checkpoint_load(TrainState& state, torch::serialize::InputArchive& archive) override;

 private:
  bool logging_step(const TrainState& state) const {
    return (state.global_step + 1) % options_.every == 0;
  }
  void report(TrainState& state, Finding finding);
  void watch_trainable(TrainState& state);
  // A new phase of the fit (TrainState::phase_epoch: the backbone unfroze) starts every
  // detector afresh: its windows and epoch counts would otherwise read the change of what
  // trains as a fault (a jump of the gradient norm, a loss that rose).
  void start_phase(const TrainState& state);
  void apply_remedy(TrainState& state, const Finding& finding);
  std::vector<ActivationSignals> activation_signals(TrainState& state);
  // Frozen BatchNorm layers in training mode: their names, and (on the device, for the logging
  // step's one transfer) how far their running statistics moved since the last logging step.
  torch::Tensor frozen_norm_drifts(TrainState& state, std::vector<std::string>& names);
  // The loss at t = 1, 1/2 and 0 along this step's update (StepSignals::step_curvature): three
  // no-grad forwards of sharpness_examples examples; undefined when not measured.
  torch::Tensor probe_step(TrainState& state);

  DiagnosticsOptions options_;
  std::vector<std::unique_ptr<Detector>> detectors_;
  std::FILE* out_;
  std::vector<Finding> preflight_, findings_;
  std::vector<std::string> names_;
  models::ActivationOutputs script_activations_;  // of a TorchScript model; null otherwise
  std::vector<torch::Tensor> params_;
  std::vector<torch::Tensor> before_;  // weights before the optimizer step, at logging steps
  torch::Tensor grad_stats_;     // [P, 5]: grad norm, weight norm, zero count, |g| sum, unit spread
  torch::Tensor non_finite_;     // any non-finite loss since the last logging step
  double target_var_sum_ = 0.0;  // regression: running mean of batch target variances
  int64_t target_var_count_ = 0;
  int64_t num_outputs_ = 0;
  int64_t largest_batch_ = 0;      // of the epoch so far
  std::string output_activation_;  // models::output_activation of the fit's model
  // Frozen BatchNorm layers in training mode: their running mean and variance at the last
  // logging step, by layer name.
  std::map<std::string, std::pair<torch::Tensor, torch::Tensor>> norm_stats_;
  // Gradient noise scale: the window's gradient sum and sum of squared norms (on the device),
  // the logging step's two estimates [|G|^2, tr(Sigma)], and the epoch's sums of them.
  void accumulate_noise(const TrainState& state);
  std::map<std::string, torch::Tensor> grad_sum_;  // by parameter name
  torch::Tensor grad_sq_sum_, noise_stats_;
  int64_t grad_count_ = 0, noise_batch_ = 0;
  double noise_g2_sum_ = 0.0, noise_trace_sum_ = 0.0;
  int64_t noise_count_ = 0;
  bool clipping_ = false;
  std::vector<std::string> fresh_;  // each detector's state before the fit
  int64_t phase_epoch_ = 0;         // the last TrainState::phase_epoch seen
  double seconds_ = 0.0, sharpness_seconds_ = 0.0;
};

// Reads a run's findings and outcome from its store and formats the report `trainscope diagnose`
// prints, settings named by `namer` (config keys when null). Throws Error when `run_dir` holds no
// run.
std::string diagnose_report(const std::string& run_dir, const SettingNamer& namer = nullptr);

}  // namespace trainscope::diagnose
