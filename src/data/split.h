#pragma once
// Internal: the index split shared by holdout_split() and the IDX loader.
#include <torch/torch.h>

#include <utility>

namespace trainscope::data {

// (train, val) index tensors over [0, n), disjoint, sorted, val having floor(n * val_fraction).
std::pair<torch::Tensor, torch::Tensor> split_indices(int64_t n, double val_fraction,
                                                      uint64_t seed);

}  // namespace trainscope::data
