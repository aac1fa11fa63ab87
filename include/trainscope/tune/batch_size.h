#pragma once
// The largest batch that fits, found with real training steps: doubling, then bisection between
// the last fit and the first failure; growth stops early when throughput stops improving.

#include <trainscope/data/dataset.h>
#include <trainscope/models/model.h>
#include <trainscope/train/metrics.h>
#include <trainscope/train/trainer.h>

#include <cstdint>
#include <string>
#include <vector>

namespace trainscope::tune {

struct BatchSizeOptions {
  int64_t start = 32;           // first size tried; smaller batches make BatchNorm statistics noisy
  int64_t max = 4096;           // never larger (and never larger than the training set)
  double memory_share = 0.5;    // CPU: of the memory available at the start
  double headroom = 0.10;       // a size fits when its peak stays under (1 - headroom) x budget
  double min_gain = 0.05;       // keep doubling only while samples/s improves by at least 5%
  double time_budget_s = 15.0;  // stop searching after this long
  int64_t steps = 3;            // timed training steps per size (after one untimed step)
  // The CPU rule (choose_cpu_batch): at most this batch, and at least `min_steps` optimizer steps
  // per epoch.
  int64_t cpu_batch = 128;
  int64_t min_steps = 32;
};

// One size tried: whether it fit, its training throughput and its peak memory above the
// starting point (bytes; CPU: resident set high-water mark, CUDA: allocator peak).
struct BatchTrial {
  int64_t batch = 0;
  bool fits = false;
  double samples_per_s = 0.0;
  double peak_bytes = 0.0;
  std::string note;  // why it does not fit ("out of memory", "over the memory budget")
};

struct BatchSizeResult {
  int64_t batch_size = 0;
  std::string reason;  // "throughput stopped improving past 128 (+4% at 256)", "largest that fits"
  std::vector<BatchTrial> trials;  // in the order tried
  double seconds = 0.0;
  double budget_bytes = 0.0;
};

// Runs the steps of one trial. The real one trains; tests use a fake allocator.
class BatchProbe {
 public:
  virtual ~BatchProbe() = default;
  // Tries `batch`; a trial that runs out of memory returns fits = false (never throws for it).
  virtual BatchTrial run(int64_t batch) = 0;
};

// The search. `budget_bytes` is the memory a trial may use (0: no limit but out-of-memory).
// `limit` caps the size (the training set's size). Deterministic given the probe's answers.
BatchSizeResult find_batch_size(BatchProbe& probe, const BatchSizeOptions& options,
                                double budget_bytes, int64_t limit);

// The CPU rule: a batch from the data's size and the memory budget alone, so that the same command
// gives the same batch (and the same weights) on the same machine. On a few CPU cores throughput
// levels off by 64-128 and the measured knee follows load noise, so throughput does not decide:
// the largest power of two up to options.cpu_batch that leaves options.min_steps optimizer steps
// per epoch of `train_size` examples (at least 8, or the whole set when smaller), halved while
// one probe trial says it does not fit `budget_bytes`. Throws Error when not even 1 fits.
BatchSizeResult choose_cpu_batch(BatchProbe& probe, const BatchSizeOptions& options,
                                 double budget_bytes, int64_t train_size);

// The real probe: forward, loss, backward and an Adam step on `model` (weights, buffers and
// RNG restored afterwards), then an evaluation forward, at each size, on the first examples of
// `data`. CPU memory is the process's peak resident set (reset before each trial through
// /proc/self/clear_refs); CUDA out-of-memory errors are caught and the cache emptied.
class TrainingProbe : public BatchProbe {
 public:
  // `step`: the fit's own (TrainerOptions::step), whose loss the trial steps minimize; null: the
  // task's built-in loss.
  TrainingProbe(Model& model, const data::Dataset& data, Task task, torch::Device device,
                int64_t steps, double budget_bytes, StepFunction step = nullptr);
  BatchTrial run(int64_t batch) override;

 private:
  Model& model_;
  const data::Dataset& data_;
  Task task_;
  torch::Device device_;
  int64_t steps_;
  double budget_bytes_;
  StepFunction step_;
};

// Memory a CPU trial may use: `share` of MemAvailable (/proc/meminfo) now.
double cpu_memory_budget(double share);

// The lr for `batch` when `base_lr` was set for `base_batch`: "linear", "sqrt" or "keep".
// Throws ConfigError for another rule.
double scale_lr(double base_lr, int64_t base_batch, int64_t batch, const std::string& rule);

}  // namespace trainscope::tune
