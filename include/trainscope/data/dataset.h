#pragma once
// Datasets: a size and a way to fetch a batch of examples by index. Shuffling, batching and
// splitting wrap a Dataset; they never copy its tensors.

#include <trainscope/tensor_map.h>

#include <torch/torch.h>

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

namespace trainscope::data {

// A batch of inputs and targets (train/state.h: Task says what the targets are), on the CPU
// unless moved. Every tensor has the batch first.
struct Batch {
  torch::Tensor x;  // the input (images, features, token ids)
  torch::Tensor y;  // the target the built-in losses and metrics take
  // Further named inputs, passed to the model's forward beside x (Model's forward of (x, inputs)):
  // tabular features beside images, lengths beside tokens. Never augmented.
  TensorMap inputs = {};
  // Further named targets, for a loss or training step of your own (TrainerOptions::step).
  TensorMap targets = {};

  // Every tensor with `f` applied (a device move, pinning), under the same names.
  template <typename F>
  Batch map(F&& f) const {
    return {f(x), f(y), inputs.map(f), targets.map(f)};
  }
  // The first n examples.
  Batch head(int64_t n) const {
    return map([n](const torch::Tensor& t) { return t.slice(0, 0, std::min(n, t.size(0))); });
  }
};

// Random access to examples. Implementations must be safe to read from several threads at once.
class Dataset {
 public:
  virtual ~Dataset() = default;
  virtual int64_t size() const = 0;
  // Examples at `indices` (int64, 1-D), stacked along dimension 0.
  virtual Batch get_batch(const torch::Tensor& indices) const = 0;
};

// A dataset held in tensors whose first dimension indexes examples: x and y, and any further
// named inputs and targets (Batch). Batches are gathered with index_select, one copy per batch.
class TensorDataset : public Dataset {
 public:
  // Throws DataError, naming the tensor, when they disagree on the number of examples.
  TensorDataset(torch::Tensor x, torch::Tensor y, TensorMap inputs = {}, TensorMap targets = {});
  int64_t size() const override { return x_.size(0); }
  Batch get_batch(const torch::Tensor& indices) const override;
  const torch::Tensor& x() const { return x_; }
  const torch::Tensor& y() const { return y_; }

 private:
  torch::Tensor x_, y_;
  TensorMap inputs_, targets_;
};

// The examples of `base` at `indices`, in that order.
class Subset : public Dataset {
 public:
  Subset(std::shared_ptr<const Dataset> base, torch::Tensor indices);
  int64_t size() const override { return indices_.size(0); }
  Batch get_batch(const torch::Tensor& indices) const override;
  const torch::Tensor& indices() const { return indices_; }

 private:
  std::shared_ptr<const Dataset> base_;
  torch::Tensor indices_;
};

// A held-out split: disjoint, together covering the whole dataset, deterministic in `seed`.
struct HoldoutSplit {
  std::shared_ptr<const Dataset> train;
  std::shared_ptr<const Dataset> val;
};
// `val_fraction` of the examples (rounded down) go to val, chosen by a permutation drawn from
// a generator seeded with `seed`. Throws ConfigError unless 0 <= val_fraction < 1.
HoldoutSplit holdout_split(std::shared_ptr<const Dataset> dataset, double val_fraction = 0.1,
                           uint64_t seed = 0);

// How images were normalized: x = (raw - mean) / std with raw in [0, 1], per channel (one value
// per channel, or one for all channels). {0}, {1} means raw values.
struct PixelStats {
  std::vector<double> mean = {0.0};
  std::vector<double> std = {1.0};

  // Throws ConfigError naming `what` (e.g. "data.mean") unless each list has 1 or `channels`
  // values and every std is positive.
  void check(int64_t channels, const std::string& what = "data.mean, data.std") const;
  // (raw - mean) / std and back, over x [B, C, H, W] (or [C, H, W]), on x's device and dtype.
  torch::Tensor normalize(const torch::Tensor& raw) const;
  torch::Tensor raw(const torch::Tensor& x) const;
  // The normalized value of raw 0 (black), broadcastable over [B, C, H, W].
  torch::Tensor black(const torch::TensorOptions& options) const;
  bool per_channel() const { return mean.size() > 1 || std.size() > 1; }
  // "mean 0.2860, std 0.3530" or "mean [0.4850, 0.4560, 0.4060], std [0.2290, 0.2240, 0.2250]".
  std::string str() const;
  bool operator==(const PixelStats& o) const { return mean == o.mean && std == o.std; }
  bool operator!=(const PixelStats& o) const { return !(*this == o); }
};

// Per-channel mean and standard deviation of raw images [N, C, H, W] (a std of 0 becomes 1).
PixelStats pixel_stats(const torch::Tensor& raw);

// A task's data: the three splits and what a model needs to know about them.
struct DataSplits {
  std::shared_ptr<const Dataset> train, val, test;
  int64_t num_classes = 0;               // 0 for regression
  std::vector<int64_t> input_shape;      // per example, e.g. {1, 28, 28}
  std::vector<std::string> class_names;  // may be empty
  PixelStats pixels;                     // normalization applied to image inputs
  // Tabular data (CSV): each feature standardized with its own training-split statistics.
  std::vector<double> feature_mean, feature_std;
  std::vector<std::string> feature_names;
  // Where each example was read from, for reports: its position (int64 [N]) among the examples
  // of the file its split came from (IDX images, CSV data rows). Undefined: the split itself is
  // the file (image folders name their files instead).
  torch::Tensor train_origin, val_origin, test_origin;
  int64_t skipped = 0;  // unreadable examples left out (on_bad_image = skip)
  std::string source;   // what was loaded, e.g. "csv:/data/houses.csv"
};

}  // namespace trainscope::data
