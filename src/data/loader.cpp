#include <torch/cuda.h>
#include <trainscope/data/loader.h>
#include <trainscope/error.h>

#include <chrono>

namespace trainscope::data {

DataLoader::DataLoader(std::shared_ptr<const Dataset> dataset, LoaderOptions options)
    : dataset_(std::move(dataset)), options_(options) {
  auto fail = [](const std::string& field, int64_t value, const std::string& expected) {
    throw ConfigError("DataLoader " + field + " " + std::to_string(value) +
                      " is out of range; expected " + expected);
  };
  if (options_.batch_size < 1)
    fail("batch size", options_.batch_size, "a positive integer such as 128");
  if (options_.workers < 0) fail("workers", options_.workers, "0 or more threads");
  if (options_.prefetch < 1) fail("prefetch", options_.prefetch, "at least 1 batch");
  if (options_.world_size < 1) fail("world_size", options_.world_size, "at least 1");
  if (options_.rank < 0 || options_.rank >= options_.world_size)
    fail("rank", options_.rank, "[0, world_size = " + std::to_string(options_.world_size) + ")");
  // Pinning needs a CUDA runtime; without one the flag is a no-op rather than an error so that
  // the same options work on every machine.
  if (options_.pin_memory && !torch::cuda::is_available()) options_.pin_memory = false;
  for (int64_t i = 0; i < options_.workers; ++i) workers_.emplace_back([this] { worker_loop(); });
}

DataLoader::~DataLoader() { stop_workers(); }

void DataLoader::stop_workers() {
  {
    std::lock_guard<std::mutex> lock(mutex_);
    stop_ = true;
  }
  work_cv_.notify_all();
  for (auto& t : workers_)
    if (t.joinable()) t.join();
  workers_.clear();
}

int64_t DataLoader::shard_size() const {
  // Ranks of a job get equal shards, so that their batches (and collectives) pair up.
  const int64_t n = dataset_->size(), w = options_.world_size;
  return w > 1 || options_.drop_last ? n / w : n;
}

int64_t DataLoader::batches_per_epoch() const {
  const int64_t n = shard_size(), b = options_.batch_size;
  return options_.drop_last ? n / b : (n + b - 1) / b;
}

void DataLoader::start_epoch(int64_t epoch) { begin(epoch, 0); }

void DataLoader::begin(int64_t epoch, int64_t first_batch) {
  const int64_t n = dataset_->size();
  torch::Tensor order;
  if (options_.shuffle) {
    // One generator per (seed, epoch): the order of an epoch never depends on what ran before.
    auto gen =
        at::detail::createCPUGenerator(options_.seed * 1000003ULL + static_cast<uint64_t>(epoch));
    order = torch::randperm(n, gen, torch::kInt64);
  } else {
    order = torch::arange(n, torch::kInt64);
  }
  if (options_.world_size > 1) {
    order = order.slice(0, options_.rank, shard_size() * options_.world_size, options_.world_size)
                .contiguous();
  }
  {
    std::lock_guard<std::mutex> lock(mutex_);
    ++generation_;
    ready_.clear();
    order_ = order;
    epoch_ = epoch;
    position_ = first_batch;
    next_to_load_ = first_batch;
    end_ = batches_per_epoch();
  }
  work_cv_.notify_all();
}

Batch DataLoader::load(const torch::Tensor& order, int64_t k) const {
  const int64_t n = order.size(0), b = options_.batch_size;
  const int64_t start = k * b, end = std::min(n, start + b);
  Batch batch = dataset_->get_batch(order.slice(0, start, end));
  if (options_.pin_memory) {
    batch = batch.map([](const torch::Tensor& t) { return t.pin_memory(); });
  }
  return batch;
}

void DataLoader::worker_loop() {
  std::unique_lock<std::mutex> lock(mutex_);
  while (true) {
    work_cv_.wait(lock, [&] {
      return stop_ || (next_to_load_ < end_ && next_to_load_ < position_ + options_.prefetch);
    });
    if (stop_) return;
    const int64_t k = next_to_load_++;
    const uint64_t generation = generation_;
    // A copy of the shard's handle: begin() may replace order_ while this batch loads.
    torch::Tensor order = order_;
    lock.unlock();
    Result result;
    try {
      result.batch = load(order, k);
    } catch (...) {
      result.error = std::current_exception();
    }
    lock.lock();
    if (generation == generation_) {
      ready_.emplace(k, std::move(result));
      ready_cv_.notify_all();
    }
  }
}

bool DataLoader::next(Batch& batch) {
  TORCH_INTERNAL_ASSERT(order_.defined(), "DataLoader::next() called before start_epoch()");
  if (position_ >= end_) return false;
  const auto t0 = std::chrono::steady_clock::now();
  if (workers_.empty()) {
    batch = load(order_, position_);
    ++position_;
  } else {
    std::unique_lock<std::mutex> lock(mutex_);
    ready_cv_.wait(lock, [&] { return ready_.count(position_) > 0; });
    auto node = ready_.extract(position_);
    ++position_;
    lock.unlock();
    work_cv_.notify_all();  // a prefetch slot is free
    if (node.mapped().error) std::rethrow_exception(node.mapped().error);
    batch = std::move(node.mapped().batch);
  }
  wait_seconds_ += std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  return true;
}

LoaderPosition DataLoader::position() const { return {epoch_, position_, options_.seed}; }

void DataLoader::restore(const LoaderPosition& p) {
  if (p.seed != options_.seed)
    throw ConfigError("loader position was saved with seed " + std::to_string(p.seed) +
                      " but this loader has seed " + std::to_string(options_.seed) +
                      "; resume with the run's own train.seed");
  if (p.batches < 0 || p.batches > batches_per_epoch())
    throw ConfigError("loader position batch " + std::to_string(p.batches) + " is outside epoch " +
                      std::to_string(p.epoch) + " of " + std::to_string(batches_per_epoch()) +
                      " batches; the data set or batch size changed since it was saved");
  begin(p.epoch, p.batches);
}

}  // namespace trainscope::data
