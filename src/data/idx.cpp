#include <trainscope/data/idx.h>
#include <trainscope/error.h>

#include <zlib.h>

#include <algorithm>
#include <cstring>
#include <fstream>

#include "data/split.h"

namespace trainscope::data {
namespace {

std::string join(const std::vector<int64_t>& v) {
  std::string out;
  for (size_t i = 0; i < v.size(); ++i) out += (i ? ", " : "") + std::to_string(v[i]);
  return out;
}

const char* kDefaultDir = "/usr/share/datasets/fashion-mnist";

std::vector<uint8_t> read_file(const std::filesystem::path& file) {
  std::ifstream in(file, std::ios::binary);
  if (!in) throw DataError("cannot open " + file.string());
  std::vector<uint8_t> bytes((std::istreambuf_iterator<char>(in)),
                             std::istreambuf_iterator<char>());
  return bytes;
}

std::vector<uint8_t> gunzip(const std::vector<uint8_t>& in, const std::filesystem::path& file) {
  z_stream zs{};
  // 16 + MAX_WBITS: expect a gzip header.
  if (inflateInit2(&zs, 16 + MAX_WBITS) != Z_OK)
    throw DataError("zlib init failed reading " + file.string());
  std::vector<uint8_t> out;
  out.resize(std::max<size_t>(in.size() * 4, 1 << 16));
  zs.next_in = const_cast<Bytef*>(in.data());
  zs.avail_in = static_cast<uInt>(in.size());
  int rc = Z_OK;
  while (rc != Z_STREAM_END) {
    if (zs.total_out == out.size()) out.resize(out.size() * 2);
    zs.next_out = out.data() + zs.total_out;
    zs.avail_out = static_cast<uInt>(out.size() - zs.total_out);
    rc = inflate(&zs, Z_NO_FLUSH);
    if (rc == Z_BUF_ERROR && zs.avail_in == 0) {
      inflateEnd(&zs);
      throw DataError(file.string() + ": gzip stream is truncated after " +
                      std::to_string(zs.total_out) +
                      " bytes (the file is incomplete; reinstall or re-download it)");
    }
    if (rc != Z_OK && rc != Z_STREAM_END && rc != Z_BUF_ERROR) {
      std::string msg = zs.msg ? zs.msg : "error " + std::to_string(rc);
      inflateEnd(&zs);
      throw DataError(file.string() + ": corrupt gzip data (" + msg + ")");
    }
  }
  out.resize(zs.total_out);
  inflateEnd(&zs);
  return out;
}

uint32_t be32(const uint8_t* p) {
  return (uint32_t(p[0]) << 24) | (uint32_t(p[1]) << 16) | (uint32_t(p[2]) << 8) | uint32_t(p[3]);
}

struct IdxType {
  torch::ScalarType dtype;
  size_t bytes;
};

std::optional<IdxType> idx_type(uint8_t code) {
  switch (code) {
    case 0x08:
      return IdxType{torch::kUInt8, 1};
    case 0x09:
      return IdxType{torch::kInt8, 1};
    case 0x0B:
      return IdxType{torch::kInt16, 2};
    case 0x0C:
      return IdxType{torch::kInt32, 4};
    case 0x0D:
      return IdxType{torch::kFloat32, 4};
    case 0x0E:
      return IdxType{torch::kFloat64, 8};
    default:
      return std::nullopt;
  }
}

std::filesystem::path find_file(const std::filesystem::path& dir, const std::string& stem) {
  for (const char* ext : {".gz", ""}) {
    auto p = dir / (stem + ext);
    if (std::filesystem::exists(p)) return p;
  }
  std::string msg = "data file " + (dir / (stem + ".gz")).string() + " does not exist";
  if (std::filesystem::absolute(dir) == std::filesystem::path(kDefaultDir))
    msg +=
        "; it comes with the Debian package dataset-fashion-mnist (apt-get install "
        "dataset-fashion-mnist, "
        "or scripts/deps.sh)";
  else
    msg += "; an IDX directory holds {train,t10k}-{images-idx3,labels-idx1}-ubyte[.gz]";
  throw DataError(msg);
}

void check_labels(const torch::Tensor& labels, int64_t classes, const std::filesystem::path& file) {
  auto bad = (labels < 0).logical_or(labels >= classes).nonzero();
  if (bad.size(0) > 0) {
    int64_t i = bad[0][0].item<int64_t>();
    throw DataError(file.string() + ": label " + std::to_string(labels[i].item<int64_t>()) +
                    " at index " + std::to_string(i) + " is outside [0, " +
                    std::to_string(classes) + ") of the model's classes");
  }
}

}  // namespace

torch::Tensor read_idx(const std::filesystem::path& file) {
  if (!std::filesystem::exists(file))
    throw DataError("IDX file " + file.string() + " does not exist");
  std::vector<uint8_t> raw = read_file(file);
  if (raw.size() >= 2 && raw[0] == 0x1f && raw[1] == 0x8b) raw = gunzip(raw, file);

  if (raw.size() < 4 || raw[0] != 0 || raw[1] != 0)
    throw DataError(file.string() + ": not an IDX file (the first two bytes must be zero; found " +
                    std::to_string(raw.size() < 2 ? -1 : raw[0]) + " " +
                    std::to_string(raw.size() < 2 ? -1 : raw[1]) + ")");
  auto type = idx_type(raw[2]);
  if (!type) {
    char hex[8];
    std::snprintf(hex, sizeof hex, "0x%02X", raw[2]);
    throw DataError(
        file.string() + ": unknown IDX element type " + hex +
        " (expected 0x08 uint8, 0x09 int8, 0x0B int16, 0x0C int32, 0x0D float32 or 0x0E float64)");
  }
  const int ndim = raw[3];
  if (ndim < 1 || ndim > 8)
    throw DataError(file.string() + ": IDX header declares " + std::to_string(ndim) +
                    " dimensions; expected 1 to 8");
  const size_t header = 4 + 4 * static_cast<size_t>(ndim);
  if (raw.size() < header)
    throw DataError(file.string() + ": truncated IDX header (" + std::to_string(raw.size()) +
                    " bytes, need " + std::to_string(header) + ")");
  std::vector<int64_t> dims;
  uint64_t count = 1;
  for (int i = 0; i < ndim; ++i) {
    dims.push_back(be32(raw.data() + 4 + 4 * i));
    count *= static_cast<uint64_t>(dims.back());
    if (count > (uint64_t{1} << 40))
      throw DataError(file.string() + ": IDX dimensions are implausibly large");
  }
  const uint64_t expected = count * type->bytes;
  const uint64_t actual = raw.size() - header;
  if (actual != expected)
    throw DataError(file.string() + ": IDX header promises " + std::to_string(expected) +
                    " bytes of data, file has " + std::to_string(actual) +
                    (actual < expected ? " (truncated)" : " (trailing bytes)"));

  auto t = torch::empty(dims, torch::TensorOptions().dtype(type->dtype));
  auto* dst = static_cast<uint8_t*>(t.data_ptr());
  const uint8_t* src = raw.data() + header;
  if (type->bytes == 1) {
    std::memcpy(dst, src, expected);
  } else {
    // IDX stores multi-byte elements big-endian.
    for (uint64_t i = 0; i < count; ++i)
      for (size_t b = 0; b < type->bytes; ++b)
        dst[i * type->bytes + b] = src[i * type->bytes + (type->bytes - 1 - b)];
  }
  return t;
}

DataSplits load_idx_dir(const IdxOptions& options) {
  const auto& dir = options.dir;
  auto train_images_file = find_file(dir, "train-images-idx3-ubyte");
  auto train_labels_file = find_file(dir, "train-labels-idx1-ubyte");
  auto test_images_file = find_file(dir, "t10k-images-idx3-ubyte");
  auto test_labels_file = find_file(dir, "t10k-labels-idx1-ubyte");

  auto load_pair = [&](const std::filesystem::path& images_file,
                       const std::filesystem::path& labels_file, int64_t limit) {
    auto x = read_idx(images_file);
    auto y = read_idx(labels_file);
    if (x.dim() != 3)
      throw DataError(images_file.string() +
                      ": expected images as N x H x W (3 dimensions), found " +
                      std::to_string(x.dim()));
    if (y.dim() != 1)
      throw DataError(labels_file.string() + ": expected labels as N (1 dimension), found " +
                      std::to_string(y.dim()));
    if (x.size(0) != y.size(0))
      throw DataError(images_file.string() + " has " + std::to_string(x.size(0)) + " images but " +
                      labels_file.string() + " has " + std::to_string(y.size(0)) + " labels");
    y = y.to(torch::kInt64);
    auto origin = torch::arange(x.size(0), torch::kInt64);
    if (!options.classes.empty()) {
      // Relabel through a table: label -> its position in `classes`, -1 for the others.
      const int64_t top =
          std::max(y.max().item<int64_t>(),
                   *std::max_element(options.classes.begin(), options.classes.end()));
      auto table = torch::full({top + 1}, -1, torch::kInt64);
      for (size_t i = 0; i < options.classes.size(); ++i) {
        const int64_t c = options.classes[i];
        if (c < 0 || table[c].item<int64_t>() >= 0)
          throw ConfigError("data.classes = [" + join(options.classes) + "]: class " +
                            std::to_string(c) + " is negative or repeated");
        table[c] = static_cast<int64_t>(i);
      }
      auto mapped = table.index_select(0, y);
      auto keep = mapped.ge(0).nonzero().squeeze(1);
      if (keep.numel() == 0)
        throw DataError(labels_file.string() + " has no example of the classes [" +
                        join(options.classes) + "] (data.classes)");
      x = x.index_select(0, keep);
      y = mapped.index_select(0, keep);
      origin = keep;
    }
    if (limit > 0 && limit < x.size(0)) {
      x = x.slice(0, 0, limit);
      y = y.slice(0, 0, limit);
      origin = origin.slice(0, 0, limit);
    }
    return std::make_tuple(x, y, origin);
  };
  auto [x, y, origin] = load_pair(train_images_file, train_labels_file, options.limit);
  auto [xt, yt, origin_t] = load_pair(test_images_file, test_labels_file, options.test_limit);
  if (x.size(1) != xt.size(1) || x.size(2) != xt.size(2))
    throw DataError(test_images_file.string() + ": test images are " + std::to_string(xt.size(1)) +
                    "x" + std::to_string(xt.size(2)) + " but training images are " +
                    std::to_string(x.size(1)) + "x" + std::to_string(x.size(2)));
  const int64_t classes = !options.classes.empty()  ? static_cast<int64_t>(options.classes.size())
                          : options.num_classes > 0 ? options.num_classes
                                                    : y.max().item<int64_t>() + 1;
  check_labels(y, classes, train_labels_file);
  check_labels(yt, classes, test_labels_file);

  auto [train_idx, val_idx] = split_indices(x.size(0), options.val_fraction, options.split_seed);
  auto to_float = [](const torch::Tensor& images) {
    auto f = images.to(torch::kFloat32).unsqueeze(1);
    return images.scalar_type() == torch::kUInt8 ? f.div_(255.0) : f;
  };
  auto x_train = to_float(x.index_select(0, train_idx));
  DataSplits out;
  // Statistics of the training split only: the validation and test splits must not leak into them.
  if (options.mean.empty() || options.std.empty()) out.pixels = pixel_stats(x_train);
  if (!options.mean.empty()) out.pixels.mean = options.mean;
  if (!options.std.empty()) out.pixels.std = options.std;
  out.pixels.check(1, "data.mean, data.std");
  const double mean = out.pixels.mean[0], std = out.pixels.std[0];
  auto normalize = [&](torch::Tensor t) { return t.sub_(mean).div_(std).contiguous(); };
  out.train = std::make_shared<TensorDataset>(normalize(x_train), y.index_select(0, train_idx));
  out.val = std::make_shared<TensorDataset>(normalize(to_float(x.index_select(0, val_idx))),
                                            y.index_select(0, val_idx));
  out.test = std::make_shared<TensorDataset>(normalize(to_float(xt)), yt);
  out.train_origin = origin.index_select(0, train_idx);
  out.val_origin = origin.index_select(0, val_idx);
  out.test_origin = origin_t;
  out.source = "idx:" + options.dir.string();
  out.num_classes = classes;
  out.input_shape = {1, x.size(1), x.size(2)};
  return out;
}

DataSplits fashion_mnist(IdxOptions options) {
  options.num_classes = 10;
  for (int64_t c : options.classes)
    if (c < 0 || c > 9)
      throw ConfigError("data.classes = [" + join(options.classes) +
                        "]: Fashion-MNIST's classes are "
                        "0 to 9, not " +
                        std::to_string(c));
  DataSplits out = load_idx_dir(options);
  out.source = "fashion-mnist";
  const std::vector<std::string> names = {"T-shirt/top", "Trouser",   "Pullover", "Dress",
                                          "Coat",        "Sandal",    "Shirt",    "Sneaker",
                                          "Bag",         "Ankle boot"};
  if (options.classes.empty()) {
    out.class_names = names;
  } else {
    for (int64_t c : options.classes) out.class_names.push_back(names[c]);
  }
  return out;
}

}  // namespace trainscope::data
