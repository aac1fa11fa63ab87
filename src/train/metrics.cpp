#include <trainscope/error.h>
#include <trainscope/track/archive.h>
#include <trainscope/train/loss.h>
#include <trainscope/train/metric.h>
#include <trainscope/train/metrics.h>

#include <algorithm>
#include <cmath>
#include <iomanip>
#include <sstream>

namespace trainscope {

torch::Tensor task_loss(Task task, const torch::Tensor& output, const torch::Tensor& target) {
  return make_loss(task, {})(output, target);
}

namespace {

const char* task_name(Task task) { return name_of(task, kTaskNames); }

// Sequence outputs [batch, time, classes] with the classes where torch's losses want them:
// [batch, classes, time].
torch::Tensor classes_second(Task task, const torch::Tensor& output) {
  return task == Task::kSequence && output.dim() == 3 ? output.transpose(1, 2) : output;
}

}  // namespace

namespace {
// One row of class scores per position and its label, padding (-100) included.
std::pair<torch::Tensor, torch::Tensor> rows_per_position(Task task, const torch::Tensor& output,
                                                          const torch::Tensor& target) {
  const auto scores = task == Task::kSequence ? output : output.movedim(1, -1);
  return {scores.reshape({-1, scores.size(-1)}), target.reshape({-1})};
}
}  // namespace

std::pair<torch::Tensor, torch::Tensor> positions(Task task, const torch::Tensor& output,
                                                  const torch::Tensor& target) {
  if (!per_position(task)) return {output, target};
  const auto [rows, labels] = rows_per_position(task, output, target);
  const auto keep = labels.ne(-100).nonzero().squeeze(1);  // a host sync on CUDA
  return {rows.index_select(0, keep), labels.index_select(0, keep)};
}

LossFunction make_loss(Task task, const LossOptions& o) {
  const Loss auto_kind = class_indices(task)         ? Loss::kCrossEntropy
                         : task == Task::kMultilabel ? Loss::kBce
                                                     : Loss::kMse;
  const Loss kind = o.kind != Loss::kAuto ? o.kind : auto_kind;
  const std::string name = name_of(kind, kLossNames);
  const bool fits = class_indices(task)         ? kind == Loss::kCrossEntropy
                    : task == Task::kMultilabel ? kind == Loss::kBce
                                                : kind != Loss::kCrossEntropy && kind != Loss::kBce;
  if (!fits)
    throw ConfigError(
        "train.loss = " + name + " does not fit train.task = " + task_name(task) + "; expected " +
        (task == Task::kClassification ? "cross_entropy (on [batch, classes] logits)"
         : task == Task::kSegmentation ? "cross_entropy (on [batch, classes, H, W] logits)"
         : task == Task::kSequence     ? "cross_entropy (on [batch, time, classes] logits)"
         : task == Task::kMultilabel   ? "bce (on [batch, labels] logits)"
                                       : "mse, l1 or huber (on values)"));
  if (!(o.label_smoothing >= 0 && o.label_smoothing < 1))
    throw ConfigError("train.label_smoothing = " + std::to_string(o.label_smoothing) +
                      " is out of range; expected a fraction in [0, 1) such as 0.1");
  if (!(o.huber_delta > 0))
    throw ConfigError("train.huber_delta = " + std::to_string(o.huber_delta) +
                      " is out of range; expected a positive number such as 1.0");
  for (double w : o.class_weights)
    if (!(std::isfinite(w) && w >= 0))
      throw ConfigError("train.class_weights: " + std::to_string(w) +
                        " is out of range; expected weights >= 0");
  if (!o.class_weights.empty() && task == Task::kRegression)
    throw ConfigError(
        "train.class_weights applies to classification, multilabel, segmentation and "
        "sequence; train.task is regression");
  auto values = [](const torch::Tensor& output, const torch::Tensor& target) {
    return target.view_as(output).to(output.scalar_type());
  };
  switch (kind) {
    case Loss::kMse:
      return [values](const torch::Tensor& out, const torch::Tensor& y) {
        return torch::mse_loss(out, values(out, y));
      };
    case Loss::kL1:
      return [values](const torch::Tensor& out, const torch::Tensor& y) {
        return torch::l1_loss(out, values(out, y));
      };
    case Loss::kHuber:
      return [values, delta = o.huber_delta](const torch::Tensor& out, const torch::Tensor& y) {
        return torch::huber_loss(out, values(out, y), at::Reduction::Mean, delta);
      };
    default:
      break;
  }
  torch::Tensor weight;
  if (!o.class_weights.empty()) weight = torch::tensor(o.class_weights, torch::kFloat32);
  const int64_t class_dim = task == Task::kSequence ? 2 : 1;
  auto check_weights = [weight, class_dim](const torch::Tensor& out) {
    if (weight.defined() && (out.dim() <= class_dim || weight.size(0) != out.size(class_dim)))
      throw ShapeError("train.class_weights has " + std::to_string(weight.size(0)) +
                       " weights but the model returns " + c10::str(out.sizes()) +
                       " per batch; expected one weight per " +
                       (class_dim == 1 ? "output" : "class"));
  };
  if (kind == Loss::kBce) {
    // The weights move to the outputs' device once.
    return [weight, check_weights, smoothing = o.label_smoothing](const torch::Tensor& out,
                                                                  const torch::Tensor& y) mutable {
      check_weights(out);
      if (weight.defined() && (weight.device() != out.device() || weight.dtype() != out.dtype()))
        weight = weight.to(out.device(), out.scalar_type());
      auto target = y.reshape(out.sizes()).to(out.scalar_type());
      if (smoothing > 0) target = target * (1 - smoothing) + 0.5 * smoothing;
      return torch::binary_cross_entropy_with_logits(out, target, {}, weight);
    };
  }
  return [weight, check_weights, task, smoothing = o.label_smoothing](
             const torch::Tensor& out, const torch::Tensor& y) mutable {
    check_weights(out);
    if (weight.defined() && (weight.device() != out.device() || weight.dtype() != out.dtype()))
      weight = weight.to(out.device(), out.scalar_type());
    return torch::cross_entropy_loss(classes_second(task, out), y, weight, at::Reduction::Mean,
                                     -100, smoothing);
  };
}

std::vector<double> balanced_class_weights(const torch::Tensor& labels, int64_t classes) {
  const auto counts = torch::bincount(labels.to(torch::kCPU, torch::kInt64).flatten(), {}, classes)
                          .to(torch::kFloat64);
  const double n = static_cast<double>(labels.numel());
  std::vector<double> out(static_cast<size_t>(classes), 0.0);
  for (int64_t c = 0; c < classes; ++c) {
    const double k = counts[c].item<double>();
    out[static_cast<size_t>(c)] = k > 0 ? n / (static_cast<double>(classes) * k) : 0.0;
  }
  return out;
}

MetricAccumulator::MetricAccumulator(Task task, bool with_confusion,
                                     const std::vector<std::shared_ptr<const Metric>>& metrics)
    : task_(task), with_confusion_(class_indices(task) && (with_confusion || per_position(task))) {
  for (const auto& m : metrics) extra_.push_back(m->fresh());
}

MetricAccumulator::~MetricAccumulator() = default;

void MetricAccumulator::reset() {
  count_ = values_ = 0;
  loss_sum_ = hits_ = total_ = exact_ = abs_sum_ = sq_sum_ = confusion_ = label_counts_ =
      torch::Tensor();
  for (auto& m : extra_) m->reset();
}

void MetricAccumulator::update(const torch::Tensor& loss, const torch::Tensor& output,
                               const torch::Tensor& target) {
  torch::NoGradGuard no_grad;
  const int64_t n = output.size(0);
  auto add = [](torch::Tensor& acc, const torch::Tensor& v) {
    acc = acc.defined() ? acc.add_(v) : v.clone();
  };
  add(loss_sum_, loss.detach().to(torch::kFloat64) * static_cast<double>(n));
  if (class_indices(task_)) {
    auto [scores, labels] = per_position(task_) ? rows_per_position(task_, output.detach(), target)
                                                : std::pair{output.detach(), target};
    const int64_t classes = scores.size(1);
    const auto pred = scores.argmax(1);
    // Padding (-100) counts nowhere: masked, not dropped, so that no step waits on the host.
    const auto valid = labels.ne(-100);
    add(hits_, pred.eq(labels).logical_and(valid).sum());
    if (per_position(task_)) add(total_, valid.sum());
    if (with_confusion_) {
      num_classes_ = classes;
      const auto cell =
          torch::where(valid, labels * classes + pred, torch::full_like(labels, classes * classes));
      auto cells = torch::bincount(cell, {}, classes * classes + 1).narrow(0, 0, classes * classes);
      add(confusion_, cells.view({classes, classes}));
    }
  } else if (task_ == Task::kMultilabel) {
    const auto pred = output.detach() > 0;  // sigmoid > 0.5
    const auto truth = target.reshape(output.sizes()) > 0.5;
    const auto right = pred.eq(truth);
    add(hits_, right.sum());
    add(total_, torch::full({}, right.numel(), right.options().dtype(torch::kInt64)));
    add(exact_, right.all(1).sum());
    add(label_counts_,
        torch::stack({pred.logical_and(truth).sum(0), pred.logical_and(truth.logical_not()).sum(0),
                      pred.logical_not().logical_and(truth).sum(0)},
                     1));
  } else {
    auto diff = output.detach().to(torch::kFloat64) - target.view_as(output).to(torch::kFloat64);
    add(abs_sum_, diff.abs().sum());
    add(sq_sum_, diff.square().sum());
  }
  for (auto& m : extra_) m->update(output.detach(), target);
  count_ += n;
  values_ += output.numel();
}

MetricMap MetricAccumulator::compute() const {
  MetricMap m;
  if (count_ == 0) return m;
  const double n = static_cast<double>(count_);
  // Host sync: once per pass.
  m["loss"] = loss_sum_.item<double>() / n;
  if (task_ == Task::kClassification) {
    m["accuracy"] = hits_.item<double>() / n;
  } else if (per_position(task_) || task_ == Task::kMultilabel) {
    const double total = total_.defined() ? total_.item<double>() : 0.0;
    m["accuracy"] = total > 0 ? hits_.item<double>() / total : std::nan("");
    if (task_ == Task::kMultilabel) m["exact_match"] = exact_.item<double>() / n;
    if (per_position(task_)) {
      double sum = 0.0;
      int64_t present = 0;
      for (const auto& c : per_class_metrics(confusion(), {}, /*iou=*/true))
        if (!std::isnan(c.iou)) sum += c.iou, ++present;
      m["miou"] = present > 0 ? sum / static_cast<double>(present) : std::nan("");
    }
  } else {
    // Over every predicted value, as torch's L1/MSE losses average them.
    const double values = static_cast<double>(values_);
    m["mae"] = abs_sum_.item<double>() / values;
    m["rmse"] = std::sqrt(sq_sum_.item<double>() / values);
  }
  for (const auto& metric : extra_) m[metric->name()] = metric->compute();
  return m;
}

namespace {
// The accumulator's sums by archive key; undefined sums (nothing accumulated yet) are absent.
template <typename Tensor>
std::vector<std::pair<const char*, Tensor*>> sum_keys(Tensor& loss_sum, Tensor& hits, Tensor& total,
                                                      Tensor& exact, Tensor& abs_sum,
                                                      Tensor& sq_sum, Tensor& confusion,
                                                      Tensor& label_counts) {
  return {{"loss_sum", &loss_sum},   {"hits", &hits},
          {"total", &total},         {"exact", &exact},
          {"abs_sum", &abs_sum},     {"sq_sum", &sq_sum},
          {"confusion", &confusion}, {"label_counts", &label_counts}};
}
}  // namespace

void MetricAccumulator::save(torch::serialize::OutputArchive& archive) const {
  archive.write("count", c10::IValue(count_));
  archive.write("values", c10::IValue(values_));
  archive.write("num_classes", c10::IValue(num_classes_));
  for (const auto& [key, t] : sum_keys<const torch::Tensor>(
           loss_sum_, hits_, total_, exact_, abs_sum_, sq_sum_, confusion_, label_counts_))
    if (t->defined()) archive.write(key, *t, /*is_buffer=*/true);
  for (const auto& m : extra_) {
    const auto state = m->state();
    for (size_t i = 0; i < state.size(); ++i)
      if (state[i].defined())
        archive.write("metric/" + m->name() + "/" + std::to_string(i), state[i], true);
  }
}

void MetricAccumulator::load(torch::serialize::InputArchive& archive) {
  reset();
  count_ = read_int(archive, "count");
  values_ = read_int(archive, "values");
  num_classes_ = read_int(archive, "num_classes");
  for (const auto& [key, t] : sum_keys<torch::Tensor>(loss_sum_, hits_, total_, exact_, abs_sum_,
                                                      sq_sum_, confusion_, label_counts_)) {
    torch::Tensor loaded;
    if (archive.try_read(key, loaded, /*is_buffer=*/true)) *t = loaded.clone();
  }
  for (auto& m : extra_) {
    auto state = m->state();
    for (size_t i = 0; i < state.size(); ++i) {
      torch::Tensor loaded;
      state[i] = archive.try_read("metric/" + m->name() + "/" + std::to_string(i), loaded, true)
                     ? loaded.clone()
                     : torch::Tensor();
    }
    m->load_state(state);
  }
}

void MetricAccumulator::sum_across(const std::function<void(std::vector<torch::Tensor>&)>& sum) {
  // Counts travel as doubles (exact up to 2^53); the sums as they are, each metric's state too.
  std::vector<torch::Tensor> all = {
      torch::tensor({static_cast<double>(count_), static_cast<double>(values_)}, torch::kFloat64)};
  for (const auto& [key, t] : sum_keys<torch::Tensor>(loss_sum_, hits_, total_, exact_, abs_sum_,
                                                      sq_sum_, confusion_, label_counts_))
    if (t->defined()) all.push_back(*t);
  std::vector<std::vector<torch::Tensor>> states;
  for (const auto& m : extra_) {
    states.push_back(m->state());
    for (const auto& t : states.back())
      if (t.defined()) all.push_back(t);
  }
  sum(all);  // in place: the sums above are these tensors
  count_ = static_cast<int64_t>(all[0][0].item<double>());
  values_ = static_cast<int64_t>(all[0][1].item<double>());
  for (size_t i = 0; i < extra_.size(); ++i) extra_[i]->load_state(states[i]);
}

torch::Tensor MetricAccumulator::confusion() const {
  return confusion_.defined() ? confusion_.to(torch::kCPU) : torch::Tensor();
}

torch::Tensor MetricAccumulator::label_counts() const {
  return label_counts_.defined() ? label_counts_.to(torch::kCPU, torch::kInt64) : torch::Tensor();
}

namespace {
ClassMetrics scores(std::string name, int64_t tp, int64_t fp, int64_t fn) {
  ClassMetrics m;
  m.name = std::move(name);
  m.precision = tp + fp ? double(tp) / double(tp + fp) : 0.0;
  m.recall = tp + fn ? double(tp) / double(tp + fn) : 0.0;
  m.f1 = (m.precision + m.recall) > 0 ? 2 * m.precision * m.recall / (m.precision + m.recall) : 0.0;
  m.support = tp + fn;
  return m;
}
std::string name_at(const std::vector<std::string>& names, int64_t i) {
  return i < static_cast<int64_t>(names.size()) ? names[i] : std::to_string(i);
}
}  // namespace

std::vector<ClassMetrics> per_class_metrics(const torch::Tensor& confusion,
                                            const std::vector<std::string>& names, bool iou) {
  auto c = confusion.to(torch::kCPU, torch::kInt64).contiguous();
  const int64_t k = c.size(0);
  auto a = c.accessor<int64_t, 2>();
  std::vector<ClassMetrics> out;
  for (int64_t i = 0; i < k; ++i) {
    int64_t tp = a[i][i], predicted = 0, actual = 0;
    for (int64_t j = 0; j < k; ++j) predicted += a[j][i], actual += a[i][j];
    ClassMetrics m = scores(name_at(names, i), tp, predicted - tp, actual - tp);
    const int64_t uni = predicted + actual - tp;
    if (iou && uni > 0) m.iou = double(tp) / double(uni);
    out.push_back(m);
  }
  return out;
}

std::vector<ClassMetrics> per_label_metrics(const torch::Tensor& counts,
                                            const std::vector<std::string>& names) {
  auto c = counts.to(torch::kCPU, torch::kInt64).contiguous();
  auto a = c.accessor<int64_t, 2>();
  std::vector<ClassMetrics> out;
  for (int64_t i = 0; i < c.size(0); ++i)
    out.push_back(scores(name_at(names, i), a[i][0], a[i][1], a[i][2]));
  return out;
}

std::string EvalResult::report() const {
  std::ostringstream out;
  out << std::fixed;
  if (per_class.empty()) return out.str();
  const bool iou = per_position(task);
  const char* unit = task == Task::kMultilabel ? "label" : "class";
  size_t w = 9;
  for (const auto& c : per_class) w = std::max(w, c.name.size());
  out << std::left << std::setw(int(w)) << unit << std::right
      << "  precision  recall      f1  support" << (iou ? "     IoU" : "") << "\n";
  double mp = 0, mr = 0, mf = 0, mi = 0;
  int64_t with_iou = 0;
  auto iou_cell = [&](double v) -> std::string {
    if (!iou) return "";
    if (std::isnan(v)) return "       -";
    char buf[16];
    std::snprintf(buf, sizeof buf, "%8.4f", v);
    return buf;
  };
  for (const auto& c : per_class) {
    out << std::left << std::setw(int(w)) << c.name << std::right << std::setprecision(4)
        << std::setw(11) << c.precision << std::setw(8) << c.recall << std::setw(8) << c.f1
        << std::setw(9) << c.support << iou_cell(c.iou) << "\n";
    mp += c.precision, mr += c.recall, mf += c.f1;
    if (!std::isnan(c.iou)) mi += c.iou, ++with_iou;
  }
  const double k = double(per_class.size());
  out << std::left << std::setw(int(w)) << "macro avg" << std::right << std::setprecision(4)
      << std::setw(11) << mp / k << std::setw(8) << mr / k << std::setw(8) << mf / k << std::setw(9)
      << samples << iou_cell(with_iou ? mi / double(with_iou) : std::nan("")) << "\n";
  if (per_position(task))
    out << "(support counts " << (task == Task::kSequence ? "steps" : "pixels")
        << "; the last row's, examples)\n";

  if (confusion.defined()) {
    auto c = confusion.to(torch::kInt64).contiguous();
    auto a = c.accessor<int64_t, 2>();
    int cell = 5;
    for (int64_t i = 0; i < c.size(0); ++i)
      for (int64_t j = 0; j < c.size(1); ++j)
        cell = std::max(cell, int(std::to_string(a[i][j]).size()) + 1);
    out << "\nconfusion matrix" << (per_position(task) ? " of positions" : "")
        << " (rows: true class, columns: predicted)\n"
        << std::setw(int(w)) << ""
        << " ";
    for (int64_t j = 0; j < c.size(1); ++j) out << std::setw(cell) << j;
    out << "\n";
    for (int64_t i = 0; i < c.size(0); ++i) {
      out << std::left << std::setw(int(w)) << per_class[i].name << std::right << " ";
      for (int64_t j = 0; j < c.size(1); ++j) out << std::setw(cell) << a[i][j];
      out << "\n";
    }
  }
  return out.str();
}

}  // namespace trainscope

namespace trainscope {
namespace {

void add_to(torch::Tensor& acc, const torch::Tensor& v) {
  acc = acc.defined() ? acc.add_(v) : v.clone();
}

class TopKAccuracy : public Metric {
 public:
  explicit TopKAccuracy(int64_t k) : k_(k) {}
  std::string name() const override { return "top" + std::to_string(k_) + "_accuracy"; }
  void update(const torch::Tensor& output, const torch::Tensor& target) override {
    torch::NoGradGuard no_grad;
    if (output.dim() != 2 || output.size(1) < k_)
      throw ShapeError(name() + " needs [batch, classes] outputs with at least " +
                       std::to_string(k_) + " classes; the model returns " +
                       c10::str(output.sizes()));
    const auto top = std::get<1>(output.topk(k_, 1));
    add_to(hits_, top.eq(target.unsqueeze(1)).any(1).sum().to(torch::kFloat64));
    add_to(count_, torch::full({}, static_cast<double>(output.size(0)),
                               torch::dtype(torch::kFloat64).device(output.device())));
  }
  double compute() const override {
    return count_.defined() ? (hits_ / count_).item<double>() : std::nan("");
  }
  void reset() override { hits_ = count_ = torch::Tensor(); }
  std::vector<torch::Tensor> state() const override { return {hits_, count_}; }
  void load_state(const std::vector<torch::Tensor>& s) override {
    hits_ = s.at(0), count_ = s.at(1);
  }
  std::unique_ptr<Metric> fresh() const override { return std::make_unique<TopKAccuracy>(k_); }

 private:
  int64_t k_;
  torch::Tensor hits_, count_;
};

// Precision, recall or F1 from a confusion matrix grown to the classes seen in the outputs.
class ConfusionMetric : public Metric {
 public:
  enum class Score { kPrecision, kRecall, kF1, kIou };
  ConfusionMetric(Score score, bool micro) : score_(score), micro_(micro) {}
  std::string name() const override {
    if (score_ == Score::kIou) return "miou";
    const char* s = score_ == Score::kPrecision ? "precision"
                    : score_ == Score::kRecall  ? "recall"
                                                : "f1";
    return std::string(s) + (micro_ ? "_micro" : "_macro");
  }
  void update(const torch::Tensor& output, const torch::Tensor& target) override {
    torch::NoGradGuard no_grad;
    if (output.dim() != 2)
      throw ShapeError(name() + " needs [batch, classes] outputs; the model returns " +
                       c10::str(output.sizes()));
    const int64_t c = output.size(1);
    const auto cells = torch::bincount(target * c + output.argmax(1), {}, c * c).view({c, c});
    add_to(confusion_, cells.to(torch::kFloat64));
  }
  double compute() const override {
    if (!confusion_.defined()) return std::nan("");
    const auto m = confusion_.to(torch::kCPU);
    const auto tp = m.diagonal(), predicted = m.sum(0), actual = m.sum(1);
    auto ratio = [](const torch::Tensor& a, const torch::Tensor& b) {
      return torch::where(b > 0, a / b.clamp_min(1), torch::zeros_like(a));
    };
    if (micro_) {
      // Single-label: every miss is one false positive and one false negative.
      const double t = tp.sum().item<double>(), n = m.sum().item<double>();
      return n > 0 ? t / n : std::nan("");
    }
    if (score_ == Score::kIou) {
      // Over the classes in the targets or the predictions: an absent class is no evidence.
      const auto uni = predicted + actual - tp;
      const auto present = uni > 0;
      return present.any().item<bool>()
                 ? ratio(tp, uni).masked_select(present).mean().item<double>()
                 : std::nan("");
    }
    const auto p = ratio(tp, predicted), r = ratio(tp, actual);
    const auto f = ratio(2 * p * r, p + r);
    const auto& per_class = score_ == Score::kPrecision ? p : score_ == Score::kRecall ? r : f;
    return per_class.mean().item<double>();
  }
  void reset() override { confusion_ = torch::Tensor(); }
  std::vector<torch::Tensor> state() const override { return {confusion_}; }
  void load_state(const std::vector<torch::Tensor>& s) override { confusion_ = s.at(0); }
  std::unique_ptr<Metric> fresh() const override {
    return std::make_unique<ConfusionMetric>(score_, micro_);
  }

 private:
  Score score_;
  bool micro_;
  torch::Tensor confusion_;
};

// One-vs-rest AUROC per class from histograms of the predicted probabilities of positives and
// negatives over kBins bins (Keras's AUC with 200 thresholds does the same), so that its state
// is sums; the macro mean over the classes that have both positives and negatives.
// Multilabel: per label, on the sigmoid of its logit.
class Auroc : public Metric {
 public:
  static constexpr int64_t kBins = 200;
  explicit Auroc(bool multilabel) : multilabel_(multilabel) {}
  std::string name() const override { return "auroc"; }
  void update(const torch::Tensor& output, const torch::Tensor& target) override {
    torch::NoGradGuard no_grad;
    if (output.dim() != 2 || output.size(1) < (multilabel_ ? 1 : 2))
      throw ShapeError(std::string("auroc needs ") +
                       (multilabel_ ? "[batch, labels] outputs"
                                    : "[batch, classes] outputs with at least 2 classes") +
                       "; the model returns " + c10::str(output.sizes()));
    const int64_t c = output.size(1);
    const auto probs = multilabel_ ? torch::sigmoid(output.to(torch::kFloat64))
                                   : torch::softmax(output.to(torch::kFloat64), 1);
    const auto bins = (probs * kBins).floor().clamp(0, kBins - 1).to(torch::kInt64);
    const auto cell = (torch::arange(c, bins.options()).unsqueeze(0) * kBins + bins).flatten();
    const auto positive =
        multilabel_ ? (target.reshape(output.sizes()) > 0.5).to(torch::kFloat64).flatten()
                    : torch::nn::functional::one_hot(target, c).to(torch::kFloat64).flatten();
    add_to(positives_, torch::bincount(cell, positive, c * kBins).view({c, kBins}));
    add_to(negatives_, torch::bincount(cell, 1 - positive, c * kBins).view({c, kBins}));
  }
  double compute() const override {
    if (!positives_.defined()) return std::nan("");
    // Thresholds from the top bin down: the curve's points are the cumulative counts.
    const auto pos = positives_.to(torch::kCPU).flip(1), neg = negatives_.to(torch::kCPU).flip(1);
    const auto p_total = pos.sum(1), n_total = neg.sum(1);
    const auto tpr = torch::cat({torch::zeros({pos.size(0), 1}, pos.options()), pos.cumsum(1)}, 1) /
                     p_total.clamp_min(1).unsqueeze(1);
    const auto fpr = torch::cat({torch::zeros({neg.size(0), 1}, neg.options()), neg.cumsum(1)}, 1) /
                     n_total.clamp_min(1).unsqueeze(1);
    const auto area = torch::trapezoid(tpr, fpr, 1);
    const auto valid = (p_total > 0).logical_and(n_total > 0);
    if (!valid.any().item<bool>()) return std::nan("");
    return area.masked_select(valid).mean().item<double>();
  }
  void reset() override { positives_ = negatives_ = torch::Tensor(); }
  std::vector<torch::Tensor> state() const override { return {positives_, negatives_}; }
  void load_state(const std::vector<torch::Tensor>& s) override {
    positives_ = s.at(0), negatives_ = s.at(1);
  }
  std::unique_ptr<Metric> fresh() const override { return std::make_unique<Auroc>(multilabel_); }

 private:
  bool multilabel_;
  torch::Tensor positives_, negatives_;  // [classes, kBins]
};

// Multilabel precision, recall or F1 at logit 0 (sigmoid 0.5), from per-label counts: macro, the
// mean over labels of each label's score (a label never predicted scores 0 precision); micro,
// from the counts pooled over labels.
class LabelMetric : public Metric {
 public:
  using Score = ConfusionMetric::Score;
  LabelMetric(Score score, bool micro) : score_(score), micro_(micro) {}
  std::string name() const override { return ConfusionMetric(score_, micro_).name(); }
  void update(const torch::Tensor& output, const torch::Tensor& target) override {
    torch::NoGradGuard no_grad;
    if (output.dim() != 2)
      throw ShapeError(name() + " needs [batch, labels] outputs; the model returns " +
                       c10::str(output.sizes()));
    const auto pred = output > 0, truth = target.reshape(output.sizes()) > 0.5;
    add_to(counts_, torch::stack({pred.logical_and(truth).sum(0),
                                  pred.logical_and(truth.logical_not()).sum(0),
                                  pred.logical_not().logical_and(truth).sum(0)},
                                 1)
                        .to(torch::kFloat64));
  }
  double compute() const override {
    if (!counts_.defined()) return std::nan("");
    auto c = counts_.to(torch::kCPU);
    if (micro_) c = c.sum(0, /*keepdim=*/true);
    const auto tp = c.select(1, 0), fp = c.select(1, 1), fn = c.select(1, 2);
    auto ratio = [](const torch::Tensor& a, const torch::Tensor& b) {
      return torch::where(b > 0, a / b.clamp_min(1e-300), torch::zeros_like(a));
    };
    const auto p = ratio(tp, tp + fp), r = ratio(tp, tp + fn);
    const auto f = ratio(2 * p * r, p + r);
    const auto& per_label = score_ == Score::kPrecision ? p : score_ == Score::kRecall ? r : f;
    return per_label.mean().item<double>();
  }
  void reset() override { counts_ = torch::Tensor(); }
  std::vector<torch::Tensor> state() const override { return {counts_}; }
  void load_state(const std::vector<torch::Tensor>& s) override { counts_ = s.at(0); }
  std::unique_ptr<Metric> fresh() const override {
    return std::make_unique<LabelMetric>(score_, micro_);
  }

 private:
  Score score_;
  bool micro_;
  torch::Tensor counts_;  // [labels, 3]: true positives, false positives, false negatives
};

// A classification metric over the positions of segmentation or sequence outputs: each
// position (pixel, step) counts as an example; padding (-100) counts nowhere.
// Dropping the padding is a host sync per batch on CUDA (positions()); the task's own metrics
// (MetricAccumulator) mask it instead and need none.
class PerPosition : public Metric {
 public:
  PerPosition(Task task, std::unique_ptr<Metric> inner) : task_(task), inner_(std::move(inner)) {}
  std::string name() const override { return inner_->name(); }
  void update(const torch::Tensor& output, const torch::Tensor& target) override {
    const auto [rows, labels] = positions(task_, output, target);
    inner_->update(rows, labels);
  }
  double compute() const override { return inner_->compute(); }
  void reset() override { inner_->reset(); }
  std::vector<torch::Tensor> state() const override { return inner_->state(); }
  void load_state(const std::vector<torch::Tensor>& s) override { inner_->load_state(s); }
  std::unique_ptr<Metric> fresh() const override {
    return std::make_unique<PerPosition>(task_, inner_->fresh());
  }

 private:
  Task task_;
  std::unique_ptr<Metric> inner_;
};

class RSquared : public Metric {
 public:
  std::string name() const override { return "r2"; }
  void update(const torch::Tensor& output, const torch::Tensor& target) override {
    torch::NoGradGuard no_grad;
    const auto o = output.detach().to(torch::kFloat64).flatten();
    const auto y = target.reshape(output.sizes()).to(torch::kFloat64).flatten();
    // Sums: n, sum y, sum y^2, sum (y - o)^2.
    add_to(sums_, torch::stack({torch::full({}, static_cast<double>(y.numel()), y.options()),
                                y.sum(), y.square().sum(), (y - o).square().sum()}));
  }
  double compute() const override {
    if (!sums_.defined()) return std::nan("");
    const auto s = sums_.to(torch::kCPU);
    const double n = s[0].item<double>(), sy = s[1].item<double>(), syy = s[2].item<double>(),
                 res = s[3].item<double>();
    const double total = syy - sy * sy / n;
    return total > 0 ? 1.0 - res / total : std::nan("");
  }
  void reset() override { sums_ = torch::Tensor(); }
  std::vector<torch::Tensor> state() const override { return {sums_}; }
  void load_state(const std::vector<torch::Tensor>& s) override { sums_ = s.at(0); }
  std::unique_ptr<Metric> fresh() const override { return std::make_unique<RSquared>(); }

 private:
  torch::Tensor sums_;
};

}  // namespace

void Metric::merge(const Metric& other) {
  auto mine = state();
  const auto theirs = other.state();
  TORCH_CHECK(mine.size() == theirs.size(), "Metric::merge: ", name(), " and ", other.name());
  for (size_t i = 0; i < mine.size(); ++i) {
    if (!theirs[i].defined()) continue;
    mine[i] = mine[i].defined() ? mine[i] + theirs[i].to(mine[i].device()) : theirs[i].clone();
  }
  load_state(mine);
}

std::string metric_names() {
  return "top{K}_accuracy (such as top5_accuracy), precision_macro, recall_macro, f1_macro, "
         "f1_micro, auroc, miou (classification); precision_macro, recall_macro, f1_macro, "
         "precision_micro, recall_micro, f1_micro, auroc (multilabel); top{K}_accuracy, "
         "precision_macro, recall_macro, f1_macro, miou (segmentation, sequence); r2 "
         "(regression)";
}

namespace {
// The names that fit `task`, for errors.
std::string metric_names(Task task) {
  switch (task) {
    case Task::kClassification:
      return "top{K}_accuracy, precision_macro, recall_macro, f1_macro, f1_micro, auroc or miou";
    case Task::kMultilabel:
      return "precision_macro, recall_macro, f1_macro, precision_micro, recall_micro, f1_micro "
             "or auroc";
    case Task::kSegmentation:
    case Task::kSequence:
      return "top{K}_accuracy, precision_macro, recall_macro, f1_macro or miou";
    case Task::kRegression:
      break;
  }
  return "r2";
}
}  // namespace

std::unique_ptr<Metric> make_metric(const std::string& name, Task task) {
  std::unique_ptr<Metric> m;
  using S = ConfusionMetric::Score;
  const bool multilabel = task == Task::kMultilabel;
  // Scores from counts: a confusion matrix of classes, or yes/no counts per label.
  auto counted = [&](S score, bool micro) -> std::unique_ptr<Metric> {
    if (multilabel) return std::make_unique<LabelMetric>(score, micro);
    return std::make_unique<ConfusionMetric>(score, micro);
  };
  bool known = true;
  if (name.rfind("top", 0) == 0 && name.size() > 12 &&
      name.compare(name.size() - 9, 9, "_accuracy") == 0) {
    const std::string k = name.substr(3, name.size() - 12);
    if (!k.empty() && k.size() < 4 && k.find_first_not_of("0123456789") == std::string::npos &&
        std::stoll(k) >= 1 && class_indices(task))
      m = std::make_unique<TopKAccuracy>(std::stoll(k));
    known =
        !k.empty() && k.find_first_not_of("0123456789") == std::string::npos && std::stoll(k) >= 1;
  } else if (name == "precision_macro") {
    m = counted(S::kPrecision, false);
  } else if (name == "recall_macro") {
    m = counted(S::kRecall, false);
  } else if (name == "f1_macro") {
    m = counted(S::kF1, false);
  } else if (name == "f1_micro") {
    if (task == Task::kClassification || multilabel) m = counted(S::kF1, true);
  } else if (name == "precision_micro" || name == "recall_micro") {
    if (multilabel) m = counted(name[0] == 'p' ? S::kPrecision : S::kRecall, true);
  } else if (name == "auroc") {
    if (task == Task::kClassification || multilabel) m = std::make_unique<Auroc>(multilabel);
  } else if (name == "miou") {
    if (class_indices(task)) m = std::make_unique<ConfusionMetric>(S::kIou, false);
  } else if (name == "r2") {
    if (task == Task::kRegression) m = std::make_unique<RSquared>();
  } else {
    known = false;
  }
  if (!known)
    throw ConfigError("train.metrics: \"" + name + "\" is not a metric; expected " +
                      metric_names());
  if (task == Task::kRegression && name != "r2") m.reset();
  if (!m)
    throw ConfigError("train.metrics: \"" + name + "\" does not fit train.task = " +
                      name_of(task, kTaskNames) + "; expected " + metric_names(task));
  if (per_position(task)) m = std::make_unique<PerPosition>(task, std::move(m));
  return m;
}

}  // namespace trainscope
