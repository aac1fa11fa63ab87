#pragma once
// The training state inside a checkpoint file (checkpoint_file.h holds the file around it): a
// torch::serialize archive whose layout this file alone writes and reads. Its keys:
//
//   format                         kPayloadFormat
//   model                          the module's parameters and buffers (what export and
//                                  fine-tuning read)
//   optimizer, optimizer_groups    the optimizer's state; each parameter group's lr and momentum
//   callback/<key>                 each callback's on_checkpoint_save archive
//   rng/cpu, rng/cuda/<i>          the generators' states
//   trainer/<counter>              PayloadCounters
//   trainer/epoch_metrics          the running metrics of an epoch cut short
//   config                         the resolved settings (config.toml text)

#include <torch/torch.h>

#include <cstdint>
#include <filesystem>
#include <functional>
#include <limits>
#include <optional>
#include <string>

namespace trainscope::track {

inline constexpr int64_t kPayloadFormat = 1;

// Where a fit stood, and the best epoch it had seen.
struct PayloadCounters {
  int64_t epoch = 0;           // 1-based; 0 at fit start
  int64_t batches = 0;         // batches of `epoch` done
  bool epoch_complete = true;  // taken at an epoch's end (or at fit start)
  int64_t global_step = 0;     // optimizer steps taken
  int64_t batches_per_epoch = 0;
  std::optional<int64_t> world_size;  // data-parallel ranks (absent in early checkpoints)
  int64_t seed = 0;
  int64_t epochs_done = 0;
  // The best epoch so far (TrainState::best) and the metric it was ranked by.
  int64_t best_epoch = 0;
  std::string best_metric;
  double best_value = 0.0;
  double best_val_loss = std::numeric_limits<double>::quiet_NaN();
  int64_t stop_reason = 0;  // StopReason, as its integer
  std::string stop_message;
  // fp16 loss scaling: the scale and the steps since it last changed.
  std::optional<double> grad_scale;
  int64_t grad_scale_good_steps = 0;
  // The fit's base lr and weight decay (absent in earlier checkpoints): a resume with other
  // values applies them to the restored optimizer.
  std::optional<double> lr, weight_decay;
};

// Builds a payload. Not thread-safe; the bytes are a copy that may be written from any thread.
class PayloadWriter {
 public:
  PayloadWriter();
  void model(const torch::nn::Module& module);
  void optimizer(const torch::optim::Optimizer& optimizer);
  // A callback's state under its key ("early_stopping", "lr_schedule#2").
  void callback(const std::string& key,
                const std::function<void(torch::serialize::OutputArchive&)>& save);
  // The CPU generator's state and each CUDA device's.
  void rng();
  void counters(const PayloadCounters& counters);
  void epoch_metrics(const std::function<void(torch::serialize::OutputArchive&)>& save);
  void config(const std::string& toml);
  // Serialized now: the archive refers to live tensors until then.
  std::string bytes();

 private:
  torch::serialize::OutputArchive root_;
};

// Reads a payload back. Errors are CheckpointError naming `origin` (the file).
class PayloadReader {
 public:
  // `device`: where tensors are loaded (the fit's device); nullopt: where they were saved.
  PayloadReader(const std::string& bytes, std::string origin,
                std::optional<torch::Device> device = std::nullopt);
  // The verified payload of a checkpoint file (read_checkpoint_payload).
  static PayloadReader of_file(const std::filesystem::path& file,
                               std::optional<torch::Device> device = std::nullopt);

  // Throws when the payload's layout is not kPayloadFormat.
  void check_format();
  torch::serialize::InputArchive model_archive();
  // Throws when the weights belong to another architecture.
  void load_model(torch::nn::Module& module);
  // Throws when the state belongs to another optimizer or another set of parameter groups.
  void load_optimizer(torch::optim::Optimizer& optimizer);
  // The callback's archive under `key`; false when the payload has none (a callback added since).
  bool callback(const std::string& key, torch::serialize::InputArchive& archive);
  void restore_rng();
  PayloadCounters counters();
  void epoch_metrics(torch::serialize::InputArchive& archive);
  // The settings the payload was taken with; empty when it carries none.
  std::string config();
  const std::string& origin() const { return origin_; }

 private:
  torch::serialize::InputArchive root_;
  std::string origin_;
};

}  // namespace trainscope::track
