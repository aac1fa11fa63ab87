#pragma once
// FineTuning: unfreezes a frozen backbone during a fit, at once or layer group by layer group,
// with its own (lower) learning rate: discriminative fine-tuning.
#include <trainscope/train/callback.h>

#include <string>
#include <vector>

namespace trainscope::callbacks {

struct FineTuningOptions {
  int64_t unfreeze_at_epoch = 0;   // the first epoch that trains (part of) the backbone; 0: never
  double backbone_lr_ratio = 0.1;  // a group's lr: the head's lr at that moment times this
  // Name prefixes of the backbone's layer groups, unfrozen in this order (closest to the head
  // first, as ULMFiT does), one every `unfreeze_every` epochs from unfreeze_at_epoch. Empty: the
  // whole backbone at once.
  std::vector<std::string> groups;
  int64_t unfreeze_every = 1;
  bool train_bn = false;  // let unfrozen BatchNorm layers update their running statistics
};

// At on_fit_start it takes the parameters that do not require gradients as the backbone (see
// models::freeze_backbone). At the start of each scheduled epoch it unfreezes the next group:
// requires_grad on, and the tensors added to the optimizer as a new parameter group with lr =
// (the first group's lr) x backbone_lr_ratio, so an lr schedule scales it alike. Prints what it
// unfroze. Order kUser. Its progress goes into checkpoints: a resumed fit re-creates the groups
// before the optimizer's state is loaded. Throws ConfigError for out-of-range options and for a
// group prefix that matches no frozen parameter.
class FineTuning : public Callback {
 public:
  explicit FineTuning(FineTuningOptions options = {}, std::FILE* out = stdout);
  std::string name() const override { return "fine_tuning"; }

  void on_fit_start(TrainState& state) override;
  void on_epoch_start(TrainState& state) override;
  void on_checkpoint_save(TrainState& state, torch::serialize::OutputArchive& archive) override;
  void on_checkpoint_load(TrainState& state, torch::serialize::InputArchive& archive) override;

  // Groups unfrozen so far.
  int64_t unfrozen() const { return unfrozen_; }

 private:
  void unfreeze_group(TrainState& state, size_t group, bool quiet);

  FineTuningOptions options_;
  std::FILE* out_;
  std::vector<std::vector<std::string>> groups_;  // parameter names of each group
  int64_t unfrozen_ = 0;
};

}  // namespace trainscope::callbacks
