// Data checks (`trainscope check`) at full size on Fashion-MNIST (bench/README.md has figures).
//   bench_data_check [--out DIR] [--part all|shipped|planted] [--candidates K]
//                    [--near-correlation R] [--labels on|off]
// 1. As shipped (54,000 train, 6,000 val, 10,000 test): what the checks find and how long each
//    stage takes; DIR/pairs.png (the 24 closest copies across splits, each pair side by side) and
//    DIR/suspects.png (the 48 most suspect training labels).
// 2. With planted faults in the 60,000 training and 10,000 test images: 100 exact and 300 near
//    copies of training images put into the test split (moved by 0-3 pixels, contrast 0.6-1.0,
//    brightness +-0.3 of a normalized unit, noise 0.03), and 5% of training and 3% of test
//    labels moved to another class. Prints detection rates: copies found by shift, test images
//    paired that were not planted, and for labels recall, precision of everything flagged and
//    precision among the most suspect as many as were planted.
#include <trainscope/trainscope.h>

#include "../tests/unit/diagnose/shift_image.h"

#include <cstdio>
#include <filesystem>
#include <map>
#include <set>
#include <string>

namespace ts = trainscope;
namespace dg = trainscope::diagnose;
namespace fs = std::filesystem;

namespace {

std::string arg(int argc, char** argv, const std::string& name, const std::string& fallback) {
  for (int i = 1; i + 1 < argc; ++i)
    if (argv[i] == name) return argv[i + 1];
  return fallback;
}

// Normalized [1, 28, 28] back to uint8 [1, 28, 28].
torch::Tensor to_u8(const ts::data::PixelStats& pixels, const torch::Tensor& x) {
  return (pixels.raw(x.unsqueeze(0)).squeeze(0) * 255.0).round().clamp(0, 255).to(torch::kUInt8);
}

// Tiles [1, 28, 28] uint8 images `columns` to a row, 2-pixel gray gutters, each pixel 3x3.
torch::Tensor tile(const std::vector<torch::Tensor>& images, int64_t columns) {
  const int64_t rows = (int64_t(images.size()) + columns - 1) / columns, cell = 30;
  auto sheet = torch::full({1, rows * cell, columns * cell}, 128, torch::kUInt8);
  for (size_t i = 0; i < images.size(); ++i) {
    const int64_t r = int64_t(i) / columns, c = int64_t(i) % columns;
    sheet.slice(1, r * cell + 1, r * cell + 29)
        .slice(2, c * cell + 1, c * cell + 29)
        .copy_(images[i]);
  }
  return sheet.repeat_interleave(3, 1).repeat_interleave(3, 2).contiguous();
}

torch::Tensor all_of(const ts::data::Dataset& d) { return d.get_batch(torch::arange(d.size())).x; }

void as_shipped(const fs::path& out) {
  auto splits = ts::data::fashion_mnist();
  dg::DataCheckOptions o;
  o.progress = true;
  auto r = dg::check_data(splits, o);
  std::printf("== Fashion-MNIST as shipped ==\n%s", dg::to_text(r).c_str());
  std::printf("closest pairs (split #index, row in its file):\n");
  std::map<std::string, torch::Tensor> x = {{"train", all_of(*splits.train)},
                                            {"val", all_of(*splits.val)},
                                            {"test", all_of(*splits.test)}};
  std::vector<torch::Tensor> pair_images;
  for (size_t i = 0; i < r.duplicates.size() && i < 24; ++i) {
    const auto& p = r.duplicates[i];
    if (i < 10)
      std::printf("  %s row %lld ~ %s row %lld: r %.4f, moved %lld,%lld, labels %s / %s\n",
                  p.split_a.c_str(), (long long)p.a_source, p.split_b.c_str(),
                  (long long)p.b_source, p.correlation, (long long)p.dx, (long long)p.dy,
                  r.class_names[size_t(p.label_a)].c_str(),
                  r.class_names[size_t(p.label_b)].c_str());
    pair_images.push_back(to_u8(splits.pixels, x[p.split_a][p.a]));
    pair_images.push_back(to_u8(splits.pixels, x[p.split_b][p.b]));
  }
  std::printf("most suspect training labels:\n");
  std::vector<torch::Tensor> suspect_images;
  int64_t listed = 0;
  for (const auto& s : r.label_suspects) {
    if (s.split != "train" || listed >= 48) continue;
    if (listed < 16)
      std::printf("  train row %lld: given %s, looks like %s (%.2f vs %.2f)\n", (long long)s.source,
                  r.class_names[size_t(s.given)].c_str(),
                  r.class_names[size_t(s.suggested)].c_str(), s.suggested_probability,
                  s.given_probability);
    suspect_images.push_back(to_u8(splits.pixels, x["train"][s.index]));
    ++listed;
  }
  fs::create_directories(out);
  if (!pair_images.empty()) ts::data::write_png(out / "pairs.png", tile(pair_images, 8));
  if (!suspect_images.empty()) ts::data::write_png(out / "suspects.png", tile(suspect_images, 12));
  std::printf("images: %s, %s\n\n", (out / "pairs.png").c_str(), (out / "suspects.png").c_str());
}

void planted(const dg::DataCheckOptions& base) {
  ts::data::IdxOptions io;
  io.val_fraction = 0.0;
  auto shipped = ts::data::fashion_mnist(io);
  auto train = shipped.train->get_batch(torch::arange(shipped.train->size()));
  auto test = shipped.test->get_batch(torch::arange(shipped.test->size()));
  const int64_t n = train.x.size(0), m = test.x.size(0);
  auto gen = at::detail::createCPUGenerator(2026);
  auto test_slots = torch::randperm(m, gen, torch::kInt64);
  auto sources = torch::randperm(n, gen, torch::kInt64);
  std::map<int64_t, int64_t> exact, near, moved_by;  // test index -> training index / shift
  torch::manual_seed(2026);
  for (int64_t k = 0; k < 400; ++k) {
    const int64_t t = test_slots[k].item<int64_t>(), a = sources[k].item<int64_t>();
    auto img = train.x[a];
    if (k < 100) {
      test.x[t].copy_(img);
      exact[t] = a;
    } else {
      const int64_t dx = torch::randint(-3, 4, {1}, gen).item<int64_t>();
      const int64_t dy = torch::randint(-3, 4, {1}, gen).item<int64_t>();
      const double contrast = 0.6 + 0.4 * torch::rand({1}, gen).item<double>();
      const double brightness = 0.6 * torch::rand({1}, gen).item<double>() - 0.3;
      auto moved = trainscope::testing::shift_image(img, dx, dy);
      test.x[t].copy_(moved * contrast + brightness + 0.03 * torch::randn(moved.sizes(), gen));
      near[t] = a;
      moved_by[t] = std::max(std::abs(dx), std::abs(dy));
    }
    test.y[t] = train.y[a];
  }
  auto flip = [&](torch::Tensor& y, int64_t count, std::map<int64_t, int64_t>& out) {
    auto idx = torch::randperm(y.size(0), gen, torch::kInt64).slice(0, 0, count);
    for (int64_t k = 0; k < count; ++k) {
      const int64_t i = idx[k].item<int64_t>(), truth = y[i].item<int64_t>();
      y[i] = (truth + 1 + torch::randint(0, 9, {1}, gen).item<int64_t>()) % 10;
      out[i] = truth;
    }
  };
  std::map<int64_t, int64_t> flipped_train, flipped_test;
  flip(train.y, n / 20, flipped_train);
  // Test labels flipped away from the planted copies (whose labels the pairs compare).
  auto candidates = test_slots.slice(0, 400);
  for (int64_t k = 0; k < m * 3 / 100; ++k) {
    const int64_t i = candidates[k].item<int64_t>(), truth = test.y[i].item<int64_t>();
    test.y[i] = (truth + 1 + torch::randint(0, 9, {1}, gen).item<int64_t>()) % 10;
    flipped_test[i] = truth;
  }
  ts::data::DataSplits s;
  s.train = std::make_shared<ts::data::TensorDataset>(train.x, train.y);
  s.test = std::make_shared<ts::data::TensorDataset>(test.x, test.y);
  s.num_classes = 10;
  s.input_shape = {1, 28, 28};
  s.class_names = shipped.class_names;
  s.source = "planted";
  dg::DataCheckOptions o = base;
  o.progress = true;
  o.max_suspects = 100000;
  auto r = dg::check_data(s, o);
  std::printf("== planted faults (60,000 train, 10,000 test) ==\n%s", dg::to_text(r).c_str());
  std::set<int64_t> found_exact, found_near, unplanted;
  for (const auto& p : r.duplicates) {
    if (p.kind == "exact" && exact.count(p.b) && exact[p.b] == p.a)
      found_exact.insert(p.b);
    else if (p.kind == "near" && near.count(p.b) && near[p.b] == p.a)
      found_near.insert(p.b);
    else if (!exact.count(p.b) && !near.count(p.b))
      unplanted.insert(p.b);
  }
  std::printf("exact copies found: %zu of %zu\n", found_exact.size(), exact.size());
  for (int64_t by = 0; by <= 3; ++by) {
    int64_t planted_by = 0, found_by = 0;
    for (const auto& [t, b] : moved_by)
      if (b == by) {
        ++planted_by;
        found_by += found_near.count(t);
      }
    std::printf("near copies moved by %lld px found: %lld of %lld\n", (long long)by,
                (long long)found_by, (long long)planted_by);
  }
  std::printf("near copies found: %zu of %zu; test images paired that were not planted: %zu\n",
              found_near.size(), near.size(), unplanted.size());
  for (const std::string split : {"train", "test"}) {
    auto& flipped = split == "train" ? flipped_train : flipped_test;
    int64_t listed = 0, hits = 0, top = 0, right = 0;
    for (const auto& l : r.label_suspects) {
      if (l.split != split) continue;
      const bool hit = flipped.count(l.index) > 0;
      hits += hit;
      right += hit && flipped[l.index] == l.suggested;
      if (listed++ < int64_t(flipped.size())) top += hit;
    }
    std::printf(
        "%s labels flipped %zu: flagged %lld, recall %.1f%%, precision %.1f%%, precision among "
        "the %zu most suspect %.1f%%, true class suggested for %.1f%% of the flips found\n",
        split.c_str(), flipped.size(), (long long)listed, 100.0 * hits / double(flipped.size()),
        100.0 * hits / double(std::max<int64_t>(1, listed)), flipped.size(),
        100.0 * top / double(flipped.size()), 100.0 * right / double(std::max<int64_t>(1, hits)));
  }
}

}  // namespace

int main(int argc, char** argv) {
  const fs::path out = arg(argc, argv, "--out", "data-check-bench");
  const std::string part = arg(argc, argv, "--part", "all");  // all, shipped or planted
  dg::DataCheckOptions o;
  o.candidates = std::stoll(arg(argc, argv, "--candidates", std::to_string(o.candidates)));
  o.near_correlation =
      std::stod(arg(argc, argv, "--near-correlation", std::to_string(o.near_correlation)));
  o.label_noise = arg(argc, argv, "--labels", "on") == "on";
  if (part != "planted") as_shipped(out);
  if (part != "shipped") planted(o);
  return 0;
}
