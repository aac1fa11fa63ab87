#include <trainscope/data/dataset.h>
#include <trainscope/error.h>

#include "data/split.h"

#include <algorithm>
#include <cmath>
#include <cstdio>

namespace trainscope::data {
namespace {

// [1, C, 1, 1] (or [1, 1, 1, 1]) for x [B, C, H, W]; [C, 1, 1] for x [C, H, W].
torch::Tensor channel_view(const std::vector<double>& v, const torch::Tensor& x) {
  auto t = torch::tensor(v, torch::TensorOptions(torch::kFloat64)).to(x.options());
  return x.dim() == 3 ? t.view({-1, 1, 1}) : t.view({1, -1, 1, 1});
}

std::string list(const std::vector<double>& v) {
  std::string out = v.size() > 1 ? "[" : "";
  for (size_t i = 0; i < v.size(); ++i) {
    char buf[32];
    std::snprintf(buf, sizeof buf, "%s%.4f", i ? ", " : "", v[i]);
    out += buf;
  }
  return out + (v.size() > 1 ? "]" : "");
}

}  // namespace

void PixelStats::check(int64_t channels, const std::string& what) const {
  auto fits = [&](const std::vector<double>& v) {
    return v.size() == 1 || static_cast<int64_t>(v.size()) == channels;
  };
  if (!fits(mean) || !fits(std))
    throw ConfigError(what + ": normalization " + str() + " has " + std::to_string(mean.size()) +
                      " mean(s) and " + std::to_string(std.size()) +
                      " std(s); expected 1 value or one per channel (" + std::to_string(channels) +
                      ") each");
  for (double s : std)
    if (!(s > 0) || !std::isfinite(s))
      throw ConfigError(what + ": normalization " + str() +
                        " has a std that is not a positive number");
}

torch::Tensor PixelStats::normalize(const torch::Tensor& raw) const {
  if (!per_channel()) return (raw - mean[0]) / std[0];
  return (raw - channel_view(mean, raw)) / channel_view(std, raw);
}

torch::Tensor PixelStats::raw(const torch::Tensor& x) const {
  if (!per_channel()) return x * std[0] + mean[0];
  return x * channel_view(std, x) + channel_view(mean, x);
}

torch::Tensor PixelStats::black(const torch::TensorOptions& options) const {
  bool zero = true;
  for (double m : mean) zero = zero && m == 0.0;
  if (zero) return {};  // raw inputs: black is 0, nothing to shift
  const auto channels = static_cast<int64_t>(std::max(mean.size(), std.size()));
  return normalize(torch::zeros({1, channels, 1, 1}, options));
}

std::string PixelStats::str() const { return "mean " + list(mean) + ", std " + list(std); }

PixelStats pixel_stats(const torch::Tensor& raw) {
  PixelStats out;
  out.mean.clear();
  out.std.clear();
  if (raw.dim() != 4 || raw.numel() == 0) return {};
  for (int64_t c = 0; c < raw.size(1); ++c) {
    const auto x = raw.size(1) == 1 ? raw : raw.select(1, c);
    out.mean.push_back(x.mean().item<double>());
    const double sd = x.numel() > 1 ? x.std().item<double>() : 1.0;
    out.std.push_back(sd > 0 ? sd : 1.0);
  }
  return out;
}

TensorDataset::TensorDataset(torch::Tensor x, torch::Tensor y, TensorMap inputs, TensorMap targets)
    : x_(std::move(x)), y_(std::move(y)), inputs_(std::move(inputs)), targets_(std::move(targets)) {
  if (x_.dim() == 0 || y_.dim() == 0 || x_.size(0) != y_.size(0))
    throw DataError("TensorDataset: inputs have " + std::to_string(x_.dim() ? x_.size(0) : 0) +
                    " examples but targets have " + std::to_string(y_.dim() ? y_.size(0) : 0) +
                    "; both need the examples along dimension 0");
  for (const auto* named : {&inputs_, &targets_})
    for (const auto& [name, t] : *named)
      if (t.dim() == 0 || t.size(0) != x_.size(0))
        throw DataError("TensorDataset: " + std::string(named == &inputs_ ? "input" : "target") +
                        " \"" + name + "\" has " + std::to_string(t.dim() ? t.size(0) : 0) +
                        " examples but x has " + std::to_string(x_.size(0)) +
                        "; each needs the examples along dimension 0");
}

Batch TensorDataset::get_batch(const torch::Tensor& indices) const {
  auto pick = [&](const torch::Tensor& t) { return t.index_select(0, indices); };
  return {pick(x_), pick(y_), inputs_.map(pick), targets_.map(pick)};
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
