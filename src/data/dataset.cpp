#include <trainscope/data/dataset.h>
#include <trainscope/data/loader.h>
#include <trainscope/error.h>

#include "data/split.h"

namespace trainscope::data {

TensorDataset::TensorDataset(torch::Tensor x, torch::Tensor y) : x_(std::move(x)), y_(std::move(y)) {
  if (x_.dim() == 0 || y_.dim() == 0 || x_.size(0) != y_.size(0))
    throw DataError("TensorDataset: inputs have " + std::to_string(x_.dim() ? x_.size(0) : 0) +
                    " examples but targets have " + std::to_string(y_.dim() ? y_.size(0) : 0) +
                    "; both need the examples along dimension 0");
}

Batch TensorDataset::get_batch(const torch::Tensor& indices) const {
  return {x_.index_select(0, indices), y_.index_select(0, indices)};
}

Subset::Subset(std::shared_ptr<const Dataset> base, torch::Tensor indices)
    : base_(std::move(base)), indices_(std::move(indices)) {}

Batch Subset::get_batch(const torch::Tensor& indices) const {
  return base_->get_batch(indices_.index_select(0, indices));
}

std::pair<torch::Tensor, torch::Tensor> split_indices(int64_t n, double val_fraction, uint64_t seed) {
  if (!(val_fraction >= 0.0 && val_fraction < 1.0))
    throw ConfigError("validation fraction " + std::to_string(val_fraction) +
                      " is out of range; expected a fraction in [0, 1) such as 0.1");
  auto gen = at::detail::createCPUGenerator(seed);
  auto perm = torch::randperm(n, gen, torch::kInt64);
  const int64_t n_val = static_cast<int64_t>(val_fraction * static_cast<double>(n));
  // Sorted so that a split reads its examples in file order, which keeps memory access linear.
  auto val = std::get<0>(perm.slice(0, 0, n_val).sort());
  auto train = std::get<0>(perm.slice(0, n_val, n).sort());
  return {train, val};
}

HoldoutSplit holdout_split(std::shared_ptr<const Dataset> dataset, double val_fraction, uint64_t seed) {
  auto [train, val] = split_indices(dataset->size(), val_fraction, seed);
  return {std::make_shared<Subset>(dataset, train), std::make_shared<Subset>(dataset, val)};
}

DataLoader::DataLoader(std::shared_ptr<const Dataset> dataset, LoaderOptions options)
    : dataset_(std::move(dataset)), options_(options) {
  if (options_.batch_size < 1)
    throw ConfigError("batch size " + std::to_string(options_.batch_size) +
                      " is out of range; expected a positive integer such as 128");
}

int64_t DataLoader::batches_per_epoch() const {
  const int64_t n = dataset_->size(), b = options_.batch_size;
  return options_.drop_last ? n / b : (n + b - 1) / b;
}

void DataLoader::start_epoch(int64_t epoch) {
  const int64_t n = dataset_->size();
  if (options_.shuffle) {
    // One generator per (seed, epoch): the order of an epoch never depends on what ran before.
    auto gen = at::detail::createCPUGenerator(options_.seed * 1000003ULL + static_cast<uint64_t>(epoch));
    order_ = torch::randperm(n, gen, torch::kInt64);
  } else {
    order_ = torch::arange(n, torch::kInt64);
  }
  position_ = 0;
}

bool DataLoader::next(Batch& batch) {
  TORCH_INTERNAL_ASSERT(order_.defined(), "DataLoader::next() called before start_epoch()");
  const int64_t n = order_.size(0), b = options_.batch_size;
  if (position_ >= n || (options_.drop_last && position_ + b > n)) return false;
  const int64_t end = std::min(n, position_ + b);
  batch = dataset_->get_batch(order_.slice(0, position_, end));
  position_ = end;
  return true;
}

}  // namespace trainscope::data
