#pragma once
// CSV files of numeric columns: features and one (classification) or more (regression,
// multilabel) targets.

#include <trainscope/data/dataset.h>

#include <filesystem>
#include <string>
#include <vector>

namespace trainscope::data {

// A parsed CSV: x float32 [N, features]; y int64 [N] (classification) or float32 [N, targets]
// (regression; multilabel: 0 or 1, one column per label).
struct CsvTable {
  torch::Tensor x, y;
  std::vector<std::string> feature_names, target_names;
  std::vector<std::string> class_names;  // classification with text labels: sorted label texts
};

// Reads a CSV with a header line. Every column that is not a target is a numeric feature.
// Classification: one target column of class indices (integers >= 0) or of text labels (classes
// are the sorted distinct texts). Regression: one or more numeric target columns. Multilabel
// (`multilabel`, with classification false): one column per label, each cell 0 or 1.
// Throws DataError naming the file, line and column for a non-numeric, empty, NaN or infinite
// cell, a line with the wrong number of cells, a negative or fractional class index; and naming
// the file for a missing target column (listing the columns) or a file without data lines.
CsvTable read_csv(const std::filesystem::path& file, const std::vector<std::string>& targets,
                  bool classification, char delimiter = ',', bool multilabel = false);

struct CsvOptions {
  std::filesystem::path file;
  std::vector<std::string> targets;  // column names; exactly one for classification
  bool classification = true;
  bool multilabel = false;  // several 0/1 target columns, one per label (classification false)
  std::filesystem::path test_file;  // optional; without it test_fraction of the file is held out
  double val_fraction = 0.1;
  double test_fraction = 0.1;
  uint64_t split_seed = 0;
  int64_t limit = 0;  // use N training rows (0: all)
  char delimiter = ',';
};

// Train / val / test splits of a CSV, each feature standardized with the training split's mean
// and standard deviation (DataSplits::feature_mean / feature_std). Throws like read_csv, and
// DataError when the test file's columns differ from the training file's.
DataSplits load_csv(const CsvOptions& options);

}  // namespace trainscope::data
