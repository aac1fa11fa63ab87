#include <trainscope/tune/head_probe.h>

#include <trainscope/error.h>

#include <algorithm>
#include <chrono>
#include <cstdio>

namespace trainscope::tune {
namespace {

torch::nn::Linear zero_linear(int64_t in, int64_t out) {
  torch::nn::Linear head(in, out);
  torch::NoGradGuard no_grad;
  head->weight.zero_();
  head->bias.zero_();
  return head;
}

HeadFeatures slice(const HeadFeatures& f, int64_t from, int64_t to) {
  HeadFeatures s;
  s.features = f.features.slice(0, from, to);
  s.targets = f.targets.slice(0, from, to);
  return s;
}

}  // namespace

ProbeScore linear_probe(const HeadFeatures& train, const HeadFeatures& held_out, Task task,
                        int64_t outputs, int64_t steps) {
  auto head = zero_linear(train.features.size(1), outputs);
  torch::optim::Adam opt(head->parameters(), torch::optim::AdamOptions(1e-2));
  for (int64_t i = 0; i < steps; ++i) {
    opt.zero_grad();
    task_loss(task, head->forward(train.features), train.targets).backward();
    opt.step();
  }
  torch::NoGradGuard no_grad;
  const torch::Tensor out = head->forward(held_out.features);
  ProbeScore s;
  s.loss = task_loss(task, out, held_out.targets).item<double>();
  if (task == Task::kClassification)
    s.accuracy = out.argmax(1).eq(held_out.targets).to(torch::kFloat64).mean().item<double>();
  return s;
}

LrSuggestion head_lr(const HeadFeatures& train, Task task, int64_t outputs, int64_t batch_size,
                     double fallback_lr) {
  Model head(zero_linear(train.features.size(1), outputs), "head");
  data::TensorDataset features(train.features, train.targets);
  LrFinderOptions o;
  o.task = task;
  o.batch_size = batch_size;
  o.fallback_lr = fallback_lr;
  const LrCurve curve = lr_range_test(head, features, o);
  LrSuggestion s = suggest_lr(curve, fallback_lr);
  if (!s.confident) return s;
  // The steepest descent can sit close to where the loss turns: a head trained for many epochs
  // on few examples at that lr swings from epoch to epoch. A tenth of the bottom is steadier.
  const size_t low = static_cast<size_t>(
      std::min_element(curve.smoothed.begin(), curve.smoothed.end()) - curve.smoothed.begin());
  if (const double tenth = curve.lrs[low] / 10; s.lr > tenth) {
    char buf[96];
    std::snprintf(buf, sizeof buf, "; %.2g, a tenth of where the loss bottoms out, is steadier",
                  tenth);
    s.lr = tenth;
    s.reason += buf;
  }
  return s;
}

NormalizationChoice probe_normalization(const Model& model, const models::LinearLayer& head,
                                        const data::Dataset& train, const data::Dataset* val,
                                        const data::PixelStats& loaded,
                                        const std::vector<Normalization>& candidates, Task task,
                                        int64_t outputs, const torch::Device& device,
                                        int64_t examples) {
  TORCH_CHECK(!candidates.empty(), "probe_normalization: no candidates");
  const auto start = std::chrono::steady_clock::now();
  NormalizationChoice c;
  c.candidates = candidates;
  auto renormalizer = [&](const Normalization& n) {
    // From the loaded normalization back to raw inputs, then the candidate's.
    return [&, n](const torch::Tensor& x) { return n.stats.normalize(loaded.raw(x)); };
  };
  if (const auto norms = models::batch_norm_layers(model); !norms.empty()) {
    c.batch_norm = norms.front();
    const torch::Tensor x =
        train.get_batch(torch::arange(std::min<int64_t>(256, train.size()))).x.to(device);
    for (const Normalization& n : candidates)
      c.mismatch.push_back(models::batch_norm_mismatch(model, c.batch_norm, renormalizer(n)(x)));
    for (size_t i = 1; i < c.mismatch.size(); ++i)
      if (c.mismatch[i] < c.mismatch[c.chosen]) c.chosen = i;
    c.train_examples = x.size(0);
    const double best = std::max(c.mismatch[c.chosen], 1e-300);
    std::string others;
    for (size_t i = 0; i < candidates.size(); ++i) {
      if (i == c.chosen) continue;
      char buf[64];
      std::snprintf(buf, sizeof buf, "%.1fx as far with ", c.mismatch[i] / best);
      others += (others.empty() ? "" : "; ") + std::string(buf) + candidates[i].name;
    }
    c.reason = "the source's first BatchNorm layer ('" + c.batch_norm +
               "') recorded the statistics of its training inputs, and these inputs come "
               "closest to them there (" +
               std::to_string(c.train_examples) + " training examples; " + others + ")";
    c.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    return c;
  }
  const bool use_val = val != nullptr && val->size() >= 20;
  const int64_t n_train = std::min(examples, train.size());
  const data::Subset train_part(
      std::shared_ptr<const data::Dataset>(std::shared_ptr<const data::Dataset>(), &train),
      torch::arange(n_train));
  std::unique_ptr<data::Subset> val_part;
  if (use_val)
    val_part = std::make_unique<data::Subset>(
        std::shared_ptr<const data::Dataset>(std::shared_ptr<const data::Dataset>(), val),
        torch::arange(std::min(examples, val->size())));
  for (const Normalization& n : candidates) {
    const auto renormalize = renormalizer(n);
    HeadFeatures t = head_features(model, head, train_part, 256, device, renormalize);
    HeadFeatures h;
    if (use_val) {
      h = head_features(model, head, *val_part, 256, device, renormalize);
    } else {
      const int64_t cut = n_train - n_train / 5;
      h = slice(t, cut, n_train);
      t = slice(t, 0, cut);
    }
    c.train_examples = t.features.size(0);
    c.held_out_examples = h.features.size(0);
    c.scores.push_back(linear_probe(t, h, task, outputs));
  }
  for (size_t i = 1; i < c.scores.size(); ++i)
    if (c.scores[i].loss < c.scores[c.chosen].loss) c.chosen = i;
  auto score = [&](size_t i) {
    char buf[96];
    if (task == Task::kClassification)
      std::snprintf(buf, sizeof buf, "loss %.3f, accuracy %.1f%%", c.scores[i].loss,
                    100 * c.scores[i].accuracy);
    else
      std::snprintf(buf, sizeof buf, "loss %.4g", c.scores[i].loss);
    return std::string(buf);
  };
  std::string others;
  for (size_t i = 0; i < candidates.size(); ++i)
    if (i != c.chosen)
      others += (others.empty() ? "" : "; ") + score(i) + " with " + candidates[i].name;
  char buf[160];
  std::snprintf(buf, sizeof buf,
                "a linear probe on the source's features (%lld examples, scored on %lld %s) "
                "reaches ",
                static_cast<long long>(c.train_examples),
                static_cast<long long>(c.held_out_examples),
                use_val ? "validation examples" : "held-out training examples");
  c.reason = buf + score(c.chosen) + (others.empty() ? "" : ", against " + others);
  c.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  return c;
}

}  // namespace trainscope::tune
