#pragma once
// What a fine-tune starts from (finetune.from: a run, a checkpoint or a TorchScript file), and the
// model it gives: the source's backbone, frozen, under a new head sized for the new data.
#include <trainscope/callbacks/fine_tuning.h>
#include <trainscope/config.h>
#include <trainscope/data/dataset.h>
#include <trainscope/models/model.h>

#include <filesystem>
#include <optional>
#include <string>
#include <vector>

namespace trainscope::session {

// A zoo model as the config's model.* settings describe it, for inputs of `input_shape` and
// `outputs` outputs; its weights are drawn after seeding torch's generator with train.seed.
Model zoo_model(const Config& config, const std::vector<int64_t>& input_shape, int64_t outputs);

// model.name = "torchscript:PATH": the TorchScript file to train, or nullopt for a zoo model. A
// run keeps a copy in its source/model.pt, and a run's own session (`run_dir` not empty) rebuilds
// from that copy. Throws ConfigError naming the setting when PATH is missing or is not a
// TorchScript file.
std::optional<std::filesystem::path> torchscript_model_file(const Config& config,
                                                            const std::filesystem::path& run_dir);

struct FinetuneSource {
  enum class Kind { kRun, kCheckpoint, kTorchScript } kind = Kind::kRun;
  std::filesystem::path path;     // as given
  std::filesystem::path weights;  // the checkpoint or TorchScript file that holds the weights
  std::optional<Config> config;   // the source's settings (runs and checkpoints)
  std::optional<data::PixelStats> normalization;  // the source's data.mean, data.std
  // Rebuilt from the copy a fine-tuned run keeps in source/: the architecture only, when
  // `weights` is empty (the run's own checkpoints hold every weight).
  bool kept = false;
  std::string describe() const;  // "run runs/pre (best.ckpt)"
};

// Resolves finetune.from (a run directory, a run name under run.dir, a .ckpt file, a TorchScript
// file). Throws ConfigError naming the value and what was expected.
FinetuneSource resolve_source(const Config& config);

// A fine-tuned run keeps what rebuilds its model in `run_dir`/source/: the TorchScript file, or
// the source's config (its architecture). Written once, atomically; a no-op when present.
void keep_source(const FinetuneSource& source, const std::filesystem::path& run_dir);

// The source of the fine-tuned run in `run_dir`, for resuming, testing or exporting it: the
// TorchScript copy it keeps, or the architecture it keeps, without weights (`weights` empty: the
// run's checkpoints hold them all). Runs that keep nothing use finetune.from itself.
FinetuneSource run_source(const Config& config, const std::filesystem::path& run_dir);

// Sets data.mean and data.std to the source's normalization unless the user set them, so the
// backbone sees inputs scaled as in its training. Returns a line saying what it did.
std::string adopt_normalization(Config& config, const FinetuneSource& source);

// The source's model with its head (finetune.head, or its last Linear layer) replaced by a new
// one with `outputs` outputs and the rest frozen (BatchNorm statistics too unless
// finetune.train_bn). A source without weights gives the architecture with the backbone as
// initialized. Returns the model and a summary line.
std::pair<Model, std::string> finetune_model(const Config& config, const FinetuneSource& source,
                                             const std::vector<int64_t>& input_shape,
                                             int64_t outputs);

}  // namespace trainscope::session
