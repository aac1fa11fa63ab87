#pragma once
// Metrics: loss plus accuracy (classification) or MAE and RMSE (regression), accumulated on the
// training device and read back once per pass; per-class precision, recall and F1 from the
// confusion matrix.

#include <trainscope/train/state.h>

#include <memory>
#include <string>
#include <vector>

namespace trainscope {

class Metric;  // train/metric.h

enum class Task { kClassification, kRegression };

// The task's default loss: cross-entropy on class indices, or MSE on values (targets are reshaped
// to the output and cast to its type).
torch::Tensor task_loss(Task task, const torch::Tensor& output, const torch::Tensor& target);

// Accumulates over the batches of one pass. update() launches a few small ops and never syncs;
// compute() reads everything back in one go. Not thread-safe.
class MetricAccumulator {
 public:
  // `with_confusion` also accumulates a [C, C] confusion matrix (classification only);
  // `metrics` are accumulated beside loss and accuracy (or MAE and RMSE), each in a fresh copy.
  explicit MetricAccumulator(Task task, bool with_confusion = false,
                             const std::vector<std::shared_ptr<const Metric>>& metrics = {});
  ~MetricAccumulator();

  void reset();
  // `loss` is the batch's mean loss (0-dim); output [B, C] logits or [B, T] predictions;
  // target [B] class indices or [B] / [B, T] values.
  void update(const torch::Tensor& loss, const torch::Tensor& output, const torch::Tensor& target);

  // {"loss", "accuracy"} or {"loss", "mae", "rmse"}, and each metric by its name; empty when
  // nothing was accumulated.
  MetricMap compute() const;
  // Rows are true classes, columns predicted classes (int64, CPU). Undefined without confusion.
  torch::Tensor confusion() const;
  int64_t count() const { return count_; }

  // The running sums, for checkpoints taken mid-epoch; load() continues exactly.
  void save(torch::serialize::OutputArchive& archive) const;
  void load(torch::serialize::InputArchive& archive);

 private:
  Task task_;
  bool with_confusion_;
  int64_t count_ = 0;   // examples
  int64_t values_ = 0;  // predicted values (examples x outputs)
  int64_t num_classes_ = 0;
  torch::Tensor loss_sum_, hits_, abs_sum_, sq_sum_, confusion_;
  std::vector<std::unique_ptr<Metric>> extra_;
};

// Precision, recall and F1 of one class; a class never predicted has precision 0.
struct ClassMetrics {
  std::string name;
  double precision = 0.0;
  double recall = 0.0;
  double f1 = 0.0;
  int64_t support = 0;  // true examples of the class
};

// From a [C, C] confusion matrix (rows true, columns predicted). `names` may be empty.
std::vector<ClassMetrics> per_class_metrics(const torch::Tensor& confusion,
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
  MetricMap metrics;  // loss, accuracy | mae, rmse
  int64_t samples = 0;
  double seconds = 0.0;
  torch::Tensor confusion;  // classification tests only
  std::vector<ClassMetrics> per_class;
  std::vector<Mistake>
      mistakes;  // classification tests: the 16 most confident wrong answers, most confident first

  // Readable tables: per-class precision/recall/F1 and the confusion matrix.
  std::string report() const;
};

}  // namespace trainscope
