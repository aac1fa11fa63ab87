#pragma once
// WeightAveraging: an exponential moving average of the model's weights (as timm's ModelEmaV2,
// Keras's `use_ema` and TensorFlow's ExponentialMovingAverage keep one). The optimizer steps the
// weights as usual; the average follows them, and it is the average that is validated, ranked by
// the monitor, restored by early stopping, checkpointed as the model and exported. On small
// validation sets the averaged weights' epochs are less noisy to choose from.
#include <trainscope/train/callback.h>

#include <cstdint>
#include <utility>
#include <vector>

namespace trainscope::callbacks {

struct WeightAveragingOptions {
  // The average moves by (1 - decay) toward the weights after each optimizer step; its horizon is
  // about 1 / (1 - decay) steps. Early in the fit the decay is min(decay, (1 + n) / (10 + n)) for
  // the n-th update, so that the average does not drag the initial weights along.
  double decay = 0.99;
  // The first epoch the average follows the weights; before it the model's own weights are used.
  int64_t start_epoch = 1;
};

// From `start_epoch` on: after every optimizer step it updates the average of each trainable
// parameter and of the floating-point buffers of layers in training mode (integer buffers are
// copied); a tensor's average starts at the value its first step gave it. What never moved (a
// frozen backbone) has no average of its own: it is its value, and costs nothing. At
// on_validation_start (or on_epoch_end when the fit does not validate) the model takes the averaged
// weights, its own set aside; at the next on_epoch_start it gets its own back. So every hook from
// validation to the epoch's end, every checkpoint taken at an epoch's end, early stopping's best
// weights and the model after the fit are the average. Its state (the average, the weights set
// aside, the update count) goes into checkpoints: a resume continues it exactly. Order kWeights.
// Throws ConfigError for a decay outside [0, 1) or a start_epoch below 1.
class WeightAveraging : public Callback {
 public:
  explicit WeightAveraging(WeightAveragingOptions options = {});
  std::string name() const override { return "weight_averaging"; }
  CallbackOrder order() const override { return CallbackOrder::kWeights; }

  void on_fit_start(TrainState& state) override;
  void on_epoch_start(TrainState& state) override;
  void on_train_batch_end(TrainState& state) override;
  void on_validation_start(TrainState& state) override;
  void on_epoch_end(TrainState& state) override;
  void on_checkpoint_save(TrainState& state, torch::serialize::OutputArchive& archive) override;
  void on_checkpoint_load(TrainState& state, torch::serialize::InputArchive& archive) override;

  // Updates so far, and whether the model holds the average now.
  int64_t updates() const { return updates_; }
  bool holds_average() const { return holding_; }

 private:
  void take_average(TrainState& state);
  void give_back(TrainState& state);
  void find_moving(TrainState& state);

  WeightAveragingOptions options_;
  // As Model::snapshot orders them (parameters, then buffers); undefined for what has not moved
  // since the fit began, whose average is its value.
  std::vector<torch::Tensor> average_;
  std::vector<torch::Tensor> own_;  // the model's own values of the averaged, while it holds them
  bool holding_ = false;
  int64_t updates_ = 0;
  // What this epoch's steps can move: (index into average_, the model's own tensor, not a
  // detached alias, so that a tensor whose data is replaced, as channels-last does, is followed).
  std::vector<std::pair<size_t, torch::Tensor>> moving_;
  int64_t moving_epoch_ = 0;
};

}  // namespace trainscope::callbacks
