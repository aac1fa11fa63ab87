#pragma once
// Metrics: loss plus accuracy (classification) or MAE and RMSE (regression), accumulated on the
// training device and read back once per pass; per-class precision, recall and F1 from the
// confusion matrix.

#include <trainscope/train/state.h>

#include <functional>
#include <limits>
#include <memory>
#include <string>
#include <vector>

namespace trainscope {

class Metric;  // train/metric.h

// The task's default loss (make_loss(task, {}) of train/loss.h): cross-entropy on class indices
// (per position for segmentation and sequence), BCE-with-logits for multilabel, or MSE on values.
torch::Tensor task_loss(Task task, const torch::Tensor& output, const torch::Tensor& target);

// Segmentation and sequence outputs and targets as one row of class scores per position:
// [positions, classes] and [positions], without the positions whose target is -100 (padding).
// Other tasks' are returned as they are.
std::pair<torch::Tensor, torch::Tensor> positions(Task task, const torch::Tensor& output,
                                                  const torch::Tensor& target);

// Accumulates over the batches of one pass. update() launches a few small ops and never syncs;
// compute() reads everything back in one go. Not thread-safe.
class MetricAccumulator {
 public:
  // `with_confusion` also keeps what the test report needs: a [C, C] confusion matrix
  // (classification; segmentation and sequence always keep theirs, of positions, for the mIoU);
  // `metrics` are accumulated beside the task's own, each in a fresh copy.
  explicit MetricAccumulator(Task task, bool with_confusion = false,
                             const std::vector<std::shared_ptr<const Metric>>& metrics = {});
  ~MetricAccumulator();

  void reset();
  // `loss` is the batch's mean loss (0-dim); output and target as the task has them
  // (train/state.h).
  void update(const torch::Tensor& loss, const torch::Tensor& output, const torch::Tensor& target);

  // The task's own metrics and each metric by its name; empty when nothing was accumulated:
  //   classification: loss, accuracy
  //   regression:     loss, mae, rmse
  //   multilabel:     loss, accuracy (of every yes/no, at logit 0: Keras's binary_accuracy),
  //                   exact_match (examples with every label right: sklearn's accuracy_score)
  //   segmentation, sequence: loss, accuracy (of positions), miou (the mean over classes present
  //                   in the targets or the predictions of TP / (TP + FP + FN))
  MetricMap compute() const;
  // Rows are true classes, columns predicted classes (int64, CPU): of examples, or of positions
  // for segmentation and sequence. Undefined without confusion and for multilabel.
  torch::Tensor confusion() const;
  // Multilabel: per label [labels, 3] true positives, false positives, false negatives (int64,
  // CPU). Undefined for the other tasks.
  torch::Tensor label_counts() const;
  int64_t count() const { return count_; }

  // Makes this accumulator the sum of several's (the ranks of a data-parallel job): `sum` sums
  // the tensors it is given across them, in place, each rank passing the same ones in the same
  // order (the same task, metrics and classes).
  void sum_across(const std::function<void(std::vector<torch::Tensor>&)>& sum);

  // The running sums, for checkpoints taken mid-epoch; load() continues exactly.
  void save(torch::serialize::OutputArchive& archive) const;
  void load(torch::serialize::InputArchive& archive);

 private:
  Task task_;
  bool with_confusion_;
  int64_t count_ = 0;   // examples
  int64_t values_ = 0;  // predicted values (examples x outputs)
  int64_t num_classes_ = 0;
  // hits: right answers (of examples, positions or yes/no values); total: what hits is out of
  // (positions and yes/no values; examples need none); exact: multilabel examples all right.
  torch::Tensor loss_sum_, hits_, total_, exact_, abs_sum_, sq_sum_, confusion_, label_counts_;
  std::vector<std::unique_ptr<Metric>> extra_;
};

// Precision, recall and F1 of one class (or label); a class never predicted has precision 0.
struct ClassMetrics {
  std::string name;
  double precision = 0.0;
  double recall = 0.0;
  double f1 = 0.0;
  int64_t support = 0;  // true examples of the class (positions, for segmentation and sequence)
  // Segmentation and sequence: TP / (TP + FP + FN) of its positions; NaN elsewhere, and for a
  // class neither in the targets nor in the predictions.
  double iou = std::numeric_limits<double>::quiet_NaN();
};

// From a [C, C] confusion matrix (rows true, columns predicted). `names` may be empty. With
// `iou`, each class's IoU too.
std::vector<ClassMetrics> per_class_metrics(const torch::Tensor& confusion,
                                            const std::vector<std::string>& names = {},
                                            bool iou = false);
// Multilabel: from [labels, 3] counts of true positives, false positives and false negatives.
std::vector<ClassMetrics> per_label_metrics(const torch::Tensor& counts,
                                            const std::vector<std::string>& names = {});

// A test example the model got wrong, with the probability it gave its (wrong) answer.
struct Mistake {
  int64_t index = 0;  // in the evaluated dataset
  int64_t label = 0;
  int64_t predicted = 0;
  double confidence = 0.0;
};

// The result of evaluating a model on a split.
struct EvalResult {
  std::string split;  // "val" or "test"
  Task task = Task::kClassification;
  MetricMap metrics;  // MetricAccumulator::compute's
  int64_t samples = 0;
  double seconds = 0.0;
  // Tests: classification, segmentation and sequence (of positions).
  torch::Tensor confusion;
  // Tests: per class (classification; with the IoU for segmentation and sequence) or per label
  // (multilabel).
  std::vector<ClassMetrics> per_class;
  std::vector<Mistake>
      mistakes;  // classification tests: the 16 most confident wrong answers, most confident first

  // Readable tables, as the task has them: per-class precision/recall/F1 (per label for
  // multilabel, with the IoU for segmentation and sequence) and the confusion matrix.
  std::string report() const;
};

}  // namespace trainscope
