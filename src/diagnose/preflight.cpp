#include <trainscope/diagnose/preflight.h>

#include "core/rng_guard.h"

#include <cmath>
#include <cstdio>

namespace trainscope::diagnose {
namespace {

// Thresholds of the pre-flight checks (ours, chosen to pass every healthy setup in tests/):
constexpr double kMaxImbalance = 10.0;  // largest / smallest class (the rule)
constexpr double kMaxAbsMean = 1.0, kMinStd = 0.2, kMaxStd = 5.0;  // normalized inputs
constexpr double kInitialLossSlack = 3.0;  // initial loss within [log C / 3, 3 log C]
constexpr double kOverfitShare = 0.1;      // one batch overfit to a tenth of its initial loss

std::string num(double v) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.4g", v);
  return buf;
}

Finding finding(const std::string& check, Severity severity, std::string message,
                std::map<std::string, double> evidence, std::string remedy) {
  return Finding{"preflight_" + check, severity,         0, 0, std::move(message),
                 std::move(evidence),  std::move(remedy)};
}

}  // namespace

std::vector<Finding> preflight(Model& model, const data::Dataset& train,
                               const PreflightOptions& o) {
  std::vector<Finding> out;
  if (train.size() == 0) return out;
  detail::RngGuard rng;
  const auto saved = model.snapshot();
  const bool was_training = model.is_training();
  model.to(o.device);

  // Labels and class balance over the whole training set, in chunks.
  const int64_t n = train.size();
  auto first = train.get_batch(torch::arange(std::min<int64_t>(n, 1024)));
  first = first.map([&](const torch::Tensor& t) { return t.to(o.device); });
  auto x = first.x, y = first.y;
  // The model's forward on the first n examples, with their named inputs.
  auto forward = [&](int64_t k) {
    const data::Batch b = first.head(k);
    return model.forward(b.x, b.inputs);
  };
  // The loss on the first k examples, as the fit computes it.
  auto batch_loss = [&](int64_t k) {
    const data::Batch b = first.head(k);
    return o.step ? o.step(model, b).loss : task_loss(o.task, model.forward(b.x, b.inputs), b.y);
  };
  int64_t classes = o.num_classes;
  if (o.task == Task::kClassification) {
    torch::NoGradGuard no_grad;
    if (classes == 0) {
      EvalModeGuard eval(model);
      classes = forward(2).size(1);
    }
    torch::Tensor counts = torch::zeros({classes}, torch::kInt64);
    int64_t lo = 0, hi = 0;
    for (int64_t i = 0; i < n; i += 8192) {
      auto labels =
          train.get_batch(torch::arange(i, std::min(n, i + 8192))).y.to(torch::kCPU, torch::kInt64);
      lo = std::min(lo, labels.min().item<int64_t>());
      hi = std::max(hi, labels.max().item<int64_t>());
      if (lo >= 0 && hi < classes)
        counts += torch::bincount(labels, {}, classes).slice(0, 0, classes);
    }
    if (lo < 0 || hi >= classes) {
      out.push_back(finding(
          "labels", Severity::kError,
          "labels range over [" + std::to_string(lo) + ", " + std::to_string(hi) +
              "] but the model has " + std::to_string(classes) + " outputs",
          {{"min_label", double(lo)}, {"max_label", double(hi)}, {"outputs", double(classes)}},
          "size the last layer for " + std::to_string(hi + 1) + " classes, or fix the labels"));
      model.restore(saved);
      model.train(was_training);
      return out;  // the remaining checks need valid labels
    }
    const double largest = counts.max().item<double>(), smallest = counts.min().item<double>();
    if (smallest == 0 || largest / smallest > kMaxImbalance)
      out.push_back(finding(
          "class_imbalance", Severity::kWarning,
          "classes are imbalanced: the largest has " + num(largest) + " examples, the smallest " +
              num(smallest),
          {{"largest_class", largest}, {"smallest_class", smallest}},
          "weight the loss by inverse class frequency or resample; report per-class recall, not "
          "only accuracy"));
  }

  // Input scale (of values: token ids and other integer inputs have none).
  if (x.is_floating_point()) {
    const double mean = x.mean().item<double>(), std = x.std().item<double>();
    if (std::fabs(mean) > kMaxAbsMean || std < kMinStd || std > kMaxStd)
      out.push_back(
          finding("inputs_not_normalized", Severity::kWarning,
                  "inputs have mean " + num(mean) + " and standard deviation " + num(std) +
                      "; networks train best on inputs near mean 0, std 1",
                  {{"input_mean", mean}, {"input_std", std}},
                  "normalize the inputs: subtract " + num(mean) + " and divide by " + num(std)));
  }

  // Initial loss of a fresh classifier: a uniform guess scores log C.
  const int64_t nb = std::min<int64_t>(o.batch_size, x.size(0));
  if (o.task == Task::kClassification && classes > 1 && !o.step) {
    torch::NoGradGuard no_grad;
    EvalModeGuard eval(model);
    const double initial = task_loss(o.task, forward(std::min<int64_t>(256, x.size(0))),
                                     y.slice(0, 0, std::min<int64_t>(256, x.size(0))))
                               .item<double>();
    const double expected = std::log(double(classes));
    if (!(initial < kInitialLossSlack * expected && initial > expected / kInitialLossSlack))
      out.push_back(finding(
          "initial_loss", Severity::kWarning,
          "the untrained model's loss is " + num(initial) + "; a fresh classifier of " +
              std::to_string(classes) + " classes should score about log C = " + num(expected),
          {{"initial_loss", initial}, {"expected", expected}},
          "check the last layer's initialization (small weights, zero bias) and the input scale"));
  }

  // Every trainable parameter receives a gradient.
  model.train();
  for (auto& p : model.parameters()) p.mutable_grad() = torch::Tensor();
  batch_loss(nb).backward();
  std::string missing;
  int n_missing = 0;
  for (const auto& item : model.module().named_parameters()) {
    if (!item.value().requires_grad()) continue;
    const auto& g = item.value().grad();
    if (!g.defined() || g.abs().sum().item<double>() == 0) {
      missing += (missing.empty() ? "" : ", ") + item.key();
      ++n_missing;
    }
  }
  if (n_missing > 0)
    out.push_back(finding(
        "no_gradient", Severity::kError,
        std::to_string(n_missing) + " trainable parameter(s) receive no gradient: " + missing,
        {{"parameters_without_gradient", double(n_missing)}},
        "check that forward() uses these layers, or freeze them (requires_grad false)"));

  // Overfit one batch.
  {
    // 3x the training lr: memorizing one batch should be quick, and a tuned lr is often on the low
    // side.
    torch::optim::Adam opt(model.parameters(), torch::optim::AdamOptions(3 * o.lr));
    double initial = 0, last = 0;
    int64_t steps = 0;
    for (; steps < o.overfit_steps; ++steps) {
      opt.zero_grad();
      auto loss = batch_loss(nb);
      last = loss.item<double>();  // host sync: pre-flight only
      if (steps == 0) initial = last;
      if (last < kOverfitShare * initial) break;
      loss.backward();
      opt.step();
    }
    int64_t frozen = 0, trainable = 0;
    for (const auto& p : model.parameters()) (p.requires_grad() ? trainable : frozen) += p.numel();
    const std::string what =
        "one batch of " + std::to_string(nb) + " examples could not be overfit in " +
        std::to_string(o.overfit_steps) + " steps: loss " + num(initial) + " -> " + num(last);
    // A frozen backbone leaves only the head to memorize with: expected when fine-tuning.
    if (!(last < kOverfitShare * initial) && frozen > 0)
      out.push_back(finding(
          "overfit_batch", Severity::kInfo,
          what + ", with " + std::to_string(frozen) + " of " + std::to_string(frozen + trainable) +
              " parameter values frozen",
          {{"initial_loss", initial},
           {"final_loss", last},
           {"steps", double(steps)},
           {"frozen_values", double(frozen)}},
          "expected with a frozen backbone, where only the head learns; if the fine-tuned model "
          "underfits, unfreeze the backbone (" +
              setting_ref("finetune.unfreeze_at_epoch", "2") + ")"));
    else if (!(last < kOverfitShare * initial))
      out.push_back(finding(
          "overfit_batch", Severity::kWarning, what,
          {{"initial_loss", initial}, {"final_loss", last}, {"steps", double(steps)}},
          "a model that cannot memorize 32 examples will not learn the data: check that labels "
          "match inputs, raise the learning rate, or add capacity"));
  }

  for (auto& p : model.parameters()) p.mutable_grad() = torch::Tensor();
  model.restore(saved);
  model.train(was_training);
  return out;
}

}  // namespace trainscope::diagnose
