#pragma once
// Image folders (one sub-folder of JPEG or PNG files per class), image decoding and PNG output.

#include <trainscope/data/dataset.h>

#include <atomic>
#include <cstdint>
#include <filesystem>
#include <optional>
#include <string>
#include <vector>

namespace trainscope::data {

// What to do with an image that cannot be decoded: stop with a DataError naming the file, or
// leave it out (counted and reported).
enum class BadImagePolicy { kFail, kSkip };

// Decodes a JPEG (libjpeg-turbo) or PNG (libspng) held in memory, told apart by the magic
// bytes, into uint8 [channels, H, W]; channels 1 converts colour to luminance, 3 repeats gray,
// 0 keeps the file's (1 for gray images, else 3; alpha is dropped). Throws DataError naming
// `name` for anything else, a corrupt or truncated file, or an image over 16384 pixels a side.
// Thread-safe.
torch::Tensor decode_image(const uint8_t* data, size_t size, const std::string& name,
                           int channels = 0);
torch::Tensor read_image(const std::filesystem::path& file, int channels = 0);

// Encodes uint8 [C, H, W] (C = 1 or 3) as PNG. Throws DataError when the file cannot be written.
void write_png(const std::filesystem::path& file, const torch::Tensor& image);
std::vector<uint8_t> encode_png(const torch::Tensor& image);

// A folder's images decoded on demand (get_batch decodes: the loader's worker threads do the
// work), as float32 [B, C, H, W] normalized with (x/255 - mean) / std (`pixels`, per channel).
// Thread-safe.
class ImageFolderDataset : public Dataset {
 public:
  ImageFolderDataset(std::vector<std::filesystem::path> files, torch::Tensor labels,
                     std::vector<int64_t> shape, const PixelStats& pixels, BadImagePolicy policy);
  int64_t size() const override { return static_cast<int64_t>(files_.size()); }
  // Throws DataError naming the file when an image cannot be decoded or has another size than
  // the data set's; with kSkip such images are left out of the batch and counted instead.
  Batch get_batch(const torch::Tensor& indices) const override;
  // Images left out by get_batch so far (kSkip).
  int64_t skipped() const { return skipped_.load(); }
  const std::vector<std::filesystem::path>& files() const { return files_; }
  const torch::Tensor& labels() const { return labels_; }

 private:
  std::vector<std::filesystem::path> files_;
  torch::Tensor labels_;
  std::vector<int64_t> shape_;   // C, H, W
  torch::Tensor scale_, shift_;  // float32 [1, C, 1, 1]: x / 255 / std and mean / std
  BadImagePolicy policy_;
  mutable std::atomic<int64_t> skipped_{0};
};

struct ImageFolderOptions {
  // DIR/<class>/*.{jpg,jpeg,png}; or DIR/train/<class>/... with DIR/test/<class>/... (then the
  // test split comes from DIR/test, else 10% of the images are held out as test).
  std::filesystem::path dir;
  double val_fraction = 0.1;
  double test_fraction = 0.1;  // held out when there is no DIR/test
  uint64_t split_seed = 0;
  int64_t limit = 0;  // use N training images (0: all)
  BadImagePolicy on_bad_image = BadImagePolicy::kFail;
  // One value or one per channel; computed per channel from up to stats_images training images
  // when empty.
  std::vector<double> mean, std;
  int64_t stats_images = 2000;
};

// Scans the folder: class names are the sorted sub-folder names. Every file's header is read
// (a corrupt one fails or, with kSkip, is left out and counted in DataSplits::skipped); all
// images must share one size. Throws DataError naming the folder or file: missing folder, no
// class folders, an empty class folder, mixed sizes.
DataSplits load_image_folder(const ImageFolderOptions& options);

}  // namespace trainscope::data
