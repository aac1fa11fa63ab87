#include <trainscope/error.h>
#include <trainscope/track/archive.h>
#include <trainscope/train/loss.h>
#include <trainscope/train/metrics.h>

#include <algorithm>
#include <cmath>
#include <iomanip>
#include <sstream>

namespace trainscope {

torch::Tensor task_loss(Task task, const torch::Tensor& output, const torch::Tensor& target) {
  return task == Task::kClassification
             ? torch::cross_entropy_loss(output, target)
             : torch::mse_loss(output, target.view_as(output).to(output.scalar_type()));
}

LossFunction make_loss(Task task, const LossOptions& o) {
  const bool classification = task == Task::kClassification;
  const Loss kind = o.kind != Loss::kAuto ? o.kind
                    : classification      ? Loss::kCrossEntropy
                                          : Loss::kMse;
  const std::string name = name_of(kind, kLossNames);
  if (classification != (kind == Loss::kCrossEntropy))
    throw ConfigError("train.loss = " + name + " does not fit train.task = " +
                      (classification ? "classification" : "regression") + "; expected " +
                      (classification ? "cross_entropy (on [batch, classes] logits)"
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
  if (!o.class_weights.empty() && !classification)
    throw ConfigError("train.class_weights applies to classification; train.task is regression");
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
  // The weights move to the outputs' device once.
  return [weight, smoothing = o.label_smoothing](const torch::Tensor& out,
                                                 const torch::Tensor& y) mutable {
    if (weight.defined() && (out.dim() != 2 || weight.size(0) != out.size(1)))
      throw ShapeError("train.class_weights has " + std::to_string(weight.size(0)) +
                       " weights but the model returns " + c10::str(out.sizes()) +
                       " per batch; expected one weight per class");
    if (weight.defined() && (weight.device() != out.device() || weight.dtype() != out.dtype()))
      weight = weight.to(out.device(), out.scalar_type());
    return torch::cross_entropy_loss(out, y, weight, at::Reduction::Mean, -100, smoothing);
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

MetricAccumulator::MetricAccumulator(Task task, bool with_confusion)
    : task_(task), with_confusion_(with_confusion && task == Task::kClassification) {}

void MetricAccumulator::reset() {
  count_ = values_ = 0;
  loss_sum_ = hits_ = abs_sum_ = sq_sum_ = confusion_ = torch::Tensor();
}

void MetricAccumulator::update(const torch::Tensor& loss, const torch::Tensor& output,
                               const torch::Tensor& target) {
  torch::NoGradGuard no_grad;
  const int64_t n = output.size(0);
  auto add = [](torch::Tensor& acc, const torch::Tensor& v) {
    acc = acc.defined() ? acc.add_(v) : v.clone();
  };
  add(loss_sum_, loss.detach().to(torch::kFloat64) * static_cast<double>(n));
  if (task_ == Task::kClassification) {
    auto pred = output.argmax(1);
    add(hits_, pred.eq(target).sum());
    if (with_confusion_) {
      num_classes_ = output.size(1);
      auto cells = torch::bincount(target * num_classes_ + pred, {}, num_classes_ * num_classes_);
      add(confusion_, cells.view({num_classes_, num_classes_}));
    }
  } else {
    auto diff = output.detach().to(torch::kFloat64) - target.view_as(output).to(torch::kFloat64);
    add(abs_sum_, diff.abs().sum());
    add(sq_sum_, diff.square().sum());
  }
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
  } else {
    // Over every predicted value, as torch's L1/MSE losses average them.
    const double values = static_cast<double>(values_);
    m["mae"] = abs_sum_.item<double>() / values;
    m["rmse"] = std::sqrt(sq_sum_.item<double>() / values);
  }
  return m;
}

void MetricAccumulator::save(torch::serialize::OutputArchive& archive) const {
  archive.write("count", c10::IValue(count_));
  archive.write("values", c10::IValue(values_));
  archive.write("num_classes", c10::IValue(num_classes_));
  // Undefined sums (nothing accumulated yet) are saved as absent.
  const std::pair<const char*, const torch::Tensor*> sums[] = {{"loss_sum", &loss_sum_},
                                                               {"hits", &hits_},
                                                               {"abs_sum", &abs_sum_},
                                                               {"sq_sum", &sq_sum_},
                                                               {"confusion", &confusion_}};
  for (const auto& [key, t] : sums)
    if (t->defined()) archive.write(key, *t, /*is_buffer=*/true);
}

void MetricAccumulator::load(torch::serialize::InputArchive& archive) {
  reset();
  count_ = read_int(archive, "count");
  values_ = read_int(archive, "values");
  num_classes_ = read_int(archive, "num_classes");
  const std::pair<const char*, torch::Tensor*> sums[] = {{"loss_sum", &loss_sum_},
                                                         {"hits", &hits_},
                                                         {"abs_sum", &abs_sum_},
                                                         {"sq_sum", &sq_sum_},
                                                         {"confusion", &confusion_}};
  for (const auto& [key, t] : sums) {
    torch::Tensor loaded;
    if (archive.try_read(key, loaded, /*is_buffer=*/true)) *t = loaded.clone();
  }
}

torch::Tensor MetricAccumulator::confusion() const {
  return confusion_.defined() ? confusion_.to(torch::kCPU) : torch::Tensor();
}

std::vector<ClassMetrics> per_class_metrics(const torch::Tensor& confusion,
                                            const std::vector<std::string>& names) {
  auto c = confusion.to(torch::kCPU, torch::kInt64).contiguous();
  const int64_t k = c.size(0);
  auto a = c.accessor<int64_t, 2>();
  std::vector<ClassMetrics> out;
  for (int64_t i = 0; i < k; ++i) {
    int64_t tp = a[i][i], predicted = 0, actual = 0;
    for (int64_t j = 0; j < k; ++j) predicted += a[j][i], actual += a[i][j];
    ClassMetrics m;
    m.name = i < static_cast<int64_t>(names.size()) ? names[i] : std::to_string(i);
    m.precision = predicted ? double(tp) / double(predicted) : 0.0;
    m.recall = actual ? double(tp) / double(actual) : 0.0;
    m.f1 =
        (m.precision + m.recall) > 0 ? 2 * m.precision * m.recall / (m.precision + m.recall) : 0.0;
    m.support = actual;
    out.push_back(m);
  }
  return out;
}

std::string EvalResult::report() const {
  std::ostringstream out;
  out << std::fixed;
  if (per_class.empty()) return out.str();
  size_t w = 5;
  for (const auto& c : per_class) w = std::max(w, c.name.size());
  out << std::left << std::setw(int(w)) << "class" << std::right
      << "  precision  recall      f1  support\n";
  double mp = 0, mr = 0, mf = 0;
  for (const auto& c : per_class) {
    out << std::left << std::setw(int(w)) << c.name << std::right << std::setprecision(4)
        << std::setw(11) << c.precision << std::setw(8) << c.recall << std::setw(8) << c.f1
        << std::setw(9) << c.support << "\n";
    mp += c.precision, mr += c.recall, mf += c.f1;
  }
  const double k = double(per_class.size());
  out << std::left << std::setw(int(w)) << "macro avg" << std::right << std::setprecision(4)
      << std::setw(11) << mp / k << std::setw(8) << mr / k << std::setw(8) << mf / k << std::setw(9)
      << samples << "\n";

  if (confusion.defined()) {
    auto c = confusion.to(torch::kInt64).contiguous();
    auto a = c.accessor<int64_t, 2>();
    int cell = 5;
    for (int64_t i = 0; i < c.size(0); ++i)
      for (int64_t j = 0; j < c.size(1); ++j)
        cell = std::max(cell, int(std::to_string(a[i][j]).size()) + 1);
    out << "\nconfusion matrix (rows: true class, columns: predicted)\n"
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
