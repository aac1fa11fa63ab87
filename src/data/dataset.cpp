#include <trainscope/data/dataset.h>
#include <trainscope/error.h>

#include "data/split.h"

namespace trainscope::data {

TensorDataset::TensorDataset(torch::Tensor x, torch::Tensor y)
    : x_(std::move(x)), y_(std::move(y)) {
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

std::pair<torch::Tensor, torch::Tensor> split_indices(int64_t n, double val_fraction,
                                                      uint64_t seed) {
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

HoldoutSplit holdout_split(std::shared_ptr<const Dataset> dataset, double val_fraction,
                           uint64_t seed) {
  auto [train, val] = split_indices(dataset->size(), val_fraction, seed);
  return {std::make_shared<Subset>(dataset, train), std::make_shared<Subset>(dataset, val)};
}

}  // namespace trainscope::data
