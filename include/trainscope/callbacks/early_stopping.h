#pragma once
// EarlyStopping: stop when the validation loss stops improving, and keep the best weights.
#include <trainscope/train/callback.h>

#include <vector>

namespace trainscope::callbacks {

struct EarlyStoppingOptions {
  int64_t patience = 5;      // epochs without improvement before stopping
  double min_delta = 0.0;    // an improvement must lower val_loss by more than this
  bool restore_best = true;  // load the best epoch's weights when the fit ends, whatever ended it
};

// Monitors val_loss (mode min) at each epoch end. Requests StopReason::kPatience after
// `patience` epochs without improvement, and kNonFinite when val_loss is NaN or Inf. Keeps a
// copy of the best weights in memory (one copy of the parameters and buffers).
// Without a validation set it does nothing and says so once.
class EarlyStopping : public Callback {
 public:
  explicit EarlyStopping(EarlyStoppingOptions options = {}) : options_(options) {}
  std::string name() const override { return "early_stopping"; }
  CallbackOrder order() const override { return CallbackOrder::kEarlyStopping; }

  void on_fit_start(TrainState& state) override;
  void on_epoch_end(TrainState& state) override;
  void on_fit_end(TrainState& state) override;

  int64_t best_epoch() const { return best_epoch_; }
  double best_value() const { return best_; }
  int64_t wait() const { return wait_; }

 private:
  EarlyStoppingOptions options_;
  double best_ = 0.0;
  int64_t best_epoch_ = 0;
  int64_t wait_ = 0;
  bool warned_ = false;
  std::vector<torch::Tensor> best_state_;  // parameters then buffers, on the model's device
};

}  // namespace trainscope::callbacks
