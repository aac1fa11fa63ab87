#pragma once
// DataLoader: batches of a Dataset in an order drawn from (seed, epoch), collated by worker
// threads into a bounded prefetch queue.

#include <trainscope/data/dataset.h>

#include <condition_variable>
#include <cstdint>
#include <deque>
#include <exception>
#include <map>
#include <mutex>
#include <thread>
#include <vector>

namespace trainscope::data {

struct LoaderOptions {
  int64_t batch_size = 128;
  bool shuffle = true;     // a new permutation each epoch, from (seed, epoch)
  bool drop_last = false;  // drop a final batch smaller than batch_size
  uint64_t seed = 0;
  int64_t workers = 0;   // threads that call get_batch ahead of next(); 0: next() calls it
  int64_t prefetch = 4;  // batches ready or in flight ahead of the consumer (workers > 0)
  bool pin_memory =
      false;  // page-locked batches for non-blocking copies to CUDA (ignored without CUDA)
  // Data-parallel sharding: this loader yields the examples at positions rank, rank + world_size,
  // ... of each epoch's permutation (the same permutation on every rank), so ranks are disjoint.
  // Every rank gets floor(n / world_size) examples, so that their batches pair up: up to
  // world_size - 1 examples of each epoch (different ones each epoch) are left out.
  int64_t rank = 0;
  int64_t world_size = 1;
};

// Where a loader stands: enough to continue an epoch exactly where it stopped (checkpoints).
struct LoaderPosition {
  int64_t epoch = 0;
  int64_t batches = 0;  // batches of `epoch` already returned by next()
  uint64_t seed = 0;
};

// Iterates over one epoch at a time: start_epoch(e), then next() until it returns false.
// The order depends only on (seed, epoch, rank, world_size), so a run is reproducible and an
// epoch can be replayed; the batches are the same with any number of workers. Not thread-safe
// (one consumer); the worker threads only call Dataset::get_batch, which must be thread-safe.
// Threads stop and join in the destructor. An exception thrown by get_batch in a worker is
// rethrown by the next() that would have returned that batch.
class DataLoader {
 public:
  // Throws ConfigError for batch_size < 1, workers < 0, prefetch < 1 or a rank outside
  // [0, world_size).
  DataLoader(std::shared_ptr<const Dataset> dataset, LoaderOptions options);
  ~DataLoader();
  DataLoader(const DataLoader&) = delete;
  DataLoader& operator=(const DataLoader&) = delete;

  // Batches of this rank's shard per epoch.
  int64_t batches_per_epoch() const;
  // Examples of this rank's shard per epoch.
  int64_t shard_size() const;
  const LoaderOptions& options() const { return options_; }
  const Dataset& dataset() const { return *dataset_; }

  void start_epoch(int64_t epoch);
  // Fills `batch` with the next batch of the epoch; false at the end of the epoch.
  bool next(Batch& batch);

  // The position after the last batch returned, and its inverse: restore() continues epoch
  // `position.epoch` at batch `position.batches`. Throws ConfigError when the position was
  // saved with another seed, or lies past the end of the epoch.
  LoaderPosition position() const;
  void restore(const LoaderPosition& position);

  // Seconds next() spent blocked waiting for a batch (or, without workers, loading it) since
  // the last reset_wait(): the step loop's data wait.
  double wait_seconds() const { return wait_seconds_; }
  void reset_wait() { wait_seconds_ = 0; }

 private:
  void begin(int64_t epoch, int64_t first_batch);
  Batch load(const torch::Tensor& order, int64_t batch_index) const;
  void worker_loop();
  void stop_workers();

  std::shared_ptr<const Dataset> dataset_;
  LoaderOptions options_;
  torch::Tensor order_;  // this rank's shard of the epoch's permutation
  int64_t epoch_ = 0;
  int64_t position_ = 0;  // next batch index to return
  double wait_seconds_ = 0;

  // Worker state, guarded by mutex_.
  std::mutex mutex_;
  std::condition_variable work_cv_, ready_cv_;
  std::vector<std::thread> workers_;
  bool stop_ = false;
  uint64_t generation_ = 0;  // bumped by begin(): results of an older epoch are dropped
  int64_t next_to_load_ = 0;
  int64_t end_ = 0;
  struct Result {
    Batch batch;
    std::exception_ptr error;
  };
  std::map<int64_t, Result> ready_;
};

}  // namespace trainscope::data
