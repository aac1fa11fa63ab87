#pragma once
// FineTuning: the two phases of fine-tuning a pretrained model. First the new head trains alone on
// the frozen backbone (on cached features: TrainerOptions::head); then the backbone unfreezes, at
// once or layer group by layer group, at a lower, discriminative lr reached by a short warm-up,
// while the best epoch by validation decides whose weights are kept: the head phase's or the
// whole model's.
#include <trainscope/train/callback.h>

#include <string>
#include <vector>

namespace trainscope::callbacks {

struct FineTuningOptions {
  // The first epoch that trains (part of) the backbone. 0: once the head has converged, that is
  // after `head_patience` epochs without a new best by the fit's monitor, or after `head_epochs`
  // epochs, whichever comes first.
  int64_t unfreeze_at_epoch = 0;
  bool head_only = false;  // the backbone never trains: the head alone, the seed's recipe
  int64_t head_epochs = 20;
  int64_t head_patience = 2;
  // When the backbone unfreezes, the head's lr becomes `lr` (0: it keeps the lr it has) and each
  // backbone group's lr is the head's lr then times backbone_lr_ratio, reached by a linear
  // warm-up over `warmup_steps` optimizer steps (0: at once). An lr schedule that sets every
  // group's lr each step overrides both.
  double lr = 0.0;
  double backbone_lr_ratio = 0.3;
  int64_t warmup_steps = 0;
  // Once the backbone trains, every group's lr follows a cosine from its value at the unfreezing
  // down to 0 at the end of the epoch budget (fastai's fine_tune anneals the same way). Off by
  // default: with early stopping it did worse on bench/run_finetune_bench.sh (bench/README.md).
  bool anneal = false;
  // Name prefixes of the backbone's layer groups, unfrozen in this order (closest to the head
  // first, as ULMFiT does), one every `unfreeze_every` epochs from the first. Empty: the whole
  // backbone at once.
  std::vector<std::string> groups;
  int64_t unfreeze_every = 1;
  bool train_bn = false;  // let unfrozen BatchNorm layers update their running statistics
};

// At on_fit_start it takes the parameters that do not require gradients as the backbone (see
// models::freeze_backbone). At the start of each epoch it decides whether to unfreeze the next
// group: requires_grad on, and the tensors added to the optimizer as a new parameter group. At
// the fit's end it says which recipe the best epoch came from (the weights early stopping
// restores), and records it in the run (meta "finetune.recipe"). Prints what it does to `out`.
// Order kUser. Its progress goes into checkpoints: a resumed fit re-creates the groups before the
// optimizer's state is loaded, and continues the warm-up where it was. Throws ConfigError for
// out-of-range options and for a group prefix that matches no frozen parameter.
class FineTuning : public Callback {
 public:
  explicit FineTuning(FineTuningOptions options = {}, std::FILE* out = stdout);
  std::string name() const override { return "fine_tuning"; }

  void on_fit_start(TrainState& state) override;
  void on_epoch_start(TrainState& state) override;
  void on_train_batch_start(TrainState& state) override;
  void on_fit_end(TrainState& state) override;
  void on_checkpoint_save(TrainState& state, torch::serialize::OutputArchive& archive) override;
  void on_checkpoint_load(TrainState& state, torch::serialize::InputArchive& archive) override;

  // Groups unfrozen so far.
  int64_t unfrozen() const { return unfrozen_; }
  // The epoch the backbone started to train (0: not yet).
  int64_t unfrozen_at() const { return unfreeze_at_; }
  // Which recipe the best epoch came from, once the fit has ended: "head" or "head+backbone".
  const std::string& recipe() const { return recipe_; }

 private:
  void unfreeze_group(TrainState& state, size_t group, bool quiet);

  FineTuningOptions options_;
  std::FILE* out_;
  std::vector<std::vector<std::string>> groups_;  // parameter names of each group
  int64_t unfrozen_ = 0;
  int64_t unfreeze_at_ = 0;  // decided (auto) or given
  std::string why_;          // why then
  // The head phase's best by the monitor, when the backbone unfroze.
  double head_best_value_ = 0.0;
  std::vector<double> target_lrs_;    // each backbone group's lr after the warm-up
  std::vector<int64_t> start_steps_;  // the global step at which each group unfroze
  double head_lr_ = 0.0;              // the head's lr at the unfreezing: where its anneal starts
  std::string recipe_;
};

}  // namespace trainscope::callbacks
