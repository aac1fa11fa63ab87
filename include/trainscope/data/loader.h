#pragma once
// DataLoader: batches of a Dataset in an order drawn from (seed, epoch).

#include <trainscope/data/dataset.h>

namespace trainscope::data {

struct LoaderOptions {
  int64_t batch_size = 128;
  bool shuffle = true;     // a new permutation each epoch, from (seed, epoch)
  bool drop_last = false;  // drop a final batch smaller than batch_size
  uint64_t seed = 0;
};

// Iterates over one epoch at a time: start_epoch(e), then next() until it returns false.
// The order depends only on (seed, epoch), so a run is reproducible and an epoch can be
// replayed. Not thread-safe.
class DataLoader {
 public:
  // Throws ConfigError for batch_size < 1.
  DataLoader(std::shared_ptr<const Dataset> dataset, LoaderOptions options);

  int64_t batches_per_epoch() const;
  const LoaderOptions& options() const { return options_; }
  const Dataset& dataset() const { return *dataset_; }

  void start_epoch(int64_t epoch);
  // Fills `batch` with the next batch of the epoch; false at the end of the epoch.
  bool next(Batch& batch);

 private:
  std::shared_ptr<const Dataset> dataset_;
  LoaderOptions options_;
  torch::Tensor order_;
  int64_t position_ = 0;
};

}  // namespace trainscope::data
