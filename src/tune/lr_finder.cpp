#include <trainscope/data/image_folder.h>
#include <trainscope/error.h>
#include <trainscope/tune/lr_finder.h>

#include <algorithm>
#include <cmath>
#include <cstdio>

#include "core/rng_guard.h"

namespace trainscope::tune {
namespace {

// 3x5 digits and the few signs tick labels need, one row of 3 bits per line, top to bottom.
const char* glyph(char c) {
  switch (c) {
    case '0':
      return "111101101101111";
    case '1':
      return "010110010010111";
    case '2':
      return "111001111100111";
    case '3':
      return "111001111001111";
    case '4':
      return "101101111001001";
    case '5':
      return "111100111001111";
    case '6':
      return "111100111101111";
    case '7':
      return "111001001001001";
    case '8':
      return "111101111101111";
    case '9':
      return "111101111001111";
    case '-':
      return "000000111000000";
    case '+':
      return "000010111010000";
    case '.':
      return "000000000000010";
    case 'e':
      return "000111111100111";
    default:
      return "000000000000000";
  }
}

struct Canvas {
  int w, h;
  torch::Tensor pixels;  // uint8 [3, h, w]
  Canvas(int width, int height)
      : w(width), h(height), pixels(torch::full({3, height, width}, 255, torch::kUInt8)) {}
  void set(int x, int y, uint8_t r, uint8_t g, uint8_t b) {
    if (x < 0 || y < 0 || x >= w || y >= h) return;
    auto a = pixels.accessor<uint8_t, 3>();
    a[0][y][x] = r, a[1][y][x] = g, a[2][y][x] = b;
  }
  void line(int x0, int y0, int x1, int y1, uint8_t r, uint8_t g, uint8_t b, int thick = 1) {
    const int dx = std::abs(x1 - x0), dy = -std::abs(y1 - y0), sx = x0 < x1 ? 1 : -1,
              sy = y0 < y1 ? 1 : -1;
    int err = dx + dy;
    while (true) {
      for (int t = 0; t < thick; ++t) set(x0, y0 + t, r, g, b), set(x0 + t, y0, r, g, b);
      if (x0 == x1 && y0 == y1) break;
      const int e2 = 2 * err;
      if (e2 >= dy) err += dy, x0 += sx;
      if (e2 <= dx) err += dx, y0 += sy;
    }
  }
  void text(int x, int y, const std::string& s, int scale = 2) {
    for (char c : s) {
      const char* g = glyph(c);
      for (int row = 0; row < 5; ++row)
        for (int col = 0; col < 3; ++col)
          if (g[row * 3 + col] == '1')
            for (int i = 0; i < scale; ++i)
              for (int j = 0; j < scale; ++j)
                set(x + col * scale + i, y + row * scale + j, 60, 60, 60);
      x += 4 * scale;
    }
  }
};

}  // namespace

LrSuggestion suggest_lr(const LrCurve& c, double fallback_lr) {
  LrSuggestion s;
  s.lr = fallback_lr;
  const size_t n = c.smoothed.size();
  if (n < 10) {
    s.reason = "too few points (" + std::to_string(n) + ") to read the curve";
    return s;
  }
  const size_t low = static_cast<size_t>(std::min_element(c.smoothed.begin(), c.smoothed.end()) -
                                         c.smoothed.begin());
  const double drop = (c.smoothed.front() - c.smoothed[low]) / c.smoothed.front();
  if (!(drop >= 0.1) || low < 3) {
    char buf[160];
    std::snprintf(buf, sizeof buf,
                  "the smoothed loss never fell by 10%% (best %.0f%% below the start)", 100 * drop);
    s.reason = buf;
    return s;
  }
  // Slope per decade of lr over a window of 5 points, between the start and the minimum.
  size_t steepest = 0;
  double slope_min = 0;
  for (size_t i = 2; i + 2 <= low; ++i) {
    const double slope = (c.smoothed[i + 2] - c.smoothed[i - 2]) /
                         (std::log10(c.lrs[i + 2]) - std::log10(c.lrs[i - 2]));
    if (slope < slope_min) slope_min = slope, steepest = i;
  }
  if (steepest == 0) {
    s.reason = "no stretch of steady descent before the minimum";
    return s;
  }
  s.lr = c.lrs[steepest];
  s.confident = true;
  char buf[160];
  std::snprintf(buf, sizeof buf,
                "steepest descent of the smoothed loss at lr %.2g (the loss bottoms out at %.2g)",
                s.lr, c.lrs[low]);
  s.reason = buf;
  return s;
}

LrCurve lr_range_test(Model& model, const data::Dataset& data, const LrFinderOptions& o) {
  if (!(o.start_lr > 0 && o.end_lr > o.start_lr && o.steps >= 2))
    throw ConfigError("lr range test: need 0 < start_lr < end_lr and at least 2 steps");
  detail::RngGuard rng;
  const auto saved = model.snapshot();
  const bool was_training = model.is_training();
  model.to(o.device);
  model.train();
  torch::optim::Adam opt(model.parameters(), torch::optim::AdamOptions(o.start_lr));
  auto gen = at::detail::createCPUGenerator(0);
  auto order = torch::randperm(data.size(), gen, torch::kInt64);
  LrCurve c;
  double avg = 0, best = INFINITY;
  int64_t pos = 0;
  for (int64_t i = 0; i < o.steps; ++i) {
    const double lr = o.start_lr * std::pow(o.end_lr / o.start_lr, double(i) / double(o.steps - 1));
    for (auto& g : opt.param_groups()) g.options().set_lr(lr);
    if (pos + o.batch_size > data.size()) pos = 0;
    auto b = data.get_batch(order.slice(0, pos, std::min(data.size(), pos + o.batch_size)));
    pos += o.batch_size;
    b = b.map([&](const torch::Tensor& t) { return t.to(o.device); });
    opt.zero_grad();
    auto out = model.forward(b.x, b.inputs);
    auto loss = task_loss(o.task, out, b.y);
    loss.backward();
    opt.step();
    const double value = loss.item<double>();  // host sync: the curve is the point
    if (!std::isfinite(value)) break;
    avg = o.smoothing * avg + (1 - o.smoothing) * value;
    const double smoothed = avg / (1 - std::pow(o.smoothing, double(i + 1)));
    c.lrs.push_back(lr);
    c.losses.push_back(value);
    c.smoothed.push_back(smoothed);
    best = std::min(best, smoothed);
    if (i > 10 && smoothed > o.diverge_factor * best) break;
  }
  for (auto& p : model.parameters()) p.mutable_grad() = torch::Tensor();
  model.restore(saved);
  model.train(was_training);
  return c;
}

void plot_lr_curve(const LrCurve& c, const LrSuggestion& s, const std::filesystem::path& file) {
  Canvas img(720, 420);
  const int left = 70, right = 700, top = 20, bottom = 370;
  if (c.lrs.empty()) throw Error("lr range test: no points to plot");
  const double x0 = std::floor(std::log10(c.lrs.front())), x1 = std::ceil(std::log10(c.lrs.back()));
  double y0 = *std::min_element(c.smoothed.begin(), c.smoothed.end());
  double y1 =
      std::min(c.smoothed.front() * 1.5, *std::max_element(c.smoothed.begin(), c.smoothed.end()));
  if (y1 <= y0) y1 = y0 + 1;
  auto px = [&](double lr) {
    return left + int((std::log10(lr) - x0) / (x1 - x0) * (right - left));
  };
  auto py = [&](double loss) {
    return bottom - int((std::clamp(loss, y0, y1) - y0) / (y1 - y0) * (bottom - top));
  };
  // Axes, a tick and a label per decade, loss ticks at the bottom and top.
  img.line(left, bottom, right, bottom, 60, 60, 60);
  img.line(left, top, left, bottom, 60, 60, 60);
  for (int d = int(x0); d <= int(x1); ++d) {
    const int x = px(std::pow(10.0, d));
    img.line(x, top, x, bottom, 225, 225, 225);
    img.line(x, bottom, x, bottom + 6, 60, 60, 60);
    char label[16];
    std::snprintf(label, sizeof label, "1e%+d", d);
    img.text(x - 14, bottom + 12, label);
  }
  for (double v : {y0, (y0 + y1) / 2, y1}) {
    char label[16];
    std::snprintf(label, sizeof label, "%.2f", v);
    img.text(4, py(v) - 5, label);
    img.line(left - 5, py(v), left, py(v), 60, 60, 60);
  }
  for (size_t i = 1; i < c.lrs.size(); ++i)
    img.line(px(c.lrs[i - 1]), py(c.smoothed[i - 1]), px(c.lrs[i]), py(c.smoothed[i]), 30, 100, 200,
             2);
  const int sx = px(s.lr);
  for (int y = top; y < bottom; y += 6)  // dashed: the suggestion
    img.line(sx, y, sx, y + 3, s.confident ? 200 : 150, s.confident ? 40 : 150,
             s.confident ? 40 : 150, 2);
  char label[24];
  std::snprintf(label, sizeof label, "%.1e", s.lr);
  img.text(std::min(sx + 6, right - 70), top + 4, label);
  data::write_png(file, img.pixels);
}

}  // namespace trainscope::tune
