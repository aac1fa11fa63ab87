#pragma once
// Data sets chosen by a short spec string, as in config (data.dataset) and on the command line:
//   fashion-mnist                     the built-in default (Debian package dataset-fashion-mnist)
//   idx:DIR                           an IDX directory laid out like MNIST
//   folder:DIR                        one sub-folder of JPEG/PNG images per class
//   csv:FILE,target=COL[,target=COL2][,test=FILE2]   numeric columns; the named targets

#include <trainscope/data/dataset.h>
#include <trainscope/data/image_folder.h>

#include <filesystem>
#include <map>
#include <optional>
#include <string>
#include <vector>

namespace trainscope::data {

struct DataSpec {
  std::string kind;                                        // fashion-mnist | idx | folder | csv
  std::filesystem::path path;                              // DIR or FILE (empty for fashion-mnist)
  std::map<std::string, std::vector<std::string>> params;  // csv: target (repeatable), test
};

// Throws ConfigError naming the spec and what was expected.
DataSpec parse_data_spec(const std::string& spec);

struct DataOptions {
  std::string spec = "fashion-mnist";
  std::filesystem::path fashion_mnist_dir = "/usr/share/datasets/fashion-mnist";
  bool classification = true;  // csv: one class target, or numeric regression targets
  bool multilabel = false;     // csv: several 0/1 targets, one per label
  double val_fraction = 0.1;
  uint64_t split_seed = 0;
  int64_t limit = 0;             // training examples (0: all)
  int64_t test_limit = 0;        // test examples (0: all; IDX only)
  std::vector<int64_t> classes;  // keep only these labels, relabeled 0, 1, ... (IDX only)
  BadImagePolicy on_bad_image = BadImagePolicy::kFail;
  // Image normalization (x/255 - mean) / std, one value for all channels or one per channel;
  // computed from the training split (per channel) when empty. CSV features are always
  // standardized with their own training-split statistics.
  std::vector<double> mean, std;
};

// Loads the three splits of the spec, normalized with training-split statistics.
// Throws ConfigError for a bad spec and DataError for bad data (see each reader).
DataSplits load_data(const DataOptions& options);

}  // namespace trainscope::data
