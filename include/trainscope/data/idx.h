#pragma once
// IDX files (MNIST, Fashion-MNIST): raw or gzip'd, as shipped by dataset-fashion-mnist.

#include <trainscope/data/dataset.h>

#include <filesystem>
#include <optional>
#include <vector>

namespace trainscope::data {

// Reads an IDX file, gzip'd or raw (told apart by the gzip magic), into a CPU tensor with the
// file's dimensions and element type (uint8, int8, int16, int32, float32, float64).
// Throws DataError naming the file and what is wrong: missing, not IDX (bad magic), unknown
// type code, too many dimensions, truncated or with trailing bytes.
torch::Tensor read_idx(const std::filesystem::path& file);

struct IdxOptions {
  std::filesystem::path dir = "/usr/share/datasets/fashion-mnist";
  double val_fraction = 0.1;  // held out of the training files
  uint64_t split_seed = 0;
  int64_t limit = 0;        // use the first N training examples (0: all)
  int64_t test_limit = 0;   // use the first N test examples (0: all)
  int64_t num_classes = 0;  // labels must lie in [0, num_classes); 0: max training label + 1
  // Keep only the examples of these labels (training and test), relabeled 0, 1, ... in this order
  // (class names follow); applied before `limit`. Empty: every class.
  std::vector<int64_t> classes;
  // Inputs become (x/255 - mean)/std. When mean/std are empty they are computed from the
  // training split (after the holdout), as torchvision users do by hand. One value each.
  std::vector<double> mean, std;
};

// An IDX directory laid out like MNIST: {train,t10k}-{images-idx3,labels-idx1}-ubyte[.gz].
// Images become float32 [N, 1, H, W], labels int64 [N]. Throws DataError naming a missing file
// (and, for the default directory, the Debian package that provides it), mismatched image and
// label counts, or a label outside [0, classes).
DataSplits load_idx_dir(const IdxOptions& options = {});

// Fashion-MNIST from dataset-fashion-mnist, with its class names.
DataSplits fashion_mnist(IdxOptions options = {});

}  // namespace trainscope::data
