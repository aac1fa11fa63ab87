#pragma once
// Choices for fine-tuning's head phase read off the backbone's cached features (one forward pass
// over the data, no backbone training): the head's learning rate, and how to normalize inputs for
// a source that does not say how it was trained.
#include <trainscope/data/dataset.h>
#include <trainscope/models/model.h>
#include <trainscope/models/transfer.h>
#include <trainscope/train/head_features.h>
#include <trainscope/train/metrics.h>
#include <trainscope/tune/lr_finder.h>

#include <string>
#include <vector>

namespace trainscope::tune {

// How well a linear map on features predicts: a Linear layer from zero weights, trained
// full-batch with Adam (lr 1e-2, `steps` steps) on `train`, scored on `held_out`.
struct ProbeScore {
  double loss = 0.0;
  double accuracy = 0.0;  // classification only
};
ProbeScore linear_probe(const HeadFeatures& train, const HeadFeatures& held_out, Task task,
                        int64_t outputs, int64_t steps = 100);

// The head's lr: the lr range test (lr_finder.h) on the cached training features, training a new
// head from zero weights alone, in batches of `batch_size`. Deterministic; the model is untouched.
LrSuggestion head_lr(const HeadFeatures& train, Task task, int64_t outputs, int64_t batch_size,
                     double fallback_lr);

// An input normalization: x' = (x - mean) / std, x being the raw inputs (images in [0, 1]),
// one value for all channels or one per channel.
struct Normalization {
  std::string name;  // "raw [0, 1]", "the new data's statistics", "the ImageNet statistics"
  data::PixelStats stats;
};

struct NormalizationChoice {
  std::vector<Normalization> candidates;
  // The source's first BatchNorm layer, when it has one: per candidate, how far the statistics
  // of its inputs there are from those it recorded in training (models::batch_norm_mismatch).
  std::string batch_norm;
  std::vector<double> mismatch;
  // Without BatchNorm: per candidate, a linear probe's score on the held-out examples.
  std::vector<ProbeScore> scores;
  size_t chosen = 0;  // the smallest mismatch, or the lowest held-out loss
  int64_t train_examples = 0, held_out_examples = 0;
  double seconds = 0.0;
  std::string reason;  // the numbers, in words
};

// Which normalization the source was trained with. A source with BatchNorm recorded the
// statistics of its training inputs in its first BatchNorm layer's running mean and variance:
// the candidate whose inputs come closest to them there, on up to 256 training examples, is
// chosen. Without BatchNorm, the features the candidates give serve a linear probe: the
// backbone's features (the head's inputs, eval mode) of up to `examples` training examples train
// it, scored on the validation examples (up to `examples`; without a validation set, the last
// fifth of the training examples), and the lowest loss wins. `loaded` is the normalization
// `train` and `val` already apply, undone before each candidate's is applied.
NormalizationChoice probe_normalization(const Model& model, const models::LinearLayer& head,
                                        const data::Dataset& train, const data::Dataset* val,
                                        const data::PixelStats& loaded,
                                        const std::vector<Normalization>& candidates, Task task,
                                        int64_t outputs, const torch::Device& device,
                                        int64_t examples = 1000);

}  // namespace trainscope::tune
