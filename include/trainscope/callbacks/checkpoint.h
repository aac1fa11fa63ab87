#pragma once
// ModelCheckpoint: resumable checkpoints of a fit, written atomically into the run's
// checkpoints/ directory, verified on load and indexed in the run store.
#include <trainscope/train/callback.h>

#include <chrono>
#include <filesystem>
#include <memory>
#include <string>
#include <vector>

namespace trainscope::callbacks {

enum class OnSaveError {
  kStop,      // stop the fit at the end of the epoch (StopReason::kCheckpointFailed)
  kContinue,  // go on training without checkpoints
};

// Epochs are ranked by the fit's best-so-far metric (TrainState::best: train.monitor, or without
// validation the training split's metric of the same name).
struct CheckpointOptions {
  // epoch-NNNN-<monitor>-<value>.ckpt for the k best epochs (0: none besides best.ckpt).
  int64_t keep_top_k = 1;
  int64_t every_steps = 0;     // also save last.ckpt every N optimizer steps, mid-epoch (0: off)
  double every_minutes = 0.0;  // also save last.ckpt when M minutes passed since the last save
  // Serialize on the training thread, write the file on a background thread (at most one save in
  // flight; the next one waits for it). false: write inline.
  bool background = true;
  OnSaveError on_error = OnSaveError::kStop;
};

// The files in checkpoints/, each a complete resumable checkpoint (track/checkpoint_file.h):
//   last.ckpt      the newest state: at fit start, after every epoch, every N steps or M minutes
//                  when asked, and when the fit is interrupted (SIGINT, SIGTERM) mid-epoch
//   previous.ckpt  the state before last.ckpt: a fallback should last.ckpt be damaged
//   best.ckpt      TrainState::best: the best epoch by the monitor (without validation, train_loss)
//   epoch-0007-val_loss-0.3121.ckpt   the keep_top_k best epochs
// last.ckpt is written once per save; the others are hard links to it (a copy where the file
// system has no links), so an epoch costs one file's worth of I/O.
//
// Every file is written atomically (temp file, fsync, rename, fsync of the directory): a crash at
// any moment leaves the previous good version. When a save fails (a full disk, a read-only
// directory) saving stops with a message naming the file and the reason, the files already
// written stay as they were, and `on_error` decides whether the fit stops or goes on.
// The callback's own state (best value, top-k list) goes into every checkpoint, so a resumed
// fit keeps the same files. Does nothing without a run directory. Order kCheckpoint (last), so a
// checkpoint records what every other callback decided.
class ModelCheckpoint : public Callback {
 public:
  explicit ModelCheckpoint(CheckpointOptions options = {});
  ~ModelCheckpoint() override;  // waits for a save in flight
  ModelCheckpoint(const ModelCheckpoint&) = delete;
  ModelCheckpoint& operator=(const ModelCheckpoint&) = delete;

  std::string name() const override { return "model_checkpoint"; }
  CallbackOrder order() const override { return CallbackOrder::kCheckpoint; }
  void on_fit_start(TrainState& state) override;
  void on_train_batch_end(TrainState& state) override;
  void on_epoch_end(TrainState& state) override;
  void on_fit_end(TrainState& state) override;
  void on_exception(TrainState& state, const std::exception_ptr& error) override;
  void on_checkpoint_save(TrainState& state, torch::serialize::OutputArchive& archive) override;
  void on_checkpoint_load(TrainState& state, torch::serialize::InputArchive& archive) override;

  // Seconds the training thread spent capturing (serializing) checkpoints, and seconds spent
  // writing them (on the background thread, or inline), since construction.
  double capture_seconds() const { return capture_seconds_; }
  double write_seconds() const;
  // The first save error of this fit; empty when every save succeeded.
  const std::string& error() const { return error_; }

 private:
  struct Worker;
  struct Ranked {
    double value;
    int64_t epoch;
    int64_t step;
    std::string file;  // name in checkpoints/
  };
  void save(TrainState& state, bool epoch_end);
  void collect(TrainState& state, bool wait);
  void reconcile(TrainState& state);

  CheckpointOptions options_;
  std::unique_ptr<Worker> worker_;
  std::vector<Ranked> top_;  // best first
  bool has_best_ = false;
  Ranked best_{};  // the file of TrainState::best, to repair best.ckpt on resume
  bool disabled_ = false;
  std::string error_;
  double capture_seconds_ = 0.0;
  std::chrono::steady_clock::time_point last_save_;
};

// Saves `module`'s parameters and buffers to `file` atomically (temp file, fsync, rename): plain
// weights, without the rest of a checkpoint.
void save_weights(const torch::nn::Module& module, const std::filesystem::path& file);
// Loads weights into a module of the same architecture, from a file save_weights() wrote or from
// the model part of a checkpoint (.ckpt, verified first). Throws CheckpointError naming the file
// when it is missing, truncated, corrupt or holds another architecture.
void load_weights(torch::nn::Module& module, const std::filesystem::path& file);
// The resolved configuration (config.toml text) checkpoint `file` was taken with; empty when it
// holds none. Throws CheckpointError naming the file when it is damaged.
std::string read_checkpoint_config(const std::filesystem::path& file);

}  // namespace trainscope::callbacks
