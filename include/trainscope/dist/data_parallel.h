#pragma once
// DataParallel: synchronous data-parallel training, one process per rank, like PyTorch's
// DistributedDataParallel: the same model on every rank, each rank a shard of every batch.
#include <trainscope/dist/process_group.h>
#include <trainscope/train/callback.h>
#include <trainscope/train/gradient_sync.h>

#include <memory>
#include <vector>

namespace trainscope::dist {

struct DataParallelOptions {
  int64_t bucket_bytes = 25 << 20;  // gradients are all-reduced in buckets of about this size
  bool broadcast_buffers = true;    // rank 0's buffers (BatchNorm statistics) before each batch
};

// Both a Callback (order kDistributed, before every other, so they all see the job's numbers)
// and the Trainer's GradientSync (TrainerOptions::gradient_sync):
//   on_fit_start      rank 0's parameters and buffers go to every rank
//   before_forward    rank 0's buffers again (as DDP does), so BatchNorm statistics agree
//   during backward   each gradient is copied into its bucket as autograd produces it (a tensor
//                     hook); a full bucket's all-reduce starts at once, overlapping the rest of the
//                     backward pass
//   after_backward    waits for the buckets (starting those a parameter without gradient left
//                     open), divides by the world size and writes the averages into .grad
//   sum_across_ranks  the epoch's metric state (counts, confusion matrices, every Metric's sums)
//                     summed over ranks before the metrics are computed: the job's F1 or mIoU
//   on_epoch_end      the share of time spent waiting for data becomes the mean over ranks
//   before_validation rank 0's buffers, so every rank validates the same model
//   after_epoch       a stop on any rank (early stopping, a failed checkpoint on rank 0) stops
//                     every rank, so none is left waiting in a collective
// Buckets follow the parameters in reverse order, the order backward produces them; parameters
// that become trainable later (fine-tuning) are picked up at the next batch. A rank that dies
// makes the collectives of the others fail within the group's timeout, naming it (ProcessGroup).
class DataParallel : public Callback, public GradientSync {
 public:
  explicit DataParallel(std::shared_ptr<ProcessGroup> group, DataParallelOptions options = {});
  ~DataParallel() override;
  std::string name() const override { return "data_parallel"; }
  CallbackOrder order() const override { return CallbackOrder::kDistributed; }

  void on_fit_start(TrainState& state) override;
  void on_train_batch_end(TrainState& state) override;
  void on_epoch_start(TrainState& state) override;
  void on_epoch_end(TrainState& state) override;
  void on_fit_end(TrainState& state) override;
  void before_forward(TrainState& state) override;
  void after_backward(TrainState& state) override;
  void before_validation(TrainState& state) override;
  void after_epoch(TrainState& state) override;
  void sum_across_ranks(std::vector<torch::Tensor>& tensors) override;

  ProcessGroup& group() { return *group_; }
  int64_t buckets() const { return static_cast<int64_t>(buckets_.size()); }

 private:
  struct Bucket;
  void build(TrainState& state);
  void launch(Bucket& bucket);
  void launch_ready();
  void broadcast_buffers(TrainState& state);
  void remove_hooks();

  std::shared_ptr<ProcessGroup> group_;
  DataParallelOptions options_;
  std::vector<torch::Tensor> params_;
  std::vector<std::unique_ptr<Bucket>> buckets_;
  std::vector<std::pair<size_t, size_t>> slot_;  // param -> (bucket, index in bucket)
  std::vector<unsigned> hooks_;
  size_t next_launch_ = 0;  // the next bucket to start
  bool checked_ = false;    // the ranks' starting steps agree
  int64_t examples_ = 0;
};

}  // namespace trainscope::dist
