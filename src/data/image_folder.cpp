#include <spng.h>
#include <trainscope/data/image_folder.h>
#include <trainscope/error.h>
#include <turbojpeg.h>

#include <algorithm>
#include <cstring>
#include <fstream>

#include "data/split.h"

namespace trainscope::data {
namespace {

constexpr uint32_t kMaxSide = 16384;

std::vector<uint8_t> read_bytes(const std::filesystem::path& file) {
  std::ifstream in(file, std::ios::binary);
  if (!in) throw DataError("cannot open image " + file.string());
  return std::vector<uint8_t>((std::istreambuf_iterator<char>(in)),
                              std::istreambuf_iterator<char>());
}

bool is_jpeg(const uint8_t* p, size_t n) {
  return n >= 3 && p[0] == 0xFF && p[1] == 0xD8 && p[2] == 0xFF;
}
bool is_png(const uint8_t* p, size_t n) {
  static const uint8_t sig[8] = {0x89, 'P', 'N', 'G', '\r', '\n', 0x1A, '\n'};
  return n >= 8 && std::memcmp(p, sig, 8) == 0;
}

// A TurboJPEG handle per thread: handles are not thread-safe and cost an allocation to create.
struct TjHandle {
  tjhandle h = tjInitDecompress();
  ~TjHandle() {
    if (h) tjDestroy(h);
  }
};

struct SpngCtx {
  spng_ctx* ctx;
  explicit SpngCtx(int flags) : ctx(spng_ctx_new(flags)) {}
  ~SpngCtx() {
    if (ctx) spng_ctx_free(ctx);
  }
};

// Header only: {channels as stored (1 or 3), height, width}.
std::array<int64_t, 3> image_header(const uint8_t* p, size_t n, const std::string& name) {
  if (is_jpeg(p, n)) {
    thread_local TjHandle tj;
    int w = 0, h = 0, subsamp = 0, colorspace = 0;
    if (tjDecompressHeader3(tj.h, p, static_cast<unsigned long>(n), &w, &h, &subsamp,
                            &colorspace) != 0)
      throw DataError(name + ": corrupt JPEG header (" + tjGetErrorStr2(tj.h) + ")");
    if (w <= 0 || h <= 0 || uint32_t(w) > kMaxSide || uint32_t(h) > kMaxSide)
      throw DataError(name + ": JPEG of " + std::to_string(w) + "x" + std::to_string(h) +
                      " pixels; expected 1 to 16384 pixels a side");
    return {colorspace == TJCS_GRAY ? 1 : 3, h, w};
  }
  if (is_png(p, n)) {
    SpngCtx s(0);
    spng_set_image_limits(s.ctx, kMaxSide, kMaxSide);
    spng_set_png_buffer(s.ctx, p, n);
    spng_ihdr ihdr{};
    if (int rc = spng_get_ihdr(s.ctx, &ihdr); rc != 0)
      throw DataError(name + ": corrupt PNG header (" + spng_strerror(rc) + ")");
    const bool gray = ihdr.color_type == SPNG_COLOR_TYPE_GRAYSCALE ||
                      ihdr.color_type == SPNG_COLOR_TYPE_GRAYSCALE_ALPHA;
    return {gray ? 1 : 3, int64_t(ihdr.height), int64_t(ihdr.width)};
  }
  throw DataError(
      name + ": not a JPEG or PNG file (unknown signature); expected .jpg, .jpeg or .png images");
}

// uint8 HWC with `c` channels (1 or 3) -> [wanted, H, W].
torch::Tensor to_chw(torch::Tensor hwc, int wanted) {
  auto chw = hwc.permute({2, 0, 1});
  const int64_t c = chw.size(0);
  if (wanted == 0 || wanted == c) return chw.contiguous();
  if (wanted == 3) return chw.expand({3, chw.size(1), chw.size(2)}).contiguous();
  // Colour to luminance (ITU-R 601, as PIL's convert("L")).
  auto f = chw.to(torch::kFloat32);
  auto y = f[0] * 0.299f + f[1] * 0.587f + f[2] * 0.114f;
  return y.round_().clamp_(0, 255).to(torch::kUInt8).unsqueeze(0);
}

}  // namespace

torch::Tensor decode_image(const uint8_t* p, size_t n, const std::string& name, int channels) {
  TORCH_CHECK(channels == 0 || channels == 1 || channels == 3,
              "decode_image: channels must be 0, 1 or 3");
  auto [stored, h, w] = image_header(p, n, name);
  if (is_jpeg(p, n)) {
    thread_local TjHandle tj;
    const int pf = stored == 1 ? TJPF_GRAY : TJPF_RGB;
    auto out = torch::empty({h, w, stored}, torch::kUInt8);
    // STOPONWARNING: a truncated JPEG is an error, not a silently gray-filled image.
    if (tjDecompress2(tj.h, p, static_cast<unsigned long>(n), out.data_ptr<uint8_t>(), int(w), 0,
                      int(h), pf, TJFLAG_STOPONWARNING) != 0)
      throw DataError(name + ": cannot decode JPEG (" + tjGetErrorStr2(tj.h) +
                      "); the file is corrupt or truncated");
    return to_chw(out, channels);
  }
  SpngCtx s(0);
  spng_set_image_limits(s.ctx, kMaxSide, kMaxSide);
  spng_set_chunk_limits(s.ctx, 1 << 24, 1 << 26);
  spng_set_png_buffer(s.ctx, p, n);
  size_t bytes = 0;
  if (int rc = spng_decoded_image_size(s.ctx, SPNG_FMT_RGB8, &bytes); rc != 0)
    throw DataError(name + ": cannot decode PNG (" + spng_strerror(rc) + ")");
  if (bytes != size_t(h * w * 3)) throw DataError(name + ": PNG size disagrees with its header");
  auto out = torch::empty({h, w, 3}, torch::kUInt8);
  if (int rc = spng_decode_image(s.ctx, out.data_ptr<uint8_t>(), bytes, SPNG_FMT_RGB8, 0); rc != 0)
    throw DataError(name + ": cannot decode PNG (" + spng_strerror(rc) +
                    "); the file is corrupt or truncated");
  // Gray PNGs decode with R = G = B: channel 0 is exact.
  if (stored == 1 && channels != 3) return out.select(2, 0).unsqueeze(0).contiguous();
  return to_chw(out, channels);
}

torch::Tensor read_image(const std::filesystem::path& file, int channels) {
  auto bytes = read_bytes(file);
  return decode_image(bytes.data(), bytes.size(), file.string(), channels);
}

std::vector<uint8_t> encode_png(const torch::Tensor& image) {
  TORCH_CHECK(image.dim() == 3 && (image.size(0) == 1 || image.size(0) == 3) &&
                  image.scalar_type() == torch::kUInt8,
              "encode_png: expected uint8 [1 or 3, H, W]");
  auto hwc = image.permute({1, 2, 0}).contiguous();
  SpngCtx s(SPNG_CTX_ENCODER);
  spng_set_option(s.ctx, SPNG_ENCODE_TO_BUFFER, 1);
  spng_ihdr ihdr{};
  ihdr.width = uint32_t(image.size(2));
  ihdr.height = uint32_t(image.size(1));
  ihdr.bit_depth = 8;
  ihdr.color_type = image.size(0) == 1 ? SPNG_COLOR_TYPE_GRAYSCALE : SPNG_COLOR_TYPE_TRUECOLOR;
  spng_set_ihdr(s.ctx, &ihdr);
  int rc = spng_encode_image(s.ctx, hwc.data_ptr<uint8_t>(), size_t(hwc.numel()), SPNG_FMT_PNG,
                             SPNG_ENCODE_FINALIZE);
  if (rc != 0) throw DataError(std::string("PNG encoding failed: ") + spng_strerror(rc));
  size_t len = 0;
  void* buf = spng_get_png_buffer(s.ctx, &len, &rc);
  if (!buf || rc != 0) throw DataError(std::string("PNG encoding failed: ") + spng_strerror(rc));
  std::vector<uint8_t> out(static_cast<uint8_t*>(buf), static_cast<uint8_t*>(buf) + len);
  free(buf);
  return out;
}

void write_png(const std::filesystem::path& file, const torch::Tensor& image) {
  auto bytes = encode_png(image);
  std::ofstream out(file, std::ios::binary);
  out.write(reinterpret_cast<const char*>(bytes.data()), std::streamsize(bytes.size()));
  if (!out) throw DataError("cannot write " + file.string());
}

ImageFolderDataset::ImageFolderDataset(std::vector<std::filesystem::path> files,
                                       torch::Tensor labels, std::vector<int64_t> shape,
                                       const PixelStats& pixels, BadImagePolicy policy)
    : files_(std::move(files)),
      labels_(std::move(labels)),
      shape_(std::move(shape)),
      policy_(policy) {
  pixels.check(shape_.at(0), "image folder normalization");
  // (x/255 - mean)/std = x * scale + shift, per channel.
  auto value = [&](const std::vector<double>& v) {
    return torch::tensor(v, torch::kFloat64).expand({shape_[0]}).view({1, -1, 1, 1});
  };
  scale_ = (1.0 / 255.0 / value(pixels.std)).to(torch::kFloat32);
  shift_ = (-value(pixels.mean) / value(pixels.std)).to(torch::kFloat32);
}

Batch ImageFolderDataset::get_batch(const torch::Tensor& indices) const {
  auto idx = indices.to(torch::kInt64).contiguous();
  const int64_t n = idx.size(0);
  const int64_t c = shape_[0], h = shape_[1], w = shape_[2];
  auto x = torch::empty({n, c, h, w}, torch::kUInt8);
  std::vector<int64_t> kept;
  kept.reserve(n);
  const int64_t* ip = idx.data_ptr<int64_t>();
  for (int64_t i = 0; i < n; ++i) {
    const auto& file = files_.at(size_t(ip[i]));
    try {
      auto img = read_image(file, int(c));
      if (img.size(1) != h || img.size(2) != w)
        throw DataError(file.string() + ": image is " + std::to_string(img.size(2)) + "x" +
                        std::to_string(img.size(1)) + " but the data set's images are " +
                        std::to_string(w) + "x" + std::to_string(h) +
                        "; resize the images to one size");
      x[int64_t(kept.size())].copy_(img);
      kept.push_back(i);
    } catch (const DataError&) {
      if (policy_ == BadImagePolicy::kFail) throw;
      skipped_.fetch_add(1);
    }
  }
  auto keep = torch::tensor(kept, torch::kInt64);
  x = x.slice(0, 0, int64_t(kept.size()));
  // (x/255 - mean)/std as one scale and one shift: for large images these passes over the batch
  // cost as much as decoding.
  auto xf = x.to(torch::kFloat32).mul_(scale_).add_(shift_);
  return {xf, labels_.index_select(0, idx.index_select(0, keep))};
}

DataSplits load_image_folder(const ImageFolderOptions& o) {
  namespace fs = std::filesystem;
  if (!fs::is_directory(o.dir))
    throw DataError("image folder " + o.dir.string() + " does not exist or is not a directory");
  const bool has_test = fs::is_directory(o.dir / "train") && fs::is_directory(o.dir / "test");
  const fs::path train_dir = has_test ? o.dir / "train" : o.dir;

  auto class_dirs = [](const fs::path& dir) {
    std::vector<std::string> names;
    for (const auto& e : fs::directory_iterator(dir))
      if (e.is_directory()) names.push_back(e.path().filename().string());
    std::sort(names.begin(), names.end());
    return names;
  };
  std::vector<std::string> classes = class_dirs(train_dir);
  if (classes.empty())
    throw DataError(train_dir.string() +
                    " has no class sub-folders; an image folder holds DIR/<class>/*.jpg|png");

  int64_t skipped = 0;
  std::vector<int64_t> shape;  // C, H, W of the first good image
  fs::path first_file;
  auto scan = [&](const fs::path& root, std::vector<fs::path>& files,
                  std::vector<int64_t>& labels) {
    for (size_t k = 0; k < classes.size(); ++k) {
      const fs::path dir = root / classes[k];
      if (!fs::is_directory(dir))
        throw DataError(dir.string() + " is missing; the test folder needs the same classes as " +
                        train_dir.string());
      std::vector<fs::path> found;
      for (const auto& e : fs::directory_iterator(dir)) {
        if (!e.is_regular_file()) continue;
        std::string ext = e.path().extension().string();
        std::transform(ext.begin(), ext.end(), ext.begin(),
                       [](unsigned char ch) { return std::tolower(ch); });
        if (ext == ".jpg" || ext == ".jpeg" || ext == ".png") found.push_back(e.path());
      }
      if (found.empty())
        throw DataError("class folder " + dir.string() +
                        " holds no .jpg, .jpeg or .png images; remove it or add images");
      std::sort(found.begin(), found.end());
      for (const auto& f : found) {
        try {
          auto bytes = read_bytes(f);
          auto [c, h, w] = image_header(bytes.data(), bytes.size(), f.string());
          if (shape.empty()) {
            shape = {c, h, w};
            first_file = f;
          } else if (h != shape[1] || w != shape[2]) {
            throw DataError(
                f.string() + " is " + std::to_string(w) + "x" + std::to_string(h) + " but " +
                first_file.string() + " is " + std::to_string(shape[2]) + "x" +
                std::to_string(shape[1]) +
                "; the images of a folder data set must share one size (resize them first)");
          } else if (c == 3) {
            shape[0] = 3;  // any colour image makes the data set colour
          }
          files.push_back(f);
          labels.push_back(int64_t(k));
        } catch (const DataError& e) {
          // Mixed sizes are a data set error, not an unreadable image: never skipped.
          if (o.on_bad_image == BadImagePolicy::kFail ||
              std::string(e.what()).find("must share one size") != std::string::npos)
            throw;
          ++skipped;
        }
      }
    }
  };
  std::vector<fs::path> files, test_files;
  std::vector<int64_t> labels, test_labels;
  scan(train_dir, files, labels);
  if (has_test) scan(o.dir / "test", test_files, test_labels);
  if (files.empty()) throw DataError(train_dir.string() + ": no readable images");

  auto all = torch::tensor(labels, torch::kInt64);
  auto pick = [](const std::vector<fs::path>& v, const torch::Tensor& idx) {
    std::vector<fs::path> out;
    auto a = idx.accessor<int64_t, 1>();
    for (int64_t i = 0; i < a.size(0); ++i) out.push_back(v[size_t(a[i])]);
    return out;
  };
  torch::Tensor pool = torch::arange(int64_t(files.size()), torch::kInt64), test_idx;
  if (!has_test) {
    auto [rest, held] = split_indices(int64_t(files.size()), o.test_fraction, o.split_seed + 7919);
    pool = rest;
    test_idx = held;
  }
  auto [tr, va] = split_indices(pool.size(0), o.val_fraction, o.split_seed);
  auto train_idx = pool.index_select(0, tr), val_idx = pool.index_select(0, va);
  if (o.limit > 0 && o.limit < train_idx.size(0)) train_idx = train_idx.slice(0, 0, o.limit);

  DataSplits out;
  out.source = "folder:" + o.dir.string();
  out.class_names = classes;
  out.num_classes = int64_t(classes.size());
  out.input_shape = shape;
  out.skipped = skipped;
  const auto policy = o.on_bad_image;
  if (!o.mean.empty()) out.pixels.mean = o.mean;
  if (!o.std.empty()) out.pixels.std = o.std;
  if (o.mean.empty() || o.std.empty()) {
    // Statistics of (a sample of) the training split only: validation and test must not leak in.
    const int64_t n = std::min<int64_t>(o.stats_images, train_idx.size(0));
    const int64_t step =
        std::max<int64_t>(1, (train_idx.size(0) + n - 1) / std::max<int64_t>(1, n));
    auto sample = train_idx.slice(0, 0, train_idx.size(0), step);
    ImageFolderDataset raw(pick(files, sample), all.index_select(0, sample), shape, PixelStats{},
                           policy);
    const PixelStats computed = pixel_stats(raw.get_batch(torch::arange(raw.size())).x);
    if (o.mean.empty()) out.pixels.mean = computed.mean;
    if (o.std.empty()) out.pixels.std = computed.std;
  }
  out.pixels.check(shape.at(0), "data.mean, data.std");
  auto make = [&](const std::vector<fs::path>& f, const torch::Tensor& y,
                  const torch::Tensor& idx) {
    return std::make_shared<ImageFolderDataset>(pick(f, idx), y.index_select(0, idx), shape,
                                                out.pixels, policy);
  };
  out.train = make(files, all, train_idx);
  out.val = make(files, all, val_idx);
  if (has_test) {
    auto ty = torch::tensor(test_labels, torch::kInt64);
    out.test = make(test_files, ty, torch::arange(int64_t(test_files.size()), torch::kInt64));
  } else {
    out.test = make(files, all, test_idx);
  }
  return out;
}

}  // namespace trainscope::data
