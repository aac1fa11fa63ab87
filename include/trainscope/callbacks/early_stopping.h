#pragma once
// EarlyStopping: stop when the monitored metric stops improving, and keep the best weights.
#include <trainscope/callbacks/monitor.h>
#include <trainscope/train/callback.h>

#include <limits>
#include <vector>

namespace trainscope::callbacks {

struct EarlyStoppingOptions {
  std::string monitor = "val_loss";  // <split>_<metric>: val_loss, val_accuracy, train_loss, ...
  std::string mode = "auto";         // min | max | auto (max for accuracy-like metrics)
  int64_t patience = 5;              // epochs without improvement before stopping
  double min_delta = 0.0;            // an improvement must beat the best by more than this
  bool restore_best = true;  // load the best epoch's weights when the fit ends, whatever ended it
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

// At each epoch end, reads the monitored metric and requests a stop, with a reason and a message
// that carries the numbers:
//   kNonFinite   the value is NaN or Inf (check_finite)
//   kThreshold   the value reached stopping_threshold
//   kDivergence  the value crossed divergence_threshold
//   kPatience    `patience` epochs passed without an improvement on the best by more than
//                min_delta that also beats the baseline (when one is set)
// Keeps a copy of the best weights in memory (the parameters and buffers, on the model's
// device); with restore_best they are loaded back at fit end, and on an exception, whatever ended
// the fit. Without the monitored metric (no validation set) it does nothing and says so once.
// Checkpoints hold its counters and the best weights, so a resumed fit stops where the
// uninterrupted one would. Throws ConfigError for an unknown monitor or mode.
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

  int64_t best_epoch() const { return best_epoch_; }
  double best_value() const { return best_; }
  int64_t wait() const { return wait_; }
  const Monitor& monitor() const { return monitor_; }

 private:
  void restore(TrainState& state);

  EarlyStoppingOptions options_;
  Monitor monitor_;
  double best_ = 0.0;
  int64_t best_epoch_ = 0;  // 0: no best yet
  int64_t wait_ = 0;
  bool warned_ = false;
  bool restored_ = false;
  bool baseline_beaten_ = false;
  std::vector<torch::Tensor> best_state_;  // parameters then buffers, on the model's device
};

}  // namespace trainscope::callbacks
