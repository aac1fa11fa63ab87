#include <trainscope/diagnose/data_checks.h>

#include <trainscope/data/image_folder.h>
#include <trainscope/error.h>

#include "core/rng_guard.h"

#include <nlohmann/json.hpp>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <map>
#include <numeric>
#include <set>
#include <tuple>
#include <unordered_map>

namespace trainscope::diagnose {
namespace {

namespace F = torch::nn::functional;

constexpr int64_t kReadChunk = 4096;
constexpr int64_t kMaxListedPairs = 10000;
constexpr int64_t kMaxListedBroken = 1000;
constexpr int64_t kEmbedSide = 8;  // the coarse embedding pools each channel to 8x8
constexpr int64_t kFineSide =
    14;  // the fine one, which re-ranks the coarse one's nearest, to 14x14
constexpr int64_t kShortlist = 256;  // the coarse embedding's nearest, re-ranked by the fine one
constexpr double kNoisyLabelShare = 0.15;

std::string num(double v) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.4g", v);
  return buf;
}

std::string pct(double part, double whole) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.2f%%", whole > 0 ? 100.0 * part / whole : 0.0);
  return buf;
}

double seconds_since(std::chrono::steady_clock::time_point start) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
}

uint64_t fnv1a(const float* data, int64_t count) {
  uint64_t h = 1469598103934665603ull;
  const auto* bytes = reinterpret_cast<const unsigned char*>(data);
  for (int64_t i = 0; i < count * int64_t(sizeof(float)); ++i) {
    h ^= bytes[i];
    h *= 1099511628211ull;
  }
  return h;
}

// One split read into memory.
struct SplitData {
  std::string name;
  // float32 [N, ...]: tabular rows as the split gives them; images at the working size (NaN and
  // infinities zeroed), so that a folder of large photos is never held at full size.
  torch::Tensor x;
  torch::Tensor y;              // int64 labels [N] (classification) or undefined
  std::vector<int64_t> source;  // position in the file the split was read from
  const std::vector<std::filesystem::path>* files = nullptr;  // image folders
  std::vector<uint64_t> hashes;  // of each example's values as read (full size)
  torch::Tensor finite, usable;  // bool [N]: every value finite; and not constant either
  // Images: embeddings [N, E] of the aligned images (coarse and fine) and of the images as read.
  torch::Tensor embedding, fine_embedding, fine_moved, plain_embedding;
  int64_t size() const { return x.defined() ? x.size(0) : 0; }
  std::string file(int64_t i) const {
    return files && i < int64_t(files->size()) ? (*files)[size_t(i)].string() : std::string();
  }
};

// Images at no more than `side` pixels a side (area-averaged), aspect kept.
torch::Tensor working_size(const torch::Tensor& x, int64_t side) {
  const int64_t h = x.size(2), w = x.size(3);
  if (std::max(h, w) <= side) return x;
  const double scale = double(side) / double(std::max(h, w));
  const int64_t nh = std::max<int64_t>(1, std::llround(h * scale));
  const int64_t nw = std::max<int64_t>(1, std::llround(w * scale));
  return F::adaptive_avg_pool2d(x, F::AdaptiveAvgPool2dFuncOptions({nh, nw}));
}

// Reads a split chunk by chunk: hashes, finiteness and constancy from the values as read; images
// kept at no more than `image_side` pixels a side (0: not images, kept as they are).
SplitData read_split(const std::string& name, const data::Dataset& dataset,
                     const torch::Tensor& origin, bool classification, int64_t image_side) {
  SplitData s;
  s.name = name;
  const int64_t n = dataset.size();
  std::vector<torch::Tensor> xs, ys, finite, usable;
  s.hashes.reserve(size_t(n));
  for (int64_t i = 0; i < n; i += kReadChunk) {
    auto b = dataset.get_batch(torch::arange(i, std::min(n, i + kReadChunk)));
    auto x = b.x.to(torch::kCPU, torch::kFloat32).contiguous();
    auto flat = x.reshape({x.size(0), -1});
    const int64_t dim = flat.size(1);
    const float* p = flat.data_ptr<float>();
    for (int64_t r = 0; r < flat.size(0); ++r) s.hashes.push_back(fnv1a(p + r * dim, dim));
    auto ok = torch::isfinite(flat).all(1);
    finite.push_back(ok);
    usable.push_back(ok & (std::get<0>(flat.max(1)) != std::get<0>(flat.min(1))));
    xs.push_back(image_side > 0 ? working_size(x.nan_to_num(0.0, 0.0, 0.0), image_side).contiguous()
                                : x);
    ys.push_back(b.y.to(torch::kCPU));
  }
  if (xs.empty()) return s;
  s.x = torch::cat(xs).contiguous();
  s.finite = torch::cat(finite);
  s.usable = torch::cat(usable);
  if (classification) s.y = torch::cat(ys).to(torch::kInt64).reshape({-1});
  s.source.resize(static_cast<size_t>(n));
  std::iota(s.source.begin(), s.source.end(), int64_t{0});
  torch::Tensor from = origin;
  if (!from.defined())
    if (const auto* subset = dynamic_cast<const data::Subset*>(&dataset)) from = subset->indices();
  if (from.defined() && from.numel() == n) {
    auto idx = from.to(torch::kCPU, torch::kInt64).contiguous();
    const int64_t* p = idx.data_ptr<int64_t>();
    for (int64_t i = 0; i < n; ++i) s.source[size_t(i)] = p[i];
  }
  if (const auto* folder = dynamic_cast<const data::ImageFolderDataset*>(&dataset))
    s.files = &folder->files();
  return s;
}

// Images translated (bilinearly, edges replicated) so that each one's centre of mass lies at
// the centre: a copy moved by a few pixels lands where the original does. The mass is the
// image less its darkest value, so brightness and contrast changes leave the centre in place.
torch::Tensor centre_of_mass_aligned(const torch::Tensor& work) {
  const int64_t n = work.size(0), h = work.size(2), w = work.size(3);
  auto ring =
      torch::cat(
          {work.select(2, 0), work.select(2, h - 1), work.select(3, 0), work.select(3, w - 1)}, 2)
          .reshape({n, -1});
  auto background = std::get<0>(ring.median(1)).reshape({n, 1, 1, 1});
  auto mass = (work - background).abs().sum(1);  // [N, h, w]
  auto total = mass.sum({1, 2}).clamp_min(1e-12);
  auto ys = torch::arange(h, work.options()).reshape({1, h, 1});
  auto xs = torch::arange(w, work.options()).reshape({1, 1, w});
  auto cy = (mass * ys).sum({1, 2}) / total, cx = (mass * xs).sum({1, 2}) / total;
  // Sampling at p + (centre of mass - image centre), in grid units (align_corners = false).
  auto theta = torch::zeros({n, 2, 3}, work.options());
  theta.select(1, 0).select(1, 0).fill_(1.0);
  theta.select(1, 1).select(1, 1).fill_(1.0);
  theta.select(1, 0).select(1, 2).copy_(2.0 * (cx - 0.5 * double(w - 1)) / double(w));
  theta.select(1, 1).select(1, 2).copy_(2.0 * (cy - 0.5 * double(h - 1)) / double(h));
  auto grid = F::affine_grid(theta, {n, work.size(1), h, w}, false);
  return F::grid_sample(work, grid,
                        F::GridSampleFuncOptions()
                            .mode(torch::kBilinear)
                            .padding_mode(torch::kBorder)
                            .align_corners(false));
}

// Images pooled to side x side, centred and scaled to unit length: a cosine here ignores
// brightness and contrast (and, on aligned images, small shifts).
torch::Tensor embed(const torch::Tensor& images, int64_t side) {
  auto e = F::adaptive_avg_pool2d(images, F::AdaptiveAvgPool2dFuncOptions({side, side}))
               .reshape({images.size(0), -1});
  e = e - e.mean(1, true);
  return e / e.norm(2, 1, true).clamp_min(1e-12);
}

// `images` moved by (dx, dy) pixels, the vacated border filled by replicating the edge.
torch::Tensor shifted(const torch::Tensor& images, int64_t dx, int64_t dy) {
  if (dx == 0 && dy == 0) return images;
  const int64_t h = images.size(2), w = images.size(3), px = std::abs(dx), py = std::abs(dy);
  auto padded = F::pad(images, F::PadFuncOptions({px, px, py, py}).mode(torch::kReplicate));
  return padded.slice(2, py - dy, py - dy + h).slice(3, px - dx, px - dx + w);
}

// Pearson correlation of each pair's overlap when b is a moved by (dx, dy): b(y, x) ~ a(y - dy,
// x - dx). a, b: [P, C, h, w].
torch::Tensor overlap_correlation(const torch::Tensor& a, const torch::Tensor& b, int64_t dx,
                                  int64_t dy) {
  const int64_t h = a.size(2), w = a.size(3);
  auto as = a.slice(2, std::max<int64_t>(0, -dy), h - std::max<int64_t>(0, dy))
                .slice(3, std::max<int64_t>(0, -dx), w - std::max<int64_t>(0, dx));
  auto bs = b.slice(2, std::max<int64_t>(0, dy), h + std::min<int64_t>(0, dy))
                .slice(3, std::max<int64_t>(0, dx), w + std::min<int64_t>(0, dx));
  auto fa = as.reshape({a.size(0), -1}), fb = bs.reshape({b.size(0), -1});
  fa = fa - fa.mean(1, true);
  fb = fb - fb.mean(1, true);
  auto denom = (fa.pow(2).sum(1) * fb.pow(2).sum(1)).sqrt().clamp_min(1e-12);
  return (fa * fb).sum(1) / denom;
}

struct PairKey {
  int a_split, b_split;
  int64_t a, b;
  bool operator<(const PairKey& o) const {
    return std::tie(a_split, b_split, a, b) < std::tie(o.a_split, o.b_split, o.a, o.b);
  }
};

class Checker {
 public:
  Checker(const data::DataSplits& splits, const DataCheckOptions& o) : splits_(splits), o_(o) {
    if (o.max_shift < 0 || o.work_size < 4 || o.candidates < 1 || o.folds < 2 || o.epochs < 1 ||
        o.min_steps < 0 || o.hidden < 1 || o.batch_size < 1 || !(o.lr > 0) || o.max_suspects < 0 ||
        !(o.near_correlation > 0 && o.near_correlation <= 1))
      throw ConfigError(
          "data checks: options out of range (work_size >= 4, max_shift >= 0, candidates >= 1, "
          "folds >= 2, epochs >= 1, hidden >= 1, batch_size >= 1, lr > 0, max_suspects >= 0, "
          "0 < near_correlation <= 1)");
  }

  DataReport run() {
    const auto start = std::chrono::steady_clock::now();
    report_.source = splits_.source;
    report_.num_classes = splits_.num_classes;
    report_.class_names = splits_.class_names;
    const bool classification = splits_.num_classes > 0;
    auto stage = std::chrono::steady_clock::now();
    const std::tuple<const char*, const std::shared_ptr<const data::Dataset>*, const torch::Tensor*>
        named[] = {{"train", &splits_.train, &splits_.train_origin},
                   {"val", &splits_.val, &splits_.val_origin},
                   {"test", &splits_.test, &splits_.test_origin}};
    report_.images = splits_.input_shape.size() == 3;
    for (const auto& [name, ds, origin] : named)
      if (*ds && (*ds)->size() > 0)
        data_.push_back(
            read_split(name, **ds, *origin, classification, report_.images ? o_.work_size : 0));
    note("read", stage);

    summarize();
    broken_inputs();
    exact_copies();
    note("exact copies", stage);
    if (report_.images) {
      for (auto& s : data_) {
        auto aligned = centre_of_mass_aligned(s.x);
        s.embedding = embed(aligned, kEmbedSide);
        // The fine embedding at the 9 moves of up to a pixel: alignment by the centre of mass is
        // off by a pixel or so when a move cuts off part of an object that touches the border.
        std::vector<torch::Tensor> moves;
        for (int64_t dy = -1; dy <= 1; ++dy)
          for (int64_t dx = -1; dx <= 1; ++dx)
            moves.push_back(embed(shifted(aligned, dx, dy), std::min(kFineSide, s.x.size(2))));
        s.fine_embedding = moves[4];
        s.fine_moved = torch::stack(moves, 1);  // [N, 9, E]
        s.plain_embedding = embed(s.x, kEmbedSide);
      }
      for (size_t b = 1; b < data_.size(); ++b)
        for (size_t a = 0; a < b; ++a) near_copies(int(a), int(b));
      note("near copies", stage);
    }
    order_duplicates();
    if (classification && o_.label_noise) {
      label_suspects();
      note("label suspects", stage);
    }
    report_.seconds = seconds_since(start);
    return std::move(report_);
  }

 private:
  void note(const char* what, std::chrono::steady_clock::time_point& stage) {
    if (o_.progress) std::fprintf(stderr, "data checks: %s (%.1f s)\n", what, seconds_since(stage));
    stage = std::chrono::steady_clock::now();
  }

  std::string class_name(int64_t c) const {
    if (c >= 0 && c < int64_t(report_.class_names.size())) return report_.class_names[size_t(c)];
    return std::to_string(c);
  }

  void summarize() {
    const int64_t classes = splits_.num_classes;
    for (const auto& s : data_) {
      SplitSummary sum{s.name, s.size(), {}};
      if (classes > 0 && s.size() > 0) {
        const int64_t lo = s.y.min().item<int64_t>(), hi = s.y.max().item<int64_t>();
        if (lo < 0 || hi >= classes)
          throw DataError("data checks: the " + s.name + " split has labels in [" +
                          std::to_string(lo) + ", " + std::to_string(hi) + "] but the data has " +
                          std::to_string(classes) + " classes (expected 0 to " +
                          std::to_string(classes - 1) + ")");
        auto counts = torch::bincount(s.y, {}, classes).slice(0, 0, classes).contiguous();
        sum.class_counts.assign(counts.data_ptr<int64_t>(), counts.data_ptr<int64_t>() + classes);
      }
      report_.splits.push_back(std::move(sum));
    }
    if (classes <= 0 || report_.splits.empty()) return;
    const auto& train = report_.splits.front().class_counts;
    std::vector<std::string> missing_train;
    for (int64_t c = 0; c < classes; ++c)
      if (train[size_t(c)] == 0) missing_train.push_back(class_name(c));
    const int64_t largest = *std::max_element(train.begin(), train.end());
    const int64_t smallest = *std::min_element(train.begin(), train.end());
    if (!missing_train.empty()) {
      std::string names;
      for (const auto& m : missing_train) names += (names.empty() ? "" : ", ") + m;
      report_.findings.push_back(
          {"data_missing_class",
           Severity::kWarning,
           0,
           0,
           std::to_string(missing_train.size()) + " of " + std::to_string(classes) +
               " classes have no training examples (" + names + ")",
           {{"missing_classes", double(missing_train.size())}, {"classes", double(classes)}},
           "add examples of those classes, or leave them out of the task"});
    } else if (double(largest) / double(smallest) > o_.max_imbalance) {
      const auto big = std::max_element(train.begin(), train.end()) - train.begin();
      const auto small = std::min_element(train.begin(), train.end()) - train.begin();
      report_.findings.push_back(
          {"data_class_imbalance",
           Severity::kWarning,
           0,
           0,
           "training classes are imbalanced: " + class_name(big) + " has " +
               std::to_string(largest) + " examples, " + class_name(small) + " " +
               std::to_string(smallest) + " (" + num(double(largest) / double(smallest)) +
               "x, above " + num(o_.max_imbalance) + "x)",
           {{"largest_class", double(largest)},
            {"smallest_class", double(smallest)},
            {"ratio", double(largest) / double(smallest)}},
           "weight the loss by inverse class frequency (" +
               setting_ref("train.class_weights", "balanced") +
               ") and judge the model by per-class recall, not only accuracy"});
    }
    // The class mix of the test split against training's.
    const SplitSummary* test = nullptr;
    for (const auto& s : report_.splits)
      if (s.split == "test") test = &s;
    if (test == nullptr || test->examples == 0 || report_.splits.front().examples == 0) return;
    double tv = 0.0;
    std::vector<std::string> absent;
    const double nt = double(report_.splits.front().examples), ns = double(test->examples);
    for (int64_t c = 0; c < classes; ++c) {
      tv += std::abs(double(train[size_t(c)]) / nt - double(test->class_counts[size_t(c)]) / ns);
      if (test->class_counts[size_t(c)] == 0 && train[size_t(c)] > 0)
        absent.push_back(class_name(c));
    }
    tv /= 2.0;
    if (tv > o_.max_label_shift)
      report_.findings.push_back(
          {"data_label_shift",
           Severity::kWarning,
           0,
           0,
           "the test split's class mix differs from training's: total variation distance " +
               num(tv) + " (above " + num(o_.max_label_shift) + ")" +
               (absent.empty()
                    ? ""
                    : "; " + std::to_string(absent.size()) + " classes have no test examples"),
           {{"total_variation", tv}, {"classes_absent_from_test", double(absent.size())}},
           "draw the splits from the same distribution (stratify by class), or report per-class "
           "metrics that do not depend on the mix"});
  }

  void broken_inputs() {
    int64_t non_finite = 0, constant = 0;
    for (const auto& s : data_) {
      if (s.size() == 0) continue;
      auto bad = torch::nonzero(~s.usable).reshape({-1}).contiguous();
      const int64_t* p = bad.data_ptr<int64_t>();
      auto finite_acc = s.finite.accessor<bool, 1>();
      for (int64_t k = 0; k < bad.size(0); ++k) {
        const int64_t i = p[k];
        const bool nf = !finite_acc[i];
        (nf ? non_finite : constant) += 1;
        ++report_.broken_count;
        if (int64_t(report_.broken.size()) < kMaxListedBroken)
          report_.broken.push_back({s.name, i, s.source[size_t(i)], s.file(i), "",
                                    nf ? "non-finite values" : "constant"});
      }
    }
    // Tabular data: features that do not vary over the training split carry nothing.
    int64_t constant_features = 0;
    if (!report_.images && !data_.empty() && data_[0].size() > 1 && data_[0].x.dim() == 2) {
      auto x = data_[0].x;
      auto same = (std::get<0>(x.max(0)) == std::get<0>(x.min(0))).contiguous();
      auto acc = same.accessor<bool, 1>();
      for (int64_t f = 0; f < same.size(0); ++f)
        if (acc[f]) {
          ++constant_features;
          ++report_.broken_count;
          std::string name = f < int64_t(splits_.feature_names.size())
                                 ? splits_.feature_names[size_t(f)]
                                 : "feature " + std::to_string(f);
          if (int64_t(report_.broken.size()) < kMaxListedBroken)
            report_.broken.push_back({"train", -1, -1, "", name, "constant feature"});
        }
    }
    if (non_finite > 0)
      report_.findings.push_back(
          {"data_non_finite",
           Severity::kError,
           0,
           0,
           std::to_string(non_finite) + " examples hold NaN or infinite values",
           {{"examples", double(non_finite)}},
           "fix or drop them before training: one NaN in a batch turns every weight into NaN"});
    if (constant > 0)
      report_.findings.push_back(
          {"data_constant_inputs",
           Severity::kWarning,
           0,
           0,
           std::to_string(constant) +
               " examples have every input value equal (blank images or empty rows)",
           {{"examples", double(constant)}},
           "look at them (the report lists them): a decoding or export fault usually leaves "
           "them blank; drop them or fix the source"});
    if (constant_features > 0)
      report_.findings.push_back(
          {"data_constant_features",
           Severity::kInfo,
           0,
           0,
           std::to_string(constant_features) +
               " features take one value over the whole training split",
           {{"features", double(constant_features)}},
           "drop them: they carry no information, and a feature that varies only in test is a "
           "leak or an error"});
  }

  void add_pair(int a_split, int64_t a, int b_split, int64_t b, const std::string& kind,
                double corr, int64_t dx, int64_t dy) {
    if (!seen_.insert({a_split, b_split, a, b}).second) return;
    (kind == "exact" ? report_.exact_pairs : report_.near_pairs) += 1;
    const auto& sa = data_[size_t(a_split)];
    const auto& sb = data_[size_t(b_split)];
    DuplicatePair p;
    p.split_a = sa.name;
    p.split_b = sb.name;
    p.a = a;
    p.b = b;
    p.a_source = sa.source[size_t(a)];
    p.b_source = sb.source[size_t(b)];
    p.kind = kind;
    p.correlation = corr;
    p.dx = dx;
    p.dy = dy;
    if (sa.y.defined()) p.label_a = sa.y[a].item<int64_t>();
    if (sb.y.defined()) p.label_b = sb.y[b].item<int64_t>();
    p.file_a = sa.file(a);
    p.file_b = sb.file(b);
    pairs_.push_back(p);
  }

  void exact_copies() {
    // Usable examples by the hash of their values; within a bucket, equal ones are grouped by
    // comparing values (images: at the working size, the full-size hash being equal too).
    std::unordered_map<uint64_t, std::vector<std::pair<int, int64_t>>> buckets;
    for (size_t s = 0; s < data_.size(); ++s) {
      const auto& d = data_[s];
      if (d.size() == 0) continue;
      auto usable = d.usable.accessor<bool, 1>();
      for (int64_t i = 0; i < d.size(); ++i)
        if (usable[i]) buckets[d.hashes[size_t(i)]].emplace_back(int(s), i);
    }
    for (auto& [hash, members] : buckets) {
      if (members.size() < 2) continue;
      // Groups of equal examples within the bucket (a hash collision splits it).
      std::vector<std::vector<std::pair<int, int64_t>>> groups;
      for (const auto& m : members) {
        auto row = data_[size_t(m.first)].x[m.second];
        bool placed = false;
        for (auto& g : groups)
          if (torch::equal(data_[size_t(g[0].first)].x[g[0].second], row)) {
            g.push_back(m);
            placed = true;
            break;
          }
        if (!placed) groups.push_back({m});
      }
      for (const auto& g : groups) {
        int64_t in_train = 0;
        for (const auto& m : g) in_train += m.first == 0;
        if (in_train > 1) report_.train_exact_copies += in_train - 1;
        for (size_t i = 0; i < g.size(); ++i)
          for (size_t j = 0; j < g.size(); ++j)
            if (g[i].first < g[j].first)
              add_pair(g[i].first, g[i].second, g[j].first, g[j].second, "exact", 1.0, 0, 0);
      }
    }
  }

  // Near copies between split a (the database) and split b (the queries).
  void near_copies(int a_split, int b_split) {
    const auto& A = data_[size_t(a_split)];
    const auto& B = data_[size_t(b_split)];
    if (A.size() == 0 || B.size() == 0) return;
    auto stage = std::chrono::steady_clock::now();
    const int64_t k = std::min(o_.candidates, A.size());
    // Candidates: the nearest by the fine aligned embedding among a shortlist by the coarse one
    // (thousands of trousers look alike at 8x8), and, for copies whose object lost a strip at the
    // border (which moves its centre of mass), the nearest by the plain embedding. A's unusable
    // examples can never be a nearest neighbour.
    auto mask = A.usable.unsqueeze(1).to(torch::kFloat32);
    auto aligned_t = (A.embedding * mask).t().contiguous();
    auto plain_t = (A.plain_embedding * mask).t().contiguous();
    const int64_t shortlist = std::min(std::max(kShortlist, k), A.size());
    const int64_t chunk = std::max<int64_t>(
        16, std::min((int64_t{1} << 24) / std::max<int64_t>(1, A.size()),
                     (int64_t{1} << 22) / (shortlist * (A.fine_embedding.size(1) + 9))));
    std::vector<int64_t> qa, qb;
    for (int64_t i = 0; i < B.size(); i += chunk) {
      const int64_t j = std::min(B.size(), i + chunk);
      auto near = std::get<1>(B.embedding.slice(0, i, j).matmul(aligned_t).topk(shortlist, 1));
      auto fine = std::get<0>(A.fine_embedding.index_select(0, near.reshape({-1}))
                                  .reshape({j - i, shortlist, -1})
                                  .bmm(B.fine_moved.slice(0, i, j).transpose(1, 2))
                                  .max(2));
      fine = fine.masked_fill(~A.usable.index_select(0, near.reshape({-1})).reshape(near.sizes()),
                              -2.0);
      auto best = near.gather(1, std::get<1>(fine.topk(k, 1)));
      auto top_at =
          torch::cat({best, std::get<1>(B.plain_embedding.slice(0, i, j).matmul(plain_t).topk(
                                std::max<int64_t>(1, k / 2), 1))},
                     1)
              .contiguous();
      auto usable = B.usable.slice(0, i, j).contiguous();
      auto acc = top_at.accessor<int64_t, 2>();
      auto u = usable.accessor<bool, 1>();
      for (int64_t r = 0; r < top_at.size(0); ++r) {
        if (!u[r]) continue;
        std::set<int64_t> row;
        for (int64_t c = 0; c < top_at.size(1); ++c)
          if (row.insert(acc[r][c]).second) {
            qa.push_back(acc[r][c]);
            qb.push_back(i + r);
          }
      }
    }
    note(("near copies " + B.name + " in " + A.name + ": candidates").c_str(), stage);
    // Verify each candidate at every shift up to max_shift.
    const int64_t pairs = int64_t(qa.size());
    const int64_t batch = 2048;
    for (int64_t i = 0; i < pairs; i += batch) {
      const int64_t j = std::min(pairs, i + batch);
      auto ia = torch::tensor(std::vector<int64_t>(qa.begin() + i, qa.begin() + j));
      auto ib = torch::tensor(std::vector<int64_t>(qb.begin() + i, qb.begin() + j));
      auto wa = A.x.index_select(0, ia), wb = B.x.index_select(0, ib);
      torch::Tensor best = torch::full({j - i}, -2.0f),
                    best_dx = torch::zeros({j - i}, torch::kInt64),
                    best_dy = torch::zeros({j - i}, torch::kInt64);
      for (int64_t dy = -o_.max_shift; dy <= o_.max_shift; ++dy)
        for (int64_t dx = -o_.max_shift; dx <= o_.max_shift; ++dx) {
          auto corr = overlap_correlation(wa, wb, dx, dy);
          auto better = corr > best;
          best = torch::where(better, corr, best);
          best_dx.masked_fill_(better, dx);
          best_dy.masked_fill_(better, dy);
        }
      auto hit = torch::nonzero(best >= o_.near_correlation).reshape({-1}).contiguous();
      auto h = hit.accessor<int64_t, 1>();
      for (int64_t t = 0; t < hit.size(0); ++t) {
        const int64_t p = h[t];
        const int64_t a = qa[size_t(i + p)], b = qb[size_t(i + p)];
        if (seen_.count({a_split, b_split, a, b})) continue;  // an exact copy already
        add_pair(a_split, a, b_split, b, "near", best[p].item<double>(), best_dx[p].item<int64_t>(),
                 best_dy[p].item<int64_t>());
      }
    }
    note(("near copies " + B.name + " in " + A.name + ": verified").c_str(), stage);
  }

  void order_duplicates() {
    std::stable_sort(pairs_.begin(), pairs_.end(),
                     [](const DuplicatePair& x, const DuplicatePair& y) {
                       if ((x.kind == "exact") != (y.kind == "exact")) return x.kind == "exact";
                       if (x.correlation != y.correlation) return x.correlation > y.correlation;
                       return std::tie(x.split_a, x.split_b, x.b, x.a) <
                              std::tie(y.split_a, y.split_b, y.b, y.a);
                     });
    // One finding per evaluated split: how many of its examples also appear in an earlier split.
    for (size_t b = 1; b < data_.size(); ++b) {
      std::set<int64_t> exact, near;
      for (const auto& p : pairs_)
        if (p.split_b == data_[b].name) (p.kind == "exact" ? exact : near).insert(p.b);
      for (int64_t e : exact) near.erase(e);
      if (exact.empty() && near.empty()) continue;
      const double n = double(data_[b].size());
      const std::string what = data_[b].name == "test" ? "test accuracy" : "validation loss";
      report_.findings.push_back(
          {"data_split_copies",
           Severity::kWarning,
           0,
           0,
           std::to_string(exact.size() + near.size()) + " " + data_[b].name + " examples (" +
               pct(double(exact.size() + near.size()), n) + ") also appear in an earlier split: " +
               std::to_string(exact.size()) + " as exact copies, " + std::to_string(near.size()) +
               " as near copies (shifted, brightened or re-encoded); " + what +
               " counts them as unseen",
           {{"exact", double(exact.size())},
            {"near", double(near.size())},
            {"share", (double(exact.size() + near.size())) / n}},
           "drop the listed " + data_[b].name +
               " examples (or their copies in the earlier split) before trusting the " +
               data_[b].name + " score; the report lists every pair"});
    }
    if (report_.train_exact_copies > 0)
      report_.findings.push_back(
          {"data_train_copies",
           Severity::kInfo,
           0,
           0,
           std::to_string(report_.train_exact_copies) +
               " training examples are exact copies of another training example",
           {{"copies", double(report_.train_exact_copies)}},
           "drop the copies unless they are meant as oversampling: they count several times in "
           "every epoch"});
    if (int64_t(pairs_.size()) > kMaxListedPairs) pairs_.resize(size_t(kMaxListedPairs));
    report_.duplicates = pairs_;
  }

  // Out-of-fold class probabilities for the training split, and the fold models' average for
  // the other splits.
  void label_suspects() {
    const int64_t classes = splits_.num_classes;
    auto& train = data_[0];
    const int64_t n = train.size();
    if (n < o_.folds * 2 || classes < 2) return;
    detail::RngGuard rng;
    auto features = [&](const SplitData& s) {
      auto f = s.x;
      return f.reshape({s.size(), -1}).nan_to_num(0.0, 0.0, 0.0).contiguous();
    };
    auto x = features(train);
    const int64_t dim = x.size(1);
    auto gen = at::detail::createCPUGenerator(o_.seed);
    auto fold = torch::randperm(n, gen, torch::kInt64).remainder(o_.folds);
    torch::Tensor oof = torch::zeros({n, classes});
    std::vector<torch::Tensor> others(data_.size());
    for (size_t s = 1; s < data_.size(); ++s) others[s] = torch::zeros({data_[s].size(), classes});
    for (int64_t k = 0; k < o_.folds; ++k) {
      auto fit_idx = torch::nonzero(fold != k).reshape({-1});
      auto hold_idx = torch::nonzero(fold == k).reshape({-1});
      torch::manual_seed(o_.seed * 1000003 + uint64_t(k));
      torch::nn::Sequential net(torch::nn::Linear(dim, o_.hidden), torch::nn::ReLU(),
                                torch::nn::Linear(o_.hidden, classes));
      torch::optim::Adam opt(net->parameters(), torch::optim::AdamOptions(o_.lr));
      auto fx = x.index_select(0, fit_idx), fy = train.y.index_select(0, fit_idx);
      const int64_t m = fx.size(0);
      net->train();
      // Small data gets more epochs: at least min_steps updates per fold.
      const int64_t per_epoch = (m + o_.batch_size - 1) / o_.batch_size;
      const int64_t epochs = std::max(o_.epochs, (o_.min_steps + per_epoch - 1) / per_epoch);
      for (int64_t e = 0; e < epochs; ++e) {
        auto order = torch::randperm(m, gen, torch::kInt64);
        for (int64_t i = 0; i < m; i += o_.batch_size) {
          auto idx = order.slice(0, i, std::min(m, i + o_.batch_size));
          auto loss =
              F::cross_entropy(net->forward(fx.index_select(0, idx)), fy.index_select(0, idx));
          opt.zero_grad();
          loss.backward();
          opt.step();
        }
      }
      net->eval();
      torch::NoGradGuard no_grad;
      auto predict = [&](const torch::Tensor& in) {
        std::vector<torch::Tensor> out;
        for (int64_t i = 0; i < in.size(0); i += 8192)
          out.push_back(
              torch::softmax(net->forward(in.slice(0, i, std::min(in.size(0), i + 8192))), 1));
        return out.empty() ? torch::zeros({0, classes}) : torch::cat(out);
      };
      oof.index_copy_(0, hold_idx, predict(x.index_select(0, hold_idx)));
      for (size_t s = 1; s < data_.size(); ++s)
        others[s] += predict(features(data_[s])) / double(o_.folds);
    }
    report_.label_noise_checked = true;
    report_.oof_accuracy = (oof.argmax(1) == train.y).to(torch::kFloat64).mean().item<double>();
    // Per-class thresholds: the mean probability a class's own examples give it.
    auto onehot = F::one_hot(train.y, classes).to(torch::kFloat32);
    auto counts = onehot.sum(0);
    auto thresholds = torch::where(counts > 0, (oof * onehot).sum(0) / counts.clamp_min(1),
                                   torch::ones({classes}));
    report_.thresholds.assign(thresholds.data_ptr<float>(), thresholds.data_ptr<float>() + classes);
    for (size_t s = 0; s < data_.size(); ++s) flag(data_[s], s == 0 ? oof : others[s], thresholds);
    double train_flagged = 0, train_n = double(n);
    for (const auto& [split, count] : report_.suspect_counts)
      if (split == "train") train_flagged = double(count);
    // A cheap model flags some of every data set (about half its own error rate on clean
    // Fashion-MNIST): a warning only when so many are flagged that the labels themselves look
    // noisy.
    const bool many = train_flagged / train_n > kNoisyLabelShare;
    std::string per_split;
    for (const auto& [split, count] : report_.suspect_counts)
      per_split += (per_split.empty() ? "" : ", ") + std::to_string(count) + " " + split;
    report_.findings.push_back(
        {"data_label_suspects",
         many ? Severity::kWarning : Severity::kInfo,
         0,
         0,
         "confident learning flags " + per_split + " labels (" + pct(train_flagged, train_n) +
             " of training) that a cheap model, never trained on them, confidently assigns to "
             "another class (its out-of-fold accuracy: " +
             pct(report_.oof_accuracy, 1.0) + ")",
         {{"train_suspects", train_flagged},
          {"train_share", train_flagged / train_n},
          {"oof_accuracy", report_.oof_accuracy}},
         "look at the most suspect examples (the report lists them, the dashboard shows them); "
         "relabel or drop the wrong ones, or soften the loss (" +
             setting_ref("train.label_smoothing", "0.1") + ")"});
  }

  void flag(const SplitData& s, const torch::Tensor& probs, const torch::Tensor& thresholds) {
    if (s.size() == 0) return;
    auto above = probs >= thresholds.unsqueeze(0);
    auto masked = torch::where(above, probs, torch::full_like(probs, -1.0));
    auto best = masked.max(1);
    auto suggested = std::get<1>(best);
    auto any = above.any(1);
    auto given_p = probs.gather(1, s.y.unsqueeze(1)).squeeze(1);
    auto sugg_p = probs.gather(1, suggested.unsqueeze(1)).squeeze(1);
    // Counted off the diagonal of the confident joint, and more probable than the given label.
    auto flagged = any & (suggested != s.y) & (sugg_p > given_p) & s.usable;
    auto idx = torch::nonzero(flagged).reshape({-1});
    report_.suspect_counts.emplace_back(s.name, idx.size(0));
    auto score = (sugg_p - given_p).index_select(0, idx);
    auto order = std::get<1>(score.sort(0, true));
    const int64_t listed = std::min<int64_t>(o_.max_suspects, idx.size(0));
    for (int64_t r = 0; r < listed; ++r) {
      const int64_t i = idx[order[r].item<int64_t>()].item<int64_t>();
      LabelSuspect l;
      l.split = s.name;
      l.index = i;
      l.source = s.source[size_t(i)];
      l.file = s.file(i);
      l.given = s.y[i].item<int64_t>();
      l.suggested = suggested[i].item<int64_t>();
      l.given_probability = given_p[i].item<double>();
      l.suggested_probability = sugg_p[i].item<double>();
      l.score = l.suggested_probability - l.given_probability;
      report_.label_suspects.push_back(l);
    }
  }

  const data::DataSplits& splits_;
  const DataCheckOptions& o_;
  DataReport report_;
  std::vector<SplitData> data_;
  std::vector<DuplicatePair> pairs_;
  std::set<PairKey> seen_;
};

}  // namespace

DataReport check_data(const data::DataSplits& splits, const DataCheckOptions& options) {
  if (!splits.train || splits.train->size() == 0)
    throw DataError("data checks: the training split is empty");
  return Checker(splits, options).run();
}

std::string to_json(const DataReport& r) {
  using nlohmann::json;
  auto label = [&](int64_t c) -> json {
    if (c < 0) return nullptr;
    if (c < int64_t(r.class_names.size())) return r.class_names[size_t(c)];
    return c;
  };
  json splits = json::array();
  for (const auto& s : r.splits) {
    json item = {{"split", s.split}, {"examples", s.examples}};
    if (!s.class_counts.empty()) {
      json counts = json::object();
      for (size_t c = 0; c < s.class_counts.size(); ++c) {
        const json name = label(int64_t(c));
        counts[name.is_string() ? name.get<std::string>() : std::to_string(c)] = s.class_counts[c];
      }
      item["class_counts"] = counts;
    }
    splits.push_back(item);
  }
  json duplicates = json::array();
  for (const auto& p : r.duplicates) {
    json item = {{"split_a", p.split_a},
                 {"split_b", p.split_b},
                 {"a", p.a},
                 {"b", p.b},
                 {"a_source", p.a_source},
                 {"b_source", p.b_source},
                 {"kind", p.kind},
                 {"correlation", p.correlation}};
    item[p.split_a] = p.a;  // {"train": 12, "test": 7, ...}
    item[p.split_b] = p.b;
    if (p.kind == "near") item["shift"] = {p.dx, p.dy};
    if (!p.file_a.empty()) item["file_a"] = p.file_a;
    if (!p.file_b.empty()) item["file_b"] = p.file_b;
    if (p.label_a >= 0) {
      item["label_a"] = label(p.label_a);
      item["label_b"] = label(p.label_b);
    }
    duplicates.push_back(item);
  }
  json suspects = json::array();
  for (const auto& l : r.label_suspects) {
    suspects.push_back({{"split", l.split},
                        {"index", l.index},
                        {"source", l.source},
                        {"given", label(l.given)},
                        {"suggested", label(l.suggested)},
                        {"given_index", l.given},
                        {"suggested_index", l.suggested},
                        {"given_probability", l.given_probability},
                        {"suggested_probability", l.suggested_probability},
                        {"score", l.score}});
    if (!l.file.empty()) suspects.back()["file"] = l.file;
  }
  json broken = json::array();
  for (const auto& b : r.broken) {
    json item = {{"split", b.split}, {"problem", b.problem}};
    if (b.index >= 0) {
      item["index"] = b.index;
      item["source"] = b.source;
      if (!b.file.empty()) item["file"] = b.file;
    } else {
      item["feature"] = b.feature;
    }
    broken.push_back(item);
  }
  json findings = json::array();
  for (const auto& f : r.findings)
    findings.push_back({{"kind", f.kind},
                        {"severity", to_string(f.severity)},
                        {"message", f.message},
                        {"evidence", f.evidence},
                        {"remedy", name_settings(f.remedy)}});
  json counts = json::object();
  for (const auto& [split, count] : r.suspect_counts) counts[split] = count;
  json out = {{"source", r.source},
              {"classes", r.num_classes},
              {"class_names", r.class_names},
              {"splits", splits},
              {"images", r.images},
              {"duplicates", duplicates},
              {"exact_pairs", r.exact_pairs},
              {"near_pairs", r.near_pairs},
              {"train_exact_copies", r.train_exact_copies},
              {"label_noise_checked", r.label_noise_checked},
              {"label_suspects", suspects},
              {"suspect_counts", counts},
              {"broken", broken},
              {"broken_count", r.broken_count},
              {"findings", findings},
              {"seconds", r.seconds}};
  if (r.label_noise_checked) {
    out["oof_accuracy"] = r.oof_accuracy;
    out["thresholds"] = r.thresholds;
  }
  return out.dump(1);
}

std::string to_text(const DataReport& r, const SettingNamer& namer) {
  std::string out;
  char buf[512];
  std::string sizes;
  for (const auto& s : r.splits)
    sizes += (sizes.empty() ? "" : ", ") + std::to_string(s.examples) + " " + s.split;
  std::snprintf(buf, sizeof buf, "data checks on %s (%s; %.1f s):\n", r.source.c_str(),
                sizes.c_str(), r.seconds);
  out += buf;
  std::snprintf(buf, sizeof buf, "  copies across splits: %lld exact, %lld near%s\n",
                (long long)r.exact_pairs, (long long)r.near_pairs,
                r.images ? "" : " (not looked for: near copies are found in images only)");
  out += buf;
  if (r.label_noise_checked) {
    std::string per_split;
    for (const auto& [split, count] : r.suspect_counts)
      per_split += (per_split.empty() ? "" : ", ") + std::to_string(count) + " " + split;
    std::snprintf(buf, sizeof buf,
                  "  label suspects: %s (cheap model's out-of-fold accuracy %.2f%%)\n",
                  per_split.c_str(), 100.0 * r.oof_accuracy);
    out += buf;
  } else if (r.num_classes == 0) {
    out += "  label suspects: not looked for (regression targets)\n";
  }
  std::snprintf(buf, sizeof buf, "  broken inputs: %lld\n", (long long)r.broken_count);
  out += buf;
  for (const auto& f : r.findings) out += f.to_text(namer) + "\n";
  if (r.findings.empty()) out += "no problems found in the data\n";
  return out;
}

}  // namespace trainscope::diagnose
