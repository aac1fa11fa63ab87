#pragma once
// ModelCheckpoint: best and last weights of every epoch, written atomically into the run's
// checkpoints/ directory and indexed in the run store.
#include <trainscope/train/callback.h>

#include <filesystem>

namespace trainscope::callbacks {

// Writes checkpoints/last.pt after every epoch and checkpoints/best.pt when val_loss improves
// (or train loss, without validation). Each file is a torch::save archive of the model's
// parameters and buffers, loadable with load_weights(). Does nothing without a run directory.
// Throws CheckpointError naming the file when a save fails; the previous file stays intact.
class ModelCheckpoint : public Callback {
 public:
  std::string name() const override { return "model_checkpoint"; }
  CallbackOrder order() const override { return CallbackOrder::kCheckpoint; }
  void on_fit_start(TrainState& state) override;
  void on_epoch_end(TrainState& state) override;

 private:
  double best_ = 0.0;
  bool has_best_ = false;
};

// Saves `module`'s parameters and buffers to `file` atomically (temp file, fsync, rename).
void save_weights(const torch::nn::Module& module, const std::filesystem::path& file);
// Loads weights saved by save_weights() into a module of the same architecture. Throws
// CheckpointError naming the file when it is missing, corrupt or from another architecture.
void load_weights(torch::nn::Module& module, const std::filesystem::path& file);

}  // namespace trainscope::callbacks
