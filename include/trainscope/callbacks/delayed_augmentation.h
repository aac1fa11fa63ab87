#pragma once
// DelayedAugmentation: training batches go through the fit's augmentation (TrainerOptions::augment)
// only from the epoch after the model begins to overfit, or from a given epoch. "Overfit first,
// then regularize" (Karpathy, A Recipe for Training Neural Networks): augmentation is a
// regularizer, and before the model fits its training data it only slows learning. On the
// reference CNN, Fashion-MNIST reached 91% test accuracy at epoch 3 instead of 10 this way
// (bench/README.md).
#include <trainscope/train/callback.h>

#include <cstdint>
#include <cstdio>
#include <string>

namespace trainscope::callbacks {

struct DelayedAugmentationOptions {
  // The first augmented epoch. 0: the epoch after the first one that shows overfitting begin,
  // that is, whose validation loss exceeds its mean training loss by more than `gap` of the
  // training loss, or whose monitored metric did not improve on the best so far.
  int64_t start_epoch = 0;
  // The overfitting detector's loss gap (diagnose: 10%). A smaller one starts on noise: the
  // training loss is a mean over an epoch in which the model improved, and the two cross early.
  double gap = 0.1;
};

// Clears TrainState::augment_batches at each epoch's start until the start epoch, and sets it
// from then on. With start_epoch 0 it watches each epoch's end (train_metrics and val_metrics
// "loss", and best.improved); an epoch that reported no validation loss starts the augmentation
// at once, since nothing tells when overfitting begins. A start after epoch 1 begins a new phase
// (TrainState::phase_epoch): early stopping's patience starts again there, counted from the
// phase's own best, since the first augmented epochs usually validate worse than the last
// unaugmented one. It says when and why it starts to `out` (nullptr: silently) and records it in
// the run (meta "data.augment_started"). Its decision goes into checkpoints: a resumed fit
// augments the same epochs (from a checkpoint without it, written before it existed: from the
// start, as that fit did). Order kUser: after the metrics are the job's (data parallel), so
// every rank decides the same. Throws ConfigError for a negative start_epoch or gap.
class DelayedAugmentation : public Callback {
 public:
  explicit DelayedAugmentation(DelayedAugmentationOptions options = {}, std::FILE* out = stdout);
  std::string name() const override { return "delayed_augmentation"; }

  void on_fit_start(TrainState& state) override;
  void on_epoch_start(TrainState& state) override;
  void on_epoch_end(TrainState& state) override;
  void on_checkpoint_save(TrainState& state, torch::serialize::OutputArchive& archive) override;
  void on_checkpoint_load(TrainState& state, torch::serialize::InputArchive& archive) override;

  // The first augmented epoch, once decided (0: not yet), and why then.
  int64_t started_at() const { return start_; }
  const std::string& why() const { return why_; }

 private:
  void start(TrainState& state, int64_t epoch, std::string why);
  void enter_phase(TrainState& state) const;

  DelayedAugmentationOptions options_;
  std::FILE* out_;
  int64_t start_ = 0;
  std::string why_;
};

}  // namespace trainscope::callbacks
