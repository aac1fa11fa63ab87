#pragma once
// TensorBoardLogger: writes a TensorBoard event file into the run directory, so that
// `tensorboard --logdir runs` shows the same curves as the dashboard.
#include <trainscope/config.h>
#include <trainscope/train/callback.h>

#include <chrono>
#include <memory>
#include <optional>

namespace trainscope::track {
class EventWriter;
}

namespace trainscope::callbacks {

// At fit start: the resolved settings as a markdown table (text plugin, tag "config").
// Every step: train/lr (and train/lr/groupN for further parameter groups). Every `log_every`
// steps: train/step_loss (one host sync, as RunLogger).
// A resumed fit starts a new event file with a SessionLog START event at the first replayed step,
// so TensorBoard drops the interrupted file's events from there on: no duplicates.
// Every epoch: train/<metric> and val/<metric>, then weight and gradient histograms of every
// parameter (weights/<name>, grads/<name>; the gradients are the epoch's last step's),
// computed with torch ops on the training device and read back in one copy per epoch.
// Events are flushed at each epoch end, and at most every 2 s in between.
// Does nothing when the Trainer keeps no run.
class TensorBoardLogger : public Callback {
 public:
  explicit TensorBoardLogger(int64_t log_every = 50, std::optional<Config> settings = std::nullopt,
                             int histogram_buckets = 30);
  ~TensorBoardLogger() override;
  std::string name() const override { return "tensorboard"; }
  CallbackOrder order() const override { return CallbackOrder::kLogging; }

  void on_fit_start(TrainState& state) override;
  void on_train_batch_end(TrainState& state) override;
  void on_epoch_end(TrainState& state) override;
  void on_fit_end(TrainState& state) override;
  void on_test_end(TrainState& state, const EvalResult& result) override;

 private:
  int64_t log_every_;
  std::optional<Config> settings_;
  int buckets_;
  std::unique_ptr<track::EventWriter> writer_;
  std::chrono::steady_clock::time_point last_flush_;
};

}  // namespace trainscope::callbacks
