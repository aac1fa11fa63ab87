#pragma once
// Planting near copies: an image moved by whole pixels. Shared by the data-check tests and
// bench/data_check_bench.cpp, which plant the same faults at small and full scale.

#include <torch/torch.h>

#include <algorithm>
#include <cstdint>

namespace trainscope::testing {

// `img` [C, H, W] moved by (dx, dy), the border filled with the image's background (its minimum).
inline torch::Tensor shift_image(const torch::Tensor& img, int64_t dx, int64_t dy) {
  auto out = torch::full_like(img, img.min().item<float>());
  const int64_t h = img.size(1), w = img.size(2);
  out.slice(1, std::max<int64_t>(0, dy), h + std::min<int64_t>(0, dy))
      .slice(2, std::max<int64_t>(0, dx), w + std::min<int64_t>(0, dx))
      .copy_(img.slice(1, std::max<int64_t>(0, -dy), h - std::max<int64_t>(0, dy))
                 .slice(2, std::max<int64_t>(0, -dx), w - std::max<int64_t>(0, dx)));
  return out;
}

}  // namespace trainscope::testing
