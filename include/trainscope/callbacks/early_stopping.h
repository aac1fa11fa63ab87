#pragma once
// EarlyStopping: stop when the monitored metric stops improving, and keep the best weights.
#include <trainscope/train/callback.h>

#include <limits>
#include <vector>

namespace trainscope::callbacks {

// The metric watched is the fit's monitor (TrainerOptions::monitor, train.monitor).
struct EarlyStoppingOptions {
  int64_t patience = 5;    // epochs without improvement before stopping
  double min_delta = 0.0;  // for patience, an improvement must beat the last one by more than this
  // Load the best epoch's weights (TrainState::best, the epoch best.ckpt holds) when the fit
  // ends, whatever ended it.
  bool restore_best = true;
  // The monitored value must beat this within `patience` epochs, or the fit stops (Keras's
  // baseline). NaN: no baseline.
  double baseline = std::numeric_limits<double>::quiet_NaN();
  int64_t start_from_epoch = 0;  // epochs to train before monitoring starts (warm-up)
  bool check_finite = true;      // stop at once when the monitored value is NaN or Inf
  // Stop at once when the value is at least this good (e.g. val_accuracy 0.99). NaN: off.
  double stopping_threshold = std::numeric_limits<double>::quiet_NaN();
  // Stop at once when the value is worse than this (e.g. val_loss 10: diverged). NaN: off.
  double divergence_threshold = std::numeric_limits<double>::quiet_NaN();
};

// At each epoch end, reads the fit's monitored metric and requests a stop, with a reason and a
// message that carries the numbers:
//   kNonFinite   the value is NaN or Inf (check_finite)
//   kThreshold   the value reached stopping_threshold
//   kDivergence  the value crossed divergence_threshold
//   kPatience    `patience` epochs passed without an improvement by more than min_delta on the
//                last one that counted (after start_from_epoch), that also beats the baseline
//                (when one is set); a new phase of the fit (TrainState::phase_epoch, the
//                backbone unfreezing) starts the count again
// Keeps a copy of the best epoch's weights in memory (the parameters and buffers, on the model's
// device); with restore_best they are loaded back at fit end, and on an exception, whatever ended
// the fit. Without the monitored metric (no validation set) it does nothing and says so once.
// Checkpoints hold its counters and the best weights, so a resumed fit stops where the
// uninterrupted one would. Throws ConfigError for out-of-range options.
class EarlyStopping : public Callback {
 public:
  explicit EarlyStopping(EarlyStoppingOptions options = {});
  std::string name() const override { return "early_stopping"; }
  CallbackOrder order() const override { return CallbackOrder::kEarlyStopping; }

  void on_fit_start(TrainState& state) override;
  void on_epoch_end(TrainState& state) override;
  void on_fit_end(TrainState& state) override;
  void on_exception(TrainState& state, const std::exception_ptr& error) override;
  void on_checkpoint_save(TrainState& state, torch::serialize::OutputArchive& archive) override;
  void on_checkpoint_load(TrainState& state, torch::serialize::InputArchive& archive) override;

  // The epoch patience counts from: the last that improved by more than min_delta (0: none).
  int64_t reference_epoch() const { return reference_epoch_; }
  int64_t wait() const { return wait_; }

 private:
  void restore(TrainState& state);

  EarlyStoppingOptions options_;
  double reference_ = 0.0;
  int64_t reference_epoch_ = 0;  // 0: none yet
  int64_t wait_ = 0;
  int64_t phase_epoch_ = 0;  // the last TrainState::phase_epoch seen
  bool warned_ = false;
  bool restored_ = false;
  bool baseline_beaten_ = false;
  std::vector<torch::Tensor> best_state_;  // of TrainState::best: parameters then buffers
};

}  // namespace trainscope::callbacks
