#pragma once
// Metric: a number accumulated over the batches of a pass. update() runs on the training device
// without host syncs; compute() reads the result back. The state is a few tensors of sums over
// examples: the job's state is the sum of the data-parallel ranks' (merge), and a checkpoint
// taken mid-epoch holds it, so a resumed epoch reports what the uninterrupted one would.
#include <trainscope/train/metrics.h>

#include <memory>
#include <string>
#include <vector>

namespace trainscope {

class Metric {
 public:
  virtual ~Metric() = default;
  // The tag it is reported under: "top5_accuracy" becomes train_top5_accuracy, val_...
  virtual std::string name() const = 0;
  // Outputs and targets of a batch, as the loss sees them (train/state.h: Task).
  virtual void update(const torch::Tensor& output, const torch::Tensor& target) = 0;
  // NaN before any update.
  virtual double compute() const = 0;
  virtual void reset() = 0;
  virtual std::vector<torch::Tensor> state() const = 0;
  virtual void load_state(const std::vector<torch::Tensor>& state) = 0;
  // The same metric with nothing accumulated: each pass (training epoch, validation, test)
  // accumulates into its own.
  virtual std::unique_ptr<Metric> fresh() const = 0;
  // Adds `other`'s state (another rank's, another shard's) to this one.
  void merge(const Metric& other);
};

// The built-in metrics by name:
//   classification: top{K}_accuracy (top5_accuracy), precision_macro, recall_macro, f1_macro,
//                   f1_micro (macro: the mean over classes of each class's score; a class
//                   never predicted scores 0 precision; micro: from the pooled counts, which for
//                   single-label classification equals accuracy), auroc (one-vs-rest on the
//                   softmax probabilities, the macro mean over classes; from 200-bin
//                   histograms, as Keras's AUC), miou (the mean over classes present in the
//                   targets or the predictions of TP / (TP + FP + FN): the Jaccard index)
//   multilabel:     precision_, recall_, f1_ macro and micro (each label a yes/no at logit 0;
//                   micro from the counts pooled over labels), auroc (per label on its sigmoid,
//                   the macro mean over labels with positives and negatives)
//   segmentation, sequence: top{K}_accuracy, precision_macro, recall_macro, f1_macro, miou, each
//                   over positions (pixels, steps; padding, -100, left out)
//   regression:     r2 (1 - residual sum of squares / total sum of squares, over every value)
// Throws ConfigError naming the metric and what was expected for an unknown name, and for a
// metric that does not fit the task (naming both).
std::unique_ptr<Metric> make_metric(const std::string& name, Task task);

// The names make_metric takes, for help texts and errors.
std::string metric_names();

}  // namespace trainscope
