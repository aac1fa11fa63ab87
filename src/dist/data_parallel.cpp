#include <trainscope/dist/data_parallel.h>
#include <trainscope/error.h>
#include <trainscope/models/model.h>

namespace trainscope::dist {

// A flat buffer for the gradients of some parameters (one dtype and device), all-reduced as one.
// The last slot of the first bucket carries this rank's interrupt flag (SIGINT, SIGTERM), so the
// ranks agree on the batch after which a fit stops.
struct DataParallel::Bucket {
  std::vector<size_t> params;    // indices into params_
  std::vector<int64_t> offsets;  // of each parameter in `flat`
  int64_t size = 0;              // values of its parameters
  torch::TensorOptions options;  // their dtype and device
  torch::Tensor flat;
  std::vector<bool> ready;
  size_t pending = 0;
  std::unique_ptr<ProcessGroup::Pending> work;
  bool carries_flag = false;
};

DataParallel::DataParallel(std::shared_ptr<ProcessGroup> group, DataParallelOptions options)
    : group_(std::move(group)), options_(options) {
  TORCH_CHECK(group_ != nullptr, "DataParallel needs a process group");
}

DataParallel::~DataParallel() { remove_hooks(); }

void DataParallel::remove_hooks() {
  for (size_t i = 0; i < hooks_.size() && i < params_.size(); ++i)
    params_[i].remove_hook(hooks_[i]);
  hooks_.clear();
}

void DataParallel::build(TrainState& state) {
  remove_hooks();
  params_.clear();
  buckets_.clear();
  slot_.clear();
  // Reverse order: backward produces the last layers' gradients first.
  auto all = state.model->parameters();
  for (auto it = all.rbegin(); it != all.rend(); ++it)
    if (it->requires_grad()) params_.push_back(*it);
  for (size_t i = 0; i < params_.size(); ++i) {
    const auto& p = params_[i];
    Bucket* b = buckets_.empty() ? nullptr : buckets_.back().get();
    const bool full =
        b != nullptr && b->size > 0 &&
        (b->size + p.numel()) * static_cast<int64_t>(p.element_size()) > options_.bucket_bytes;
    if (b == nullptr || full || b->options.dtype() != p.dtype() ||
        b->options.device() != p.device()) {
      buckets_.push_back(std::make_unique<Bucket>());
      b = buckets_.back().get();
      b->options = p.options().requires_grad(false);
    }
    slot_.push_back({buckets_.size() - 1, b->params.size()});
    b->params.push_back(i);
    b->offsets.push_back(b->size);
    b->size += p.numel();
  }
  for (size_t bi = 0; bi < buckets_.size(); ++bi) {
    Bucket& b = *buckets_[bi];
    b.carries_flag = bi == 0;
    b.flat = torch::zeros({b.size + (b.carries_flag ? 1 : 0)}, b.options);
    b.ready.assign(b.params.size(), false);
  }
  for (size_t i = 0; i < params_.size(); ++i) {
    hooks_.push_back(params_[i].register_hook([this, i](const torch::Tensor& grad) {
      auto [bi, k] = slot_[i];
      Bucket& b = *buckets_[bi];
      const int64_t at = b.offsets[k];
      b.flat.slice(0, at, at + grad.numel()).copy_(grad.reshape({-1}));
      if (!b.ready[k]) {
        b.ready[k] = true;
        --b.pending;
        launch_ready();
      }
    }));
  }
}

// Every rank must issue the same all-reduces in the same order: buckets start in index order,
// each as soon as it and all before it are full.
void DataParallel::launch_ready() {
  while (next_launch_ < buckets_.size() && buckets_[next_launch_]->pending == 0)
    launch(*buckets_[next_launch_++]);
}

void DataParallel::launch(Bucket& b) {
  if (b.carries_flag) b.flat[-1] = interrupt_signal() != 0 ? 1.0 : 0.0;
  b.work = group_->all_reduce_async(b.flat);
}

void DataParallel::on_fit_start(TrainState& state) {
  checked_ = false;
  build(state);
  // One model: rank 0's weights and buffers.
  std::vector<torch::Tensor> tensors = state.model->parameters();
  for (const auto& b : state.model->module().buffers()) tensors.push_back(b);
  std::vector<torch::Tensor> data;
  for (auto& t : tensors) data.push_back(t.detach());
  group_->broadcast(data, 0);
}

void DataParallel::before_forward(TrainState& state) {
  if (!checked_) {
    // Every rank must start where rank 0 does: after a resume, each read a checkpoint of its own.
    checked_ = true;
    const double step = static_cast<double>(state.global_step);
    std::vector<torch::Tensor> t = {torch::tensor({step, step * step}, torch::kFloat64)};
    group_->all_reduce(t);
    const double n = group_->world_size(), mean = t[0][0].item<double>() / n;
    if (t[0][1].item<double>() / n - mean * mean > 0.25)
      throw JobError("data-parallel job: the ranks start at different steps (this rank at " +
                     std::to_string(state.global_step) + ", the job's mean " +
                     std::to_string(mean) +
                     "): every rank must read rank 0's checkpoint, on a file system they share");
  }
  // Parameters unfrozen since the last batch (fine-tuning) need buckets and hooks too.
  size_t trainable = 0;
  for (const auto& p : state.model->parameters()) trainable += p.requires_grad();
  if (trainable != params_.size()) build(state);
  for (auto& b : buckets_) {
    b->pending = b->params.size();
    b->ready.assign(b->params.size(), false);
    b->work.reset();
  }
  next_launch_ = 0;
  if (options_.broadcast_buffers) broadcast_buffers(state);
}

void DataParallel::broadcast_buffers(TrainState& state) {
  std::vector<torch::Tensor> buffers;
  for (const auto& b : state.model->module().buffers()) buffers.push_back(b.detach());
  if (!buffers.empty()) group_->broadcast(buffers, 0);
}

void DataParallel::before_validation(TrainState& state) {
  // The last batch moved each rank's BatchNorm statistics its own way: rank 0's are evaluated
  // everywhere, so that every rank computes the same validation metrics and decisions.
  broadcast_buffers(state);
}

void DataParallel::after_epoch(TrainState& state) {
  // One entry per rank: its stop reason (0: none). A stop on any rank stops the job.
  const int world = group_->world_size(), rank = group_->rank();
  std::vector<torch::Tensor> reasons = {torch::zeros({world}, torch::kInt64)};
  reasons[0][rank] = static_cast<int64_t>(state.stop_reason);
  group_->all_reduce(reasons);
  if (state.stop_requested()) return;
  for (int r = 0; r < world; ++r) {
    const auto reason = static_cast<StopReason>(reasons[0][r].item<int64_t>());
    if (reason == StopReason::kNone) continue;
    state.request_stop(
        reason, "rank " + std::to_string(r) + " stopped the job (" + to_string(reason) + ")");
    return;
  }
}

void DataParallel::after_backward(TrainState& state) {
  const double world = static_cast<double>(group_->world_size());
  // A parameter without a gradient this batch contributes zeros; the rest start in order.
  for (size_t bi = next_launch_; bi < buckets_.size(); ++bi) {
    Bucket& b = *buckets_[bi];
    for (size_t k = 0; k < b.params.size(); ++k)
      if (!b.ready[k]) {
        const auto& p = params_[b.params[k]];
        b.flat.slice(0, b.offsets[k], b.offsets[k] + p.numel()).zero_();
        b.ready[k] = true;
      }
    b.pending = 0;
  }
  launch_ready();
  torch::NoGradGuard no_grad;
  for (auto& b : buckets_) {
    b->work->wait();
    if (b->carries_flag && b->flat[-1].item<double>() > 0 && !state.interrupted) {
      state.interrupted = true;
      state.request_stop(StopReason::kInterrupted,
                         "interrupted (a signal to the job) in epoch " +
                             std::to_string(state.epoch) + " after batch " +
                             std::to_string(state.batch_in_epoch + 1) + " of " +
                             std::to_string(state.batches_per_epoch));
    }
    for (size_t k = 0; k < b->params.size(); ++k) {
      auto& p = params_[b->params[k]];
      auto avg = b->flat.slice(0, b->offsets[k], b->offsets[k] + p.numel()).view_as(p) / world;
      if (p.grad().defined())
        p.mutable_grad().copy_(avg);
      else
        p.mutable_grad() = avg.clone();
    }
  }
}

void DataParallel::on_epoch_start(TrainState&) { examples_ = 0; }

void DataParallel::on_train_batch_end(TrainState& state) { examples_ += state.batch_size; }

void DataParallel::on_epoch_end(TrainState& state) {
  // The metrics are the job's already (sum_across_ranks); the time each rank waited for its data
  // is its own, and the job's is their mean.
  auto wait = state.train_metrics.find("data_wait_fraction");
  if (wait == state.train_metrics.end()) return;
  std::vector<torch::Tensor> t = {torch::tensor({wait->second}, torch::kFloat64)};
  group_->all_reduce(t);
  wait->second = t[0].item<double>() / group_->world_size();
}

void DataParallel::sum_across_ranks(std::vector<torch::Tensor>& tensors) {
  group_->all_reduce(tensors);
}

void DataParallel::on_fit_end(TrainState&) { remove_hooks(); }

}  // namespace trainscope::dist
