#pragma once
// Data checks: problems in the data itself, found before any training (`trainscope check`).
//   - the same example in two splits: exact copies (equal values) and near copies (images that,
//     at some small shift, correlate almost perfectly: brightness and contrast changes do not
//     hide them), so that test accuracy does not measure memory;
//   - label suspects: examples whose given label a cheap model, trained on the other folds,
//     confidently disagrees with (confident learning: Northcutt, Jiang and Chuang, JAIR 2021);
//   - class imbalance, classes missing from a split, a shift of the class mix between splits;
//   - broken inputs: non-finite values, constant examples, constant features.
//
//   ts::diagnose::DataReport report = ts::diagnose::check_data(splits);
//   for (const auto& f : report.findings) std::puts(f.to_text().c_str());
//   std::ofstream("report.json") << ts::diagnose::to_json(report);

#include <trainscope/data/dataset.h>
#include <trainscope/diagnose/finding.h>

#include <cstdint>
#include <string>
#include <vector>

namespace trainscope::diagnose {

struct DataCheckOptions {
  // Near copies. Images are compared at a working size of at most `work_size` pixels a side
  // (area-downsampled): two are near copies when, at a shift of up to `max_shift` working
  // pixels, the Pearson correlation of their overlapping pixels is at least `near_correlation`.
  // Each image of a split is verified against its `candidates` nearest neighbours in the other
  // split by a coarse embedding (each image moved so that its centre of mass is central, then
  // pooled to 8x8, centred and scaled to unit length), and against its `candidates / 2`
  // nearest by the same embedding without the move.
  int64_t work_size = 32;
  int64_t max_shift = 3;
  double near_correlation = 0.995;
  int64_t candidates = 16;
  // Label suspects (classification only): `folds`-fold out-of-fold predictions of an MLP with
  // one hidden layer of `hidden` units, trained `epochs` epochs per fold with Adam (more on small
  // data: at least `min_steps` updates); val and test are predicted by the average of the fold
  // models. An example is a suspect when another class clears its own threshold (the mean
  // probability its examples give it) and is more probable than the given label. At most
  // `max_suspects` per split are listed, most suspect first; `label_noise = false` skips this.
  bool label_noise = true;
  int64_t folds = 4;
  int64_t epochs = 6;
  int64_t min_steps = 300;
  int64_t hidden = 256;
  int64_t batch_size = 256;
  double lr = 1e-3;
  int64_t max_suspects = 100;
  // Class balance: largest / smallest training class above this is a finding (as pre-flight).
  double max_imbalance = 10.0;
  // Class mix shift: total variation distance between the training and test class
  // distributions above this is a finding.
  double max_label_shift = 0.1;
  uint64_t seed = 0;
  bool progress = false;  // print each stage's time to stderr
};

// An example that appears in two splits. Indices are positions in their split; `*_source` is
// the position among the examples of the file the split was read from (the validation split is
// drawn from the training file; DataSplits::*_origin), and `*_file` the image file of an image
// folder (empty otherwise).
struct DuplicatePair {
  std::string split_a = "train", split_b = "test";  // train-test, train-val or val-test
  int64_t a = 0, b = 0;
  int64_t a_source = 0, b_source = 0;
  std::string kind = "exact";          // "exact" or "near"
  double correlation = 1.0;            // near copies: the best correlation found
  int64_t dx = 0, dy = 0;              // near copies: b's shift against a, in working pixels
  int64_t label_a = -1, label_b = -1;  // classification labels (-1 for regression)
  std::string file_a, file_b;
};

// An example whose given label the out-of-fold predictions contradict.
struct LabelSuspect {
  std::string split = "train";
  int64_t index = 0, source = 0;
  std::string file;  // image folders
  int64_t given = 0, suggested = 0;
  double given_probability = 0.0, suggested_probability = 0.0;
  // suggested_probability - given_probability: larger is more suspect.
  double score = 0.0;
};

// An example (or, for tabular data, a feature) that cannot be learned from as it is.
struct BrokenInput {
  std::string split = "train";
  int64_t index = -1, source = -1;  // -1 for a feature
  std::string file;                 // image folders
  std::string feature;              // tabular: the constant feature's name
  std::string problem;              // "non-finite values", "constant", "constant feature"
};

struct SplitSummary {
  std::string split;
  int64_t examples = 0;
  std::vector<int64_t> class_counts;  // classification
};

struct DataReport {
  std::string source;
  int64_t num_classes = 0;
  std::vector<std::string> class_names;
  std::vector<SplitSummary> splits;  // train, val, test (those present)
  bool images = false;               // near copies are looked for in images only

  std::vector<DuplicatePair> duplicates;  // across splits, exact first, then by correlation
  int64_t train_exact_copies = 0;         // training examples equal to an earlier one
  int64_t exact_pairs = 0, near_pairs = 0;

  bool label_noise_checked = false;
  double oof_accuracy = 0.0;       // the cheap model's out-of-fold accuracy on the training split
  std::vector<double> thresholds;  // per class: mean out-of-fold probability of its own label
  std::vector<LabelSuspect> label_suspects;  // per split, most suspect first, at most max_suspects
  // Per split: every example confident learning flags (not only those listed).
  std::vector<std::pair<std::string, int64_t>> suspect_counts;

  std::vector<BrokenInput> broken;  // at most 1,000 listed
  int64_t broken_count = 0;

  std::vector<Finding> findings;  // one per problem found, with evidence and a remedy
  double seconds = 0.0;
};

// Runs every check on `splits` (examples are read through each split's get_batch, without
// augmentation). Deterministic in options.seed; leaves torch's global RNG as it found it.
// Reads each split into memory once (as float32 at the working size for images).
DataReport check_data(const data::DataSplits& splits, const DataCheckOptions& options = {});

// The report as JSON: {"source", "splits", "duplicates": [{"train", "test", "kind", ...}],
// "label_suspects": [{"split", "index", "given", "suggested", "score", ...}], "broken",
// "findings", ...}. A train-test pair carries "train" and "test" keys with the indices; every
// pair carries "a", "b", "split_a", "split_b" too. Class labels are named when the data names them.
std::string to_json(const DataReport& report);

// The lines `trainscope check` prints.
std::string to_text(const DataReport& report, const SettingNamer& namer = nullptr);

}  // namespace trainscope::diagnose
