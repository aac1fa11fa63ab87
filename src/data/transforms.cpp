#include <trainscope/data/transforms.h>
#include <trainscope/error.h>

#include <algorithm>
#include <cmath>
#include <optional>
#include <sstream>

namespace trainscope::data {
namespace {

constexpr double kPi = 3.14159265358979323846;

void require_images(const Batch& batch, const std::string& who) {
  if (!batch.x.defined() || batch.x.dim() != 4 || !batch.x.is_floating_point())
    throw DataError(
        who + " needs image batches of floats [B, C, H, W]; got " +
        (batch.x.defined() ? c10::str(batch.x.sizes(), " ", batch.x.scalar_type()) : "none") +
        " (set data.augment = [] for data that are not images)");
}

// Parameters are drawn on the CPU from `gen` (a few numbers per image) and then moved: the
// same seed gives the same batch on every device.
torch::Tensor uniform(int64_t n, double lo, double hi, at::Generator& gen) {
  return torch::rand({n}, gen, torch::kFloat64).mul_(hi - lo).add_(lo);
}

torch::Tensor bernoulli_mask(int64_t n, double p, at::Generator& gen) {
  return torch::rand({n}, gen, torch::kFloat64).lt(p);
}

torch::Tensor on(const torch::Tensor& t, const torch::Tensor& like) {
  return t.to(like.device(), like.scalar_type(), /*non_blocking=*/true);
}

std::string fmt(double v) {
  std::ostringstream o;
  o << v;
  return o.str();
}

class RandomAffine : public Transform {
 public:
  RandomAffine(AffineOptions o, PixelStats s, std::string text)
      : o_(o), stats_(s), text_(std::move(text)) {}

  Batch apply(Batch batch, at::Generator& gen) const override {
    require_images(batch, "rotate/crop/translate/scale");
    const auto& x = batch.x;
    const int64_t b = x.size(0), h = x.size(2), w = x.size(3);
    const int64_t oh = o_.out_h > 0 ? o_.out_h : h, ow = o_.out_w > 0 ? o_.out_w : w;
    auto angle = uniform(b, -o_.degrees, o_.degrees, gen).mul_(kPi / 180.0);
    auto scale = uniform(b, o_.scale_min, o_.scale_max, gen);
    auto tx = torch::zeros({b}, torch::kFloat64), ty = torch::zeros({b}, torch::kFloat64);
    if (o_.max_shift_px > 0) {
      auto shift =
          torch::randint(-o_.max_shift_px, o_.max_shift_px + 1, {2, b}, gen, torch::kFloat64);
      tx += shift[0];
      ty += shift[1];
    }
    if (o_.translate_frac > 0) {
      tx += uniform(b, -o_.translate_frac * w, o_.translate_frac * w, gen).round_();
      ty += uniform(b, -o_.translate_frac * h, o_.translate_frac * h, gen).round_();
    }
    // The inverse map (output -> input), as torchvision's _get_inverse_affine_matrix.
    auto c = angle.cos().div_(scale), s = angle.sin().div_(scale);
    // A mirror between rotation and crop negates a column of the inverse map: R F (out - t).
    auto fx = torch::ones({b}, torch::kFloat64), fy = torch::ones({b}, torch::kFloat64);
    if (o_.hflip_p > 0) fx.masked_fill_(bernoulli_mask(b, o_.hflip_p, gen), -1.0);
    if (o_.vflip_p > 0) fy.masked_fill_(bernoulli_mask(b, o_.vflip_p, gen), -1.0);
    auto m = torch::stack(
        {torch::stack({c * fx, s * fy, -tx}, 1), torch::stack({-s * fx, c * fy, -ty}, 1)}, 1);
    // A translated crop reads from `-t`: input = A (out - t) = A out - A t.
    auto t = torch::stack({tx, ty}, 1).unsqueeze(2);
    auto lin = m.slice(2, 0, 2);
    m.select(2, 2).copy_(-lin.bmm(t).squeeze(2));
    batch.x = affine_sample(x, on(m, x), oh, ow, o_.mode, stats_.black(x.options()));
    return batch;
  }
  std::string describe() const override { return text_; }

 private:
  AffineOptions o_;
  PixelStats stats_;
  std::string text_;
};

class RandomFlip : public Transform {
 public:
  RandomFlip(bool horizontal, double p) : horizontal_(horizontal), p_(p) {}
  Batch apply(Batch batch, at::Generator& gen) const override {
    require_images(batch, horizontal_ ? "hflip" : "vflip");
    auto& x = batch.x;
    auto mask = on(bernoulli_mask(x.size(0), p_, gen), x).to(torch::kBool).view({-1, 1, 1, 1});
    x = torch::where(mask, x.flip(horizontal_ ? -1 : -2), x);
    return batch;
  }
  std::string describe() const override {
    std::string name = horizontal_ ? "hflip" : "vflip";
    if (p_ != 0.5) name.append("(").append(fmt(p_)).append(")");
    return name;
  }

 private:
  bool horizontal_;
  double p_;
};

class RandomResizedCrop : public Transform {
 public:
  RandomResizedCrop(int64_t size, double min_scale, PixelStats s)
      : size_(size), min_scale_(min_scale), stats_(s) {}
  Batch apply(Batch batch, at::Generator& gen) const override {
    require_images(batch, "resized_crop");
    const auto& x = batch.x;
    const int64_t b = x.size(0), h = x.size(2), w = x.size(3);
    auto area = uniform(b, min_scale_, 1.0, gen).mul_(double(h * w));
    auto ratio = uniform(b, std::log(3.0 / 4.0), std::log(4.0 / 3.0), gen).exp_();
    // One draw instead of torchvision's ten tries: clamping keeps the box inside the image.
    auto cw = (area * ratio).sqrt_().round_().clamp_(1, w);
    auto ch = (area / ratio).sqrt_().round_().clamp_(1, h);
    auto left = torch::rand({b}, gen, torch::kFloat64).mul_(w - cw + 1).floor_();
    auto top = torch::rand({b}, gen, torch::kFloat64).mul_(h - ch + 1).floor_();
    auto zero = torch::zeros({b}, torch::kFloat64);
    auto m = torch::stack({torch::stack({cw / double(size_), zero, left + cw / 2 - w / 2.0}, 1),
                           torch::stack({zero, ch / double(size_), top + ch / 2 - h / 2.0}, 1)},
                          1);
    batch.x = affine_sample(x, on(m, x), size_, size_, Interpolation::kBilinear,
                            stats_.black(x.options()));
    return batch;
  }
  std::string describe() const override {
    return "resized_crop(" + std::to_string(size_) + ", min_scale=" + fmt(min_scale_) + ")";
  }

 private:
  int64_t size_;
  double min_scale_;
  PixelStats stats_;
};

class RandomBrightness : public Transform {
 public:
  RandomBrightness(double b, PixelStats s) : b_(b), stats_(s) {}
  Batch apply(Batch batch, at::Generator& gen) const override {
    require_images(batch, "brightness");
    auto& x = batch.x;
    auto f = on(uniform(x.size(0), 1 - b_, 1 + b_, gen), x).view({-1, 1, 1, 1});
    x = stats_.normalize(stats_.raw(x).mul_(f).clamp_(0, 1));
    return batch;
  }
  std::string describe() const override { return "brightness(" + fmt(b_) + ")"; }

 private:
  double b_;
  PixelStats stats_;
};

class RandomContrast : public Transform {
 public:
  RandomContrast(double c, PixelStats s) : c_(c), stats_(s) {}
  Batch apply(Batch batch, at::Generator& gen) const override {
    require_images(batch, "contrast");
    auto& x = batch.x;
    auto f = on(uniform(x.size(0), 1 - c_, 1 + c_, gen), x).view({-1, 1, 1, 1});
    auto raw = stats_.raw(x);
    torch::Tensor gray = raw;
    if (raw.size(1) == 3) {  // torchvision's rgb_to_grayscale weights
      auto wts = torch::tensor({0.2989, 0.587, 0.114}, raw.options()).view({1, 3, 1, 1});
      gray = (raw * wts).sum(1, true);
    }
    auto mean = gray.mean({1, 2, 3}, true);
    raw = (raw * f + mean * (1 - f)).clamp_(0, 1);
    x = stats_.normalize(raw);
    return batch;
  }
  std::string describe() const override { return "contrast(" + fmt(c_) + ")"; }

 private:
  double c_;
  PixelStats stats_;
};

class RandomErasing : public Transform {
 public:
  explicit RandomErasing(double p) : p_(p) {}
  Batch apply(Batch batch, at::Generator& gen) const override {
    require_images(batch, "erase");
    auto& x = batch.x;
    const int64_t b = x.size(0), h = x.size(2), w = x.size(3);
    auto apply = bernoulli_mask(b, p_, gen);
    auto area = uniform(b, 0.02, 0.33, gen).mul_(double(h * w));
    auto ratio = uniform(b, std::log(0.3), std::log(3.3), gen).exp_();
    auto eh = (area * ratio).sqrt_().round_().clamp_(1, h);
    auto ew = (area / ratio).sqrt_().round_().clamp_(1, w);
    auto top = torch::rand({b}, gen, torch::kFloat64).mul_(h - eh + 1).floor_();
    auto left = torch::rand({b}, gen, torch::kFloat64).mul_(w - ew + 1).floor_();
    auto box = torch::stack({top, top + eh, left, left + ew}, 1).to(torch::kInt64);
    box.masked_fill_(apply.logical_not().unsqueeze(1), 0);  // an empty box: nothing erased
    box = box.to(x.device(), /*non_blocking=*/true);
    auto rows = torch::arange(h, x.options().dtype(torch::kInt64)).view({1, 1, h, 1});
    auto cols = torch::arange(w, x.options().dtype(torch::kInt64)).view({1, 1, 1, w});
    auto v = [&](int i) { return box.select(1, i).view({b, 1, 1, 1}); };
    auto mask = rows.ge(v(0))
                    .logical_and_(rows.lt(v(1)))
                    .logical_and(cols.ge(v(2)).logical_and_(cols.lt(v(3))));
    x = x.masked_fill(mask, 0.0);
    return batch;
  }
  std::string describe() const override { return "erase(p=" + fmt(p_) + ")"; }

 private:
  double p_;
};

class Normalize : public Transform {
 public:
  Normalize(double mean, double std) : mean_(mean), std_(std) {}
  Batch apply(Batch batch, at::Generator&) const override {
    batch.x = (batch.x - mean_) / std_;
    return batch;
  }
  std::string describe() const override {
    return "normalize(" + fmt(mean_) + ", " + fmt(std_) + ")";
  }

 private:
  double mean_, std_;
};

// Beta(alpha, alpha) from two gamma draws of the generator.
double sample_beta(double alpha, at::Generator& gen) {
  auto a = torch::full({2}, alpha, torch::kFloat64);
  auto g = at::_standard_gamma(a, gen);
  return (g[0] / (g[0] + g[1])).item<double>();
}

class Mix : public Transform {
 public:
  Mix(bool cut, double alpha, int64_t classes) : cut_(cut), alpha_(alpha), classes_(classes) {}
  Batch apply(Batch batch, at::Generator& gen) const override {
    require_images(batch, cut_ ? "cutmix" : "mixup");
    const bool soft =
        batch.y.dim() == 2 && batch.y.is_floating_point() && batch.y.size(1) == classes_;
    if (!soft && (batch.y.scalar_type() != torch::kInt64 || batch.y.dim() != 1))
      throw DataError(std::string(cut_ ? "cutmix" : "mixup") +
                      " needs class targets (int64 [B]) or class " + "probabilities [B, " +
                      std::to_string(classes_) + "]; got " +
                      c10::str(batch.y.sizes(), " ", batch.y.scalar_type()));
    auto& x = batch.x;
    const int64_t b = x.size(0), h = x.size(2), w = x.size(3);
    double lam = sample_beta(alpha_, gen);
    auto perm = torch::randperm(b, gen, torch::kInt64).to(x.device(), true);
    auto other = x.index_select(0, perm);
    if (!cut_) {
      x = x * lam + other * (1 - lam);
    } else {
      // A box of area (1 - lam) at a uniform centre, clipped; lam becomes the area kept.
      const double r = std::sqrt(1 - lam);
      const int64_t bh = int64_t(h * r), bw = int64_t(w * r);
      auto centre = torch::rand({2}, gen, torch::kFloat64);
      const int64_t cy = int64_t(centre[0].item<double>() * h),
                    cx = int64_t(centre[1].item<double>() * w);
      const int64_t y0 = std::clamp<int64_t>(cy - bh / 2, 0, h),
                    y1 = std::clamp<int64_t>(cy + bh / 2, 0, h);
      const int64_t x0 = std::clamp<int64_t>(cx - bw / 2, 0, w),
                    x1 = std::clamp<int64_t>(cx + bw / 2, 0, w);
      x = x.clone();
      using torch::indexing::Slice;
      x.index_put_({Slice(), Slice(), Slice(y0, y1), Slice(x0, x1)},
                   other.index({Slice(), Slice(), Slice(y0, y1), Slice(x0, x1)}));
      lam = 1.0 - double((y1 - y0) * (x1 - x0)) / double(h * w);
    }
    auto y = batch.y.to(x.device());
    if (!soft && y.numel() > 0 &&
        (y.min().item<int64_t>() < 0 || y.max().item<int64_t>() >= classes_))
      throw DataError(std::string(cut_ ? "cutmix" : "mixup") + ": a label is outside [0, " +
                      std::to_string(classes_) + ")");
    auto one = soft ? y.to(x.scalar_type()) : torch::one_hot(y, classes_).to(x.scalar_type());
    batch.y = one * lam + one.index_select(0, perm) * (1 - lam);
    return batch;
  }
  std::string describe() const override {
    return std::string(cut_ ? "cutmix(" : "mixup(") + fmt(alpha_) + ")";
  }

 private:
  bool cut_;
  double alpha_;
  int64_t classes_;
};

// ---- parsing of config items: name or name(arg, key=value, ...) ----

struct Item {
  std::string text, name;
  std::vector<double> args;
  std::vector<std::pair<std::string, double>> kwargs;
};

std::string trim(std::string s) {
  auto sp = [](unsigned char c) { return std::isspace(c) != 0; };
  while (!s.empty() && sp(s.front())) s.erase(s.begin());
  while (!s.empty() && sp(s.back())) s.pop_back();
  return s;
}

const char* kKnown =
    "hflip, vflip, rotate(deg), crop([size,] pad=N), translate(frac), scale(lo, hi), "
    "resized_crop(size, min_scale=s), brightness(b), contrast(c), erase(p=..), normalize(mean, "
    "std), "
    "mixup(alpha), cutmix(alpha)";

ConfigError item_error(size_t index, const std::string& text, const std::string& what) {
  return ConfigError("data.augment item " + std::to_string(index + 1) + " \"" + text +
                     "\": " + what);
}

Item parse_item(const std::string& raw, size_t index) {
  Item it;
  it.text = trim(raw);
  const auto open = it.text.find('(');
  it.name = trim(it.text.substr(0, open));
  if (it.name.empty())
    throw item_error(index, raw, "empty item; expected one of " + std::string(kKnown));
  if (open == std::string::npos) return it;
  if (it.text.back() != ')') throw item_error(index, raw, "missing ')' at the end");
  std::stringstream ss(it.text.substr(open + 1, it.text.size() - open - 2));
  std::string part;
  while (std::getline(ss, part, ',')) {
    part = trim(part);
    if (part.empty()) throw item_error(index, raw, "empty argument");
    std::string key;
    if (auto eq = part.find('='); eq != std::string::npos) {
      key = trim(part.substr(0, eq));
      part = trim(part.substr(eq + 1));
    }
    size_t used = 0;
    double v = 0;
    try {
      v = std::stod(part, &used);
    } catch (const std::logic_error&) {
      used = 0;
    }
    if (used != part.size() || used == 0 || !std::isfinite(v))
      throw item_error(index, raw, "argument '" + part + "' is not a number");
    if (key.empty()) {
      if (!it.kwargs.empty()) throw item_error(index, raw, "positional argument after key=value");
      it.args.push_back(v);
    } else {
      it.kwargs.emplace_back(key, v);
    }
  }
  return it;
}

// Reads argument `pos` or keyword `key`, with a default when neither is given.
struct Args {
  const Item& it;
  size_t index;
  std::vector<std::string> allowed;

  double get(size_t pos, const std::string& key, std::optional<double> fallback) {
    allowed.push_back(key);
    for (const auto& [k, v] : it.kwargs)
      if (k == key) return v;
    if (pos < it.args.size()) return it.args[pos];
    if (fallback) return *fallback;
    throw item_error(index, it.text, "missing argument '" + key + "'");
  }
  void done() const {
    if (it.args.size() > allowed.size())
      throw item_error(index, it.text,
                       "takes at most " + std::to_string(allowed.size()) + " arguments");
    for (const auto& [k, v] : it.kwargs)
      if (std::find(allowed.begin(), allowed.end(), k) == allowed.end())
        throw item_error(index, it.text, "unknown argument '" + k + "'");
  }
  void check(bool ok, const std::string& what) const {
    if (!ok) throw item_error(index, it.text, what);
  }
};

}  // namespace

torch::Tensor affine_sample(const torch::Tensor& x, const torch::Tensor& matrix, int64_t out_h,
                            int64_t out_w, Interpolation mode, double fill) {
  return affine_sample(x, matrix, out_h, out_w, mode,
                       fill != 0.0 ? torch::full({}, fill, x.options()) : torch::Tensor());
}

torch::Tensor affine_sample(const torch::Tensor& x, const torch::Tensor& matrix, int64_t out_h,
                            int64_t out_w, Interpolation mode, const torch::Tensor& fill) {
  TORCH_CHECK(x.dim() == 4 && matrix.dim() == 3 && matrix.size(1) == 2 && matrix.size(2) == 3,
              "affine_sample: expected x [B,C,H,W] and matrix [B,2,3]");
  const int64_t h = x.size(2), w = x.size(3);
  auto opt = x.options();
  // Pixel centres relative to the output's centre, as torchvision's _gen_affine_grid.
  auto xs = torch::linspace(-out_w * 0.5 + 0.5, out_w * 0.5 - 0.5, out_w, opt);
  auto ys = torch::linspace(-out_h * 0.5 + 0.5, out_h * 0.5 - 0.5, out_h, opt);
  auto base =
      torch::stack({xs.view({1, -1}).expand({out_h, out_w}),
                    ys.view({-1, 1}).expand({out_h, out_w}), torch::ones({out_h, out_w}, opt)},
                   2)
          .view({1, out_h * out_w, 3});
  auto theta = matrix.to(opt).transpose(1, 2) / torch::tensor({0.5 * w, 0.5 * h}, opt);
  auto grid = base.matmul(theta).view({-1, out_h, out_w, 2});
  const auto m = mode == Interpolation::kNearest ? 1 : 0;  // grid_sampler's interpolation codes
  // grid_sample pads with zeros; shifting by `fill` pads with fill instead.
  const bool shift = fill.defined();
  auto src = shift ? x - fill : x;
  auto out = torch::grid_sampler(src, grid, m, /*padding_mode=zeros*/ 0, /*align_corners=*/false);
  return shift ? out.add_(fill) : out;
}

torch::Tensor rotate(const torch::Tensor& x, const torch::Tensor& angles_deg, Interpolation mode,
                     double fill) {
  auto a = angles_deg.to(torch::kFloat64) * (kPi / 180.0);
  auto c = a.cos(), s = a.sin(), z = torch::zeros_like(a);
  // Counter-clockwise on screen (y points down): torchvision's rotate, whose inverse matrix is
  // that of its (clockwise) affine at -angle.
  auto m = torch::stack({torch::stack({c, -s, z}, 1), torch::stack({s, c, z}, 1)}, 1);
  return affine_sample(x, on(m, x), x.size(2), x.size(3), mode, fill);
}

std::shared_ptr<Transform> random_affine(AffineOptions o, PixelStats stats) {
  std::ostringstream text;
  const char* sep = "";
  if (o.hflip_p > 0)
    text << sep << "hflip" << (o.hflip_p != 0.5 ? "(" + fmt(o.hflip_p) + ")" : ""), sep = ", ";
  if (o.vflip_p > 0)
    text << sep << "vflip" << (o.vflip_p != 0.5 ? "(" + fmt(o.vflip_p) + ")" : ""), sep = ", ";
  if (o.degrees > 0) text << sep << "rotate(" << o.degrees << ")", sep = ", ";
  if (o.max_shift_px > 0 || o.out_h > 0)
    text << sep << "crop(" << (o.out_h > 0 ? std::to_string(o.out_h) + ", " : "")
         << "pad=" << o.max_shift_px << ")",
        sep = ", ";
  if (o.translate_frac > 0) text << sep << "translate(" << o.translate_frac << ")", sep = ", ";
  if (o.scale_min != 1 || o.scale_max != 1)
    text << sep << "scale(" << o.scale_min << ", " << o.scale_max << ")";
  return std::make_shared<RandomAffine>(o, stats, text.str());
}
std::shared_ptr<Transform> random_flip(bool horizontal, double p) {
  return std::make_shared<RandomFlip>(horizontal, p);
}
std::shared_ptr<Transform> random_resized_crop(int64_t size, double min_scale, PixelStats stats) {
  return std::make_shared<RandomResizedCrop>(size, min_scale, stats);
}
std::shared_ptr<Transform> random_brightness(double b, PixelStats stats) {
  return std::make_shared<RandomBrightness>(b, stats);
}
std::shared_ptr<Transform> random_contrast(double c, PixelStats stats) {
  return std::make_shared<RandomContrast>(c, stats);
}
std::shared_ptr<Transform> random_erasing(double p) { return std::make_shared<RandomErasing>(p); }
std::shared_ptr<Transform> normalize(double mean, double std) {
  return std::make_shared<Normalize>(mean, std);
}
std::shared_ptr<Transform> mixup(double alpha, int64_t classes) {
  return std::make_shared<Mix>(false, alpha, classes);
}
std::shared_ptr<Transform> cutmix(double alpha, int64_t classes) {
  return std::make_shared<Mix>(true, alpha, classes);
}

Batch Compose::apply(Batch batch, at::Generator& gen) const {
  for (const auto& t : transforms_) batch = t->apply(std::move(batch), gen);
  return batch;
}

std::string Compose::describe() const {
  std::string out = "[";
  for (size_t i = 0; i < transforms_.size(); ++i)
    out += (i ? ", \"" : "\"") + transforms_[i]->describe() + "\"";
  return out + "]";
}

std::shared_ptr<Transform> parse_augmentation(const std::vector<std::string>& items,
                                              const AugmentContext& ctx) {
  std::vector<std::shared_ptr<Transform>> out;
  std::optional<AffineOptions> affine;  // geometric items waiting to be fused
  auto flush = [&]() {
    if (affine) out.push_back(random_affine(*affine, ctx.stats));
    affine.reset();
  };
  auto geometric = [](const std::string& n) {
    return n == "rotate" || n == "crop" || n == "translate" || n == "scale";
  };
  for (size_t i = 0; i < items.size(); ++i) {
    Item it = parse_item(items[i], i);
    Args a{it, i, {}};
    const std::string& n = it.name;
    // A flip next to geometric items joins their resampling (a mirror is an affine map, exact on
    // the pixel grid); the angle and shift distributions are symmetric, so order does not matter.
    const bool flip = n == "hflip" || n == "vflip";
    const bool next_geometric =
        i + 1 < items.size() && geometric(parse_item(items[i + 1], i + 1).name);
    if (flip && (affine || next_geometric)) {
      AffineOptions o = affine.value_or(AffineOptions{});
      const double p = a.get(0, "p", 0.5);
      a.check(p >= 0 && p <= 1, "p must be a probability in [0, 1]");
      a.check((n == "hflip" ? o.hflip_p : o.vflip_p) == 0,
              "only one " + n + " per fused geometric group");
      (n == "hflip" ? o.hflip_p : o.vflip_p) = p;
      a.done();
      affine = o;
      continue;
    }
    if (geometric(n)) {
      AffineOptions o = affine.value_or(AffineOptions{});
      if (n == "rotate") {
        o.degrees = a.get(0, "degrees", std::nullopt);
        a.check(o.degrees > 0 && o.degrees <= 180, "degrees must be in (0, 180]");
      } else if (n == "crop") {
        const double size = a.get(0, "size", 0.0),
                     pad = a.get(1, "pad", 0.0);  // size 0: the input's
        a.check(size >= 0 && size == std::floor(size), "size must be a positive integer");
        a.check(pad >= 0 && pad == std::floor(pad), "pad must be a non-negative integer");
        a.check(o.out_h == 0, "only one crop per fused geometric group");
        o.out_h = o.out_w = int64_t(size);
        o.max_shift_px = int64_t(pad);
      } else if (n == "translate") {
        o.translate_frac = a.get(0, "fraction", std::nullopt);
        a.check(o.translate_frac > 0 && o.translate_frac < 1, "fraction must be in (0, 1)");
      } else {
        o.scale_min = a.get(0, "lo", std::nullopt);
        o.scale_max = a.get(1, "hi", o.scale_min);
        a.check(o.scale_min > 0 && o.scale_min <= o.scale_max,
                "expected 0 < lo <= hi, such as scale(0.9, 1.1)");
      }
      a.done();
      affine = o;
      continue;
    }
    flush();
    if (n == "hflip" || n == "vflip") {
      const double p = a.get(0, "p", 0.5);
      a.check(p >= 0 && p <= 1, "p must be a probability in [0, 1]");
      out.push_back(random_flip(n == "hflip", p));
    } else if (n == "resized_crop") {
      const double size = a.get(0, "size", std::nullopt), s = a.get(1, "min_scale", 0.08);
      a.check(size >= 1 && size == std::floor(size), "size must be a positive integer");
      a.check(s > 0 && s <= 1, "min_scale must be in (0, 1]");
      out.push_back(random_resized_crop(int64_t(size), s, ctx.stats));
    } else if (n == "brightness" || n == "contrast") {
      const double v = a.get(0, "amount", std::nullopt);
      a.check(v > 0 && v < 1, "amount must be in (0, 1), such as 0.2");
      out.push_back(n == "brightness" ? random_brightness(v, ctx.stats)
                                      : random_contrast(v, ctx.stats));
    } else if (n == "erase") {
      const double p = a.get(0, "p", 0.5);
      a.check(p >= 0 && p <= 1, "p must be a probability in [0, 1]");
      out.push_back(random_erasing(p));
    } else if (n == "normalize") {
      const double m = a.get(0, "mean", std::nullopt), s = a.get(1, "std", std::nullopt);
      a.check(s > 0, "std must be positive");
      out.push_back(normalize(m, s));
    } else if (n == "mixup" || n == "cutmix") {
      const double alpha = a.get(0, "alpha", 1.0);
      a.check(alpha > 0, "alpha must be positive, such as 0.2 (mixup) or 1.0 (cutmix)");
      a.check(ctx.classes > 1, "needs a classification task with known classes");
      out.push_back(n == "mixup" ? mixup(alpha, ctx.classes) : cutmix(alpha, ctx.classes));
    } else {
      throw item_error(i, items[i], "unknown transform '" + n + "'; expected one of " + kKnown);
    }
    a.done();
  }
  flush();
  if (out.empty()) return nullptr;
  return std::make_shared<Compose>(std::move(out));
}

at::Generator augment_generator(uint64_t seed, int64_t epoch, int64_t batch) {
  // splitmix64 of the triple: nearby (epoch, batch) pairs get unrelated streams.
  auto mix = [](uint64_t z) {
    z += 0x9e3779b97f4a7c15ULL;
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
  };
  return at::detail::createCPUGenerator(mix(mix(mix(seed) ^ uint64_t(epoch)) ^ uint64_t(batch)));
}

}  // namespace trainscope::data

namespace trainscope::data {

torch::Tensor augmentation_grid(const Dataset& dataset, const Transform* augment, PixelStats stats,
                                int64_t count, int64_t rows, uint64_t seed, int64_t scale) {
  count = std::min<int64_t>(count, dataset.size());
  if (count < 1) throw DataError("augmentation preview: the data set is empty");
  Batch original = dataset.get_batch(torch::arange(count, torch::kInt64));
  require_images(original, "augmentation preview");
  const int64_t c = original.x.size(1), h = original.x.size(2), w = original.x.size(3);
  std::vector<torch::Tensor> row_images{original.x};
  for (int64_t r = 0; augment && r < rows; ++r) {
    auto gen = augment_generator(seed, 1, r);
    auto x = augment->apply(original, gen).x;
    if (x.size(2) != h || x.size(3) != w)  // a crop to another size: shown at the original's size
      x = torch::upsample_nearest2d(x, {h, w});
    row_images.push_back(x);
  }
  const int64_t gap = 2, ch = h * scale, cw = w * scale, n_rows = int64_t(row_images.size());
  auto grid =
      torch::full({c, n_rows * (ch + gap) + gap, count * (cw + gap) + gap}, 255, torch::kUInt8);
  for (int64_t r = 0; r < n_rows; ++r) {
    auto raw = stats.raw(row_images[size_t(r)].detach().to(torch::kCPU, torch::kFloat32))
                   .clamp(0, 1)
                   .mul(255)
                   .round()
                   .to(torch::kUInt8);
    if (scale > 1) raw = raw.repeat_interleave(scale, 2).repeat_interleave(scale, 3);
    for (int64_t i = 0; i < count; ++i) {
      using torch::indexing::Slice;
      const int64_t top = gap + r * (ch + gap), left = gap + i * (cw + gap);
      grid.index_put_({Slice(), Slice(top, top + ch), Slice(left, left + cw)}, raw[i]);
    }
  }
  return grid;
}

}  // namespace trainscope::data
