#include <trainscope/diagnose/detectors.h>

#include <nlohmann/json.hpp>

#include <algorithm>
#include <cctype>
#include <cmath>
#include <cstdio>
#include <sstream>

namespace trainscope::diagnose {
namespace {

std::string num(double v) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.4g", v);
  return buf;
}

Finding make(const std::string& kind, Severity sev, int64_t step, int64_t epoch,
             std::string message, std::map<std::string, double> evidence, std::string remedy) {
  return Finding{
      kind, sev, step, epoch, std::move(message), std::move(evidence), std::move(remedy)};
}

// The first and last weight tensors (matrices or kernels), which AUTOTRAINER's ratios compare.
std::pair<const LayerSignals*, const LayerSignals*> first_last(const StepSignals& s) {
  const LayerSignals *first = nullptr, *last = nullptr;
  for (const auto& l : s.layers)
    if (l.is_weight) {
      if (!first) first = &l;
      last = &l;
    }
  return {first, last};
}

double metric(const std::map<std::string, double>& m, const char* key, double otherwise = NAN) {
  auto it = m.find(key);
  return it == m.end() ? otherwise : it->second;
}

// "ReLU" for "relu": an activation as its module is called.
std::string display_name(const std::string& activation) {
  if (activation == "relu") return "ReLU";
  if (activation.empty()) return activation;
  std::string name = activation;
  name[0] = char(std::toupper(static_cast<unsigned char>(name[0])));
  return name;
}

}  // namespace

std::optional<Finding> NonFiniteDetector::on_step(const StepSignals& s) {
  if (!s.non_finite && std::isfinite(s.loss) && std::isfinite(s.grad_norm)) return std::nullopt;
  return make(kind(), Severity::kError, s.step, s.epoch,
              "the loss or the gradients became NaN or Inf (loss " + num(s.loss) +
                  ", gradient norm " + num(s.grad_norm) + "); training has diverged",
              {{"loss", s.loss}, {"grad_norm", s.grad_norm}, {"lr", s.lr}},
              "lower the learning rate to " + num(s.lr / 10) + " (" +
                  setting_ref("train.lr", num(s.lr / 10)) + ") and clip gradients at 1.0 (" +
                  setting_ref("train.grad_clip", "1.0") +
                  "); check the inputs for NaN and that they are normalized");
}

namespace {

// Rows that sum to 1: within 1e-3, or within the outputs' own resolution when autocast made them
// narrower than float32 (bfloat16 probabilities sum to 1 only within its epsilon).
bool rows_sum_to_one(const StepSignals& s) {
  return s.row_sum_error < std::max(1e-3, s.output_epsilon);
}

}  // namespace

std::optional<Finding> ProbabilityOutputsDetector::on_step(const StepSignals& s) {
  const bool probabilities =
      s.classification_outputs && s.output_min >= 0 && s.output_max <= 1 && rows_sum_to_one(s);
  streak_ = probabilities ? streak_ + 1 : 0;
  if (streak_ != 2) return std::nullopt;  // once per streak
  return make(kind(), Severity::kWarning, s.step, s.epoch,
              "the model's outputs are probabilities (every row in [0, 1], summing to 1 within " +
                  num(s.row_sum_error) +
                  "): a softmax before cross-entropy, which applies log-softmax itself, squashes "
                  "the gradients",
              {{"output_min", s.output_min},
               {"output_max", s.output_max},
               {"row_sum_error", s.row_sum_error}},
              "return the logits: remove the Softmax at the end of the model (cross-entropy "
              "takes raw scores; apply softmax only to read probabilities)");
}

std::string ProbabilityOutputsDetector::save_state() const {
  return nlohmann::json{{"streak", streak_}}.dump();
}
void ProbabilityOutputsDetector::load_state(const std::string& text) {
  streak_ = nlohmann::json::parse(text).at("streak").get<int>();
}

std::optional<Finding> NonNegativeLogitsDetector::on_step(const StepSignals& s) {
  const bool probabilities = s.output_max <= 1 && rows_sum_to_one(s);
  const bool clipped =
      s.classification_outputs && s.output_min >= 0 && s.zero_fraction >= 0.05 && !probabilities;
  streak_ = clipped ? streak_ + 1 : 0;
  if (streak_ != 2) return std::nullopt;
  return make(kind(), Severity::kWarning, s.step, s.epoch,
              "the model's outputs are never negative and " + num(100 * s.zero_fraction) +
                  "% of them are exactly 0: logits through a ReLU (or another clipping "
                  "activation) cannot say \"unlikely\", and pass no gradient where they are 0",
              {{"output_min", s.output_min}, {"zero_fraction", s.zero_fraction}},
              "remove the activation after the last Linear layer: its outputs are the logits");
}

std::string NonNegativeLogitsDetector::save_state() const {
  return nlohmann::json{{"streak", streak_}}.dump();
}
void NonNegativeLogitsDetector::load_state(const std::string& text) {
  streak_ = nlohmann::json::parse(text).at("streak").get<int>();
}

std::optional<Finding> BoundedLogitsDetector::on_step(const StepSignals& s) {
  if (!s.classification_outputs) return std::nullopt;
  const std::string& known = s.output_activation;
  const bool probabilities = s.output_max <= 1 && rows_sum_to_one(s);
  constexpr double kReach = 0.01;  // a bound counts as reached within this
  const bool in_unit = s.output_min >= -1e-6 && s.output_max <= 1 + 1e-6;
  const bool in_sym = s.output_min >= -1 - 1e-6 && s.output_max <= 1 + 1e-6;
  const bool sigmoid_like = in_unit && (s.output_max >= 1 - kReach || s.output_min <= kReach) &&
                            s.zero_fraction < 0.05;  // exact zeros: a ReLU (relu_on_logits)
  const bool tanh_like = in_sym && s.output_min < -kReach &&
                         (s.output_max >= 1 - kReach || s.output_min <= -1 + kReach);
  const bool bounded = known == "sigmoid" || known == "tanh" ||
                       (known.empty() && !probabilities && (sigmoid_like || tanh_like));
  streak_ = bounded ? streak_ + 1 : 0;
  if (streak_ != (known.empty() ? 3 : 2)) return std::nullopt;
  const bool symmetric = known == "tanh" || (known.empty() && tanh_like);
  const double lo = symmetric ? -1.0 : 0.0, hi = 1.0;
  const std::string how = !known.empty() ? "the model ends in a " + display_name(known)
                          : symmetric    ? "as after a tanh"
                                         : "as after a sigmoid";
  std::string floor;
  std::map<std::string, double> evidence = {{"output_min", s.output_min},
                                            {"output_max", s.output_max}};
  if (s.output_classes > 1) {
    const double best = std::log1p(static_cast<double>(s.output_classes - 1) * std::exp(lo - hi));
    floor = "; with " + std::to_string(s.output_classes) +
            " classes, even its most confident prediction has a cross-entropy of " + num(best) +
            ", so the loss cannot go below it";
    evidence["lowest_possible_loss"] = best;
  }
  return make(
      kind(), Severity::kWarning, s.step, s.epoch,
      "the model's scores stay within [" + num(s.output_min) + ", " + num(s.output_max) + "] (" +
          how + "), but cross-entropy expects unbounded logits" + floor,
      evidence,
      "remove the " +
          (known.empty() ? std::string(symmetric ? "tanh" : "sigmoid") : display_name(known)) +
          " after the last Linear layer: its outputs are the logits, and cross-entropy "
          "applies the softmax itself");
}

std::string BoundedLogitsDetector::save_state() const {
  return nlohmann::json{{"streak", streak_}}.dump();
}
void BoundedLogitsDetector::load_state(const std::string& text) {
  streak_ = nlohmann::json::parse(text).at("streak").get<int>();
}

std::optional<Finding> NonFiniteDetector::on_epoch(const EpochSignals& e) {
  const double loss = metric(e.train, "loss", 0.0);
  if (std::isfinite(loss)) return std::nullopt;
  return make(kind(), Severity::kError, e.step, e.epoch,
              "the training loss of epoch " + std::to_string(e.epoch) + " is " + num(loss) +
                  "; training has diverged",
              {{"train_loss", loss}, {"lr", e.lr}},
              e.lr > 0
                  ? "lower the learning rate to " + num(e.lr / 10) + " (" +
                        setting_ref("train.lr", num(e.lr / 10)) + ") and clip gradients at 1.0 (" +
                        setting_ref("train.grad_clip", "1.0") + ")"
                  : "lower the learning rate by 10x and clip gradients at 1.0 (" +
                        setting_ref("train.grad_clip", "1.0") + ")");
}

std::optional<Finding> ExplodingGradientDetector::on_step(const StepSignals& s) {
  auto [first, last] = first_last(s);
  const double ratio =
      (first && last && last->grad_norm > 0) ? first->grad_norm / last->grad_norm : 0.0;
  ratio_streak_ = ratio > t_.explode_ratio ? ratio_streak_ + 1 : 0;
  const double smallest = norms_.empty() ? 0.0 : *std::min_element(norms_.begin(), norms_.end());
  const bool growth =
      std::isfinite(s.grad_norm) && smallest > 0 && s.grad_norm > t_.growth_factor * smallest;
  norms_.push_back(s.grad_norm);
  if (norms_.size() > static_cast<size_t>(t_.growth_window)) norms_.pop_front();
  if (ratio_streak_ < t_.sustain_steps && !growth) return std::nullopt;

  std::string why = growth ? "the global gradient norm grew from " + num(smallest) + " to " +
                                 num(s.grad_norm) + " within " + std::to_string(t_.growth_window) +
                                 " logging steps"
                           : "the first layer's gradient norm (" + first->name + ": " +
                                 num(first->grad_norm) + ") is " + num(ratio) +
                                 "x the last layer's (" + last->name + ": " + num(last->grad_norm) +
                                 ") for " + std::to_string(t_.sustain_steps) + " logging steps";
  return make(kind(), Severity::kError, s.step, s.epoch, "exploding gradients: " + why,
              {{"grad_norm", s.grad_norm},
               {"first_last_ratio", ratio},
               {"min_recent_grad_norm", smallest},
               {"lr", s.lr}},
              "clip gradients at 1.0 (" + setting_ref("train.grad_clip", "1.0") +
                  ") and lower the learning rate to " + num(s.lr / 10) + " (" +
                  setting_ref("train.lr", num(s.lr / 10)) + "); normalize the inputs");
}

std::optional<Finding> VanishingGradientDetector::on_step(const StepSignals& s) {
  auto [first, last] = first_last(s);
  const double ratio =
      (first && last && last->grad_norm > 0) ? first->grad_norm / last->grad_norm : 1.0;
  const bool by_ratio = first && ratio < t_.vanish_ratio && first->grad_norm < t_.vanish_first_norm;
  const bool by_mean = s.grad_abs_mean < t_.vanish_mean_abs;
  streak_ = (by_ratio || by_mean) ? streak_ + 1 : 0;
  if (streak_ < t_.sustain_steps) return std::nullopt;
  std::string why = by_ratio ? "the first layer's gradient norm (" + first->name + ": " +
                                   num(first->grad_norm) + ") is " + num(ratio) +
                                   " of the last layer's (" + last->name + ": " +
                                   num(last->grad_norm) + ")"
                             : "the mean absolute gradient is " + num(s.grad_abs_mean);
  return make(kind(), Severity::kError, s.step, s.epoch,
              "vanishing gradients: " + why + " for " + std::to_string(t_.sustain_steps) +
                  " logging steps; the early layers barely learn",
              {{"first_last_ratio", ratio},
               {"first_grad_norm", first ? first->grad_norm : 0.0},
               {"grad_abs_mean", s.grad_abs_mean}},
              "use ReLU (" + setting_ref("model.activation", "relu") +
                  ") instead of sigmoid/tanh, add batch normalization (" +
                  setting_ref("model.norm", "batch") + ") or residual connections (" +
                  setting_ref("model.name", "resnet") +
                  "), or use a shallower network; check the weight initialization (" +
                  setting_ref("model.init", "kaiming") + ")");
}

std::optional<Finding> OverfittingDetector::on_epoch(const EpochSignals& e) {
  if (e.val.empty()) return std::nullopt;
  history_.push_back(e);
  const size_t n = history_.size();
  auto loss = [&](size_t i, bool val) {
    return metric(val ? history_[i].val : history_[i].train, "loss");
  };

  bool rising = n > static_cast<size_t>(t_.rising_epochs);
  for (size_t i = n - std::min<size_t>(n, t_.rising_epochs); rising && i < n; ++i)
    rising = i > 0 && loss(i, true) > loss(i - 1, true) && loss(i, false) < loss(i - 1, false);
  double lowest = loss(n - 1, true);
  for (size_t i = 0; i < n; ++i) lowest = std::min(lowest, loss(i, true));
  const double rise = lowest > 0 ? (loss(n - 1, true) - lowest) / lowest : 0.0;
  rising = rising && rise >= t_.rising_min;

  bool gap = n >= static_cast<size_t>(t_.gap_epochs);
  for (size_t i = n - std::min<size_t>(n, t_.gap_epochs); gap && i < n; ++i)
    gap = loss(i, false) > 0 && (loss(i, true) - loss(i, false)) / loss(i, false) > t_.loss_gap;

  const double ta = metric(e.train, "accuracy"), va = metric(e.val, "accuracy");
  const double acc_gap = ta - va;
  const double acc_threshold = ta > t_.high_accuracy ? t_.accuracy_gap_high : t_.accuracy_gap;
  bool acc = false;
  if (n >= 2 && std::isfinite(acc_gap)) {
    const double prev =
        metric(history_[n - 2].train, "accuracy") - metric(history_[n - 2].val, "accuracy");
    acc = acc_gap >= acc_threshold && prev >= acc_threshold;
  }
  if (!rising && !gap && !acc) return std::nullopt;

  const double tl = metric(e.train, "loss"), vl = metric(e.val, "loss");
  std::string why;
  if (rising)
    why = "validation loss rose for " + std::to_string(t_.rising_epochs) +
          " epochs while training loss fell (" + num(vl) + ", " + num(100 * rise) +
          "% above its lowest)";
  else if (acc)
    why = "training accuracy " + num(ta) + " is " + num(acc_gap) + " above validation accuracy " +
          num(va);
  else
    why = "validation loss " + num(vl) + " is " + num(100 * (vl - tl) / tl) +
          "% above training loss " + num(tl) + " for " + std::to_string(t_.gap_epochs) + " epochs";
  // Overfitting that begins after the first quarter of the budget, in a fit whose early stopping
  // keeps the weights from before it, is what early stopping is for: worth knowing, no warning.
  // Beginning sooner, most of the budget goes to memorizing the training set.
  const bool handled = e.restores_best && e.best_epoch > 0 && 4 * e.best_epoch > e.max_epochs;
  const Severity severity = (rising || acc) && !handled ? Severity::kWarning : Severity::kInfo;
  if (handled && (rising || acc))
    why += "; early stopping keeps epoch " + std::to_string(e.best_epoch) + "'s weights";
  return make(
      kind(), severity, e.step, e.epoch, "overfitting: " + why,
      {{"train_loss", tl},
       {"val_loss", vl},
       {"loss_gap", (vl - tl) / tl},
       {"accuracy_gap", acc_gap},
       {"best_epoch", double(e.best_epoch)},
       {"best_val_loss", e.best_val_loss}},
      std::string(e.augmented ? "stronger augmentation than the one on, " : "add augmentation, ") +
          "dropout (" + setting_ref("model.dropout", "0.3") + ") or weight decay (" +
          setting_ref("train.weight_decay", "0.0001") + "); the best epoch was " +
          std::to_string(e.best_epoch) + " (val_loss " + num(e.best_val_loss) +
          "), which early stopping restores");
}

std::optional<Finding> UnderfittingDetector::on_epoch(const EpochSignals& e) {
  history_.push_back(e);
  const int64_t fair =
      std::clamp<int64_t>(static_cast<int64_t>(std::ceil(t_.fair_share * e.max_epochs)),
                          t_.fair_min_epochs, t_.fair_max_epochs);
  // Epochs of this phase: a backbone that just unfroze starts another fit.
  const int64_t epochs = e.epoch - std::max<int64_t>(0, e.phase_epoch - 1);
  if (epochs < std::min<int64_t>(fair, e.max_epochs)) return std::nullopt;
  const double tl = metric(e.train, "loss");
  const double acc = metric(e.train, "accuracy");
  const double chance = e.num_classes > 0 ? 1.0 / e.num_classes : NAN;
  const bool trivial = e.trivial_loss > 0 && tl > t_.trivial_share * e.trivial_loss;
  const bool near_chance =
      e.classification && std::isfinite(acc) && acc < t_.chance_factor * chance;
  bool slow = history_.size() > static_cast<size_t>(t_.slow_epochs) && e.trivial_loss > 0 &&
              tl > t_.slow_share * e.trivial_loss;
  for (size_t i = history_.size() - t_.slow_epochs; slow && i < history_.size(); ++i) {
    const double before = metric(history_[i - 1].train, "loss"),
                 after = metric(history_[i].train, "loss");
    slow = (before - after) / before < t_.slow_gain;
  }
  if (!trivial && !near_chance && !slow) return std::nullopt;
  std::string why =
      trivial ? "training loss " + num(tl) + " is still " + num(100 * tl / e.trivial_loss) +
                    "% of a trivial predictor's (" + num(e.trivial_loss) + ")"
      : near_chance ? "training accuracy " + num(acc) + " is near chance (" + num(chance) + ")"
                    : "training loss improved by less than 1% per epoch for " +
                          std::to_string(t_.slow_epochs) + " epochs and is still " + num(tl);
  // A frozen backbone is the first capacity to give back (bench/README.md: fine-tuning every
  // layer from the pretrained weights beats training the head alone on new classes).
  const std::string remedy =
      e.frozen_fraction > 0
          ? "only " + num(100 * (1 - e.frozen_fraction)) +
                "% of the parameters train (a frozen backbone): unfreeze it (" +
                setting_ref("finetune.unfreeze_at_epoch", "2") + ", " +
                setting_ref("finetune.backbone_lr_ratio", "1.0") +
                "), raise the head's learning rate 3-10x, or train longer"
          : "increase capacity (" + setting_ref("model.hidden", "[256]") + " or " +
                setting_ref("model.channels", "[64, 128]") +
                "), train longer, or raise the learning rate 3x; check that the labels belong to "
                "the inputs";
  return make(kind(), Severity::kWarning, e.step, e.epoch,
              "underfitting after " + std::to_string(e.epoch) + " epochs: " + why,
              {{"train_loss", tl},
               {"trivial_loss", e.trivial_loss},
               {"train_accuracy", acc},
               {"chance", chance},
               {"frozen_fraction", e.frozen_fraction}},
              remedy);
}

std::optional<Finding> DyingReluDetector::on_step(const StepSignals& s) {
  const LayerSignals* zero = nullptr;
  for (const auto& l : s.layers)
    if (l.is_weight && l.zero_grad_fraction >= t_.zero_grad_share &&
        (!zero || l.zero_grad_fraction > zero->zero_grad_fraction))
      zero = &l;
  const ActivationSignals* dead = nullptr;
  for (const auto& a : s.activations)
    if (a.kind == "relu" && a.dead_fraction > t_.dead_unit_share &&
        (!dead || a.dead_fraction > dead->dead_fraction))
      dead = &a;
  streak_ = (zero || dead) ? streak_ + 1 : 0;
  if (streak_ < t_.sustain_steps) return std::nullopt;
  std::string why = dead ? num(100 * dead->dead_fraction) + "% of the units of " + dead->name +
                               " were active for less than 1% of the examples"
                         : num(100 * zero->zero_grad_fraction) + "% of the gradient entries of " +
                               zero->name + " are exactly zero";
  const bool severe = zero || dead->dead_fraction > t_.dead_unit_warning;
  return make(kind(), severe ? Severity::kWarning : Severity::kInfo, s.step, s.epoch,
              "dying ReLU: " + why,
              {{"zero_grad_fraction", zero ? zero->zero_grad_fraction : 0.0},
               {"dead_unit_fraction", dead ? dead->dead_fraction : 0.0},
               {"lr", s.lr}},
              "lower the learning rate to " + num(s.lr / 10) + " (" +
                  setting_ref("train.lr", num(s.lr / 10)) + "), use LeakyReLU (" +
                  setting_ref("model.activation", "leaky_relu") +
                  "), or add batch normalization before the ReLUs (" +
                  setting_ref("model.norm", "batch") + ")");
}

std::optional<Finding> SaturationDetector::on_step(const StepSignals& s) {
  const ActivationSignals* worst = nullptr;
  for (const auto& a : s.activations)
    if (a.kind != "relu" && a.saturated_fraction > t_.saturated_share &&
        (!worst || a.saturated_fraction > worst->saturated_fraction))
      worst = &a;
  streak_ = worst ? streak_ + 1 : 0;
  if (streak_ < t_.sustain_steps) return std::nullopt;
  const bool severe = worst->saturated_fraction > t_.saturated_warning;
  return make(kind(), severe ? Severity::kWarning : Severity::kInfo, s.step, s.epoch,
              "saturated activations: " + num(100 * worst->saturated_fraction) +
                  "% of the outputs of " + worst->name +
                  " sit within 1% of their bounds, where gradients vanish",
              {{"saturated_fraction", worst->saturated_fraction}},
              "normalize the inputs, lower the learning rate, or use ReLU (" +
                  setting_ref("model.activation", "relu") + ") with batch normalization (" +
                  setting_ref("model.norm", "batch") + ") instead of " + worst->kind);
}

std::optional<Finding> OscillatingLossDetector::on_epoch(const EpochSignals& e) {
  train_.push_back(metric(e.train, "loss"));
  auto oscillates = [this](const std::vector<double>& v) {
    if (v.size() < 5) return false;
    int changes = 0;
    for (size_t i = v.size() - 3; i < v.size(); ++i) {
      const double d1 = v[i - 1] - v[i - 2], d2 = v[i] - v[i - 1];
      const bool big = std::fabs(d1) > t_.oscillation_share * v[i - 2] &&
                       std::fabs(d2) > t_.oscillation_share * v[i - 1];
      if (big && d1 * d2 < 0) ++changes;
    }
    return changes >= 3;
  };
  if (!oscillates(train_)) return std::nullopt;
  const auto& v = train_;
  return make(kind(), Severity::kWarning, e.step, e.epoch,
              "training loss oscillates from epoch to epoch (" + num(v[v.size() - 4]) + ", " +
                  num(v[v.size() - 3]) + ", " + num(v[v.size() - 2]) + ", " + num(v.back()) + ")",
              {{"last_loss", v.back()}},
              "lower the learning rate 3-10x, or increase the batch size");
}

std::optional<Finding> LearningRateDetector::on_step(const StepSignals& s) {
  std::vector<double> ratios;
  for (const auto& l : s.layers)
    if (l.is_weight && l.update_ratio > 0 && std::isfinite(l.update_ratio))
      ratios.push_back(l.update_ratio);
  if (ratios.empty()) return std::nullopt;
  std::nth_element(ratios.begin(), ratios.begin() + ratios.size() / 2, ratios.end());
  const double median = ratios[ratios.size() / 2];
  high_streak_ = median > t_.update_high ? high_streak_ + 1 : 0;
  low_streak_ = median < t_.update_low ? low_streak_ + 1 : 0;
  if (high_streak_ >= t_.sustain_steps)
    return make(kind(), Severity::kWarning, s.step, s.epoch,
                "learning rate too high: each step changes the weights by " + num(100 * median) +
                    "% of their norm (median over layers; healthy is about 0.1%)",
                {{"median_update_ratio", median}, {"lr", s.lr}},
                "lower the learning rate to " + num(s.lr / 10) + " (" +
                    setting_ref("train.lr", num(s.lr / 10)) + ")");
  if (low_streak_ >= t_.sustain_steps)
    return make(kind(), Severity::kWarning, s.step, s.epoch,
                "learning rate too low: each step changes the weights by " + num(median) +
                    " of their norm (median over layers; healthy is about 1e-3)",
                {{"median_update_ratio", median}, {"lr", s.lr}},
                "raise the learning rate to " + num(s.lr * 10) + " (" +
                    setting_ref("train.lr", num(s.lr * 10)) + ")");
  return std::nullopt;
}

// --- checkpointed state ---------------------------------------------------------------------

namespace {

// JSON has no NaN or Inf (nlohmann writes null): they read back as NaN.
double number_from(const nlohmann::json& v) { return v.is_null() ? std::nan("") : v.get<double>(); }

std::map<std::string, double> metrics_from(const nlohmann::json& j) {
  std::map<std::string, double> out;
  for (const auto& [key, value] : j.items()) out[key] = number_from(value);
  return out;
}

std::vector<double> numbers_from(const nlohmann::json& j) {
  std::vector<double> out;
  for (const auto& v : j) out.push_back(number_from(v));
  return out;
}

nlohmann::json epoch_json(const EpochSignals& e) {
  return {{"epoch", e.epoch},
          {"step", e.step},
          {"max_epochs", e.max_epochs},
          {"classification", e.classification},
          {"num_classes", e.num_classes},
          {"trivial_loss", e.trivial_loss},
          {"train", e.train},
          {"val", e.val},
          {"best_epoch", e.best_epoch},
          {"best_val_loss", e.best_val_loss},
          {"frozen_fraction", e.frozen_fraction}};
}

EpochSignals epoch_from(const nlohmann::json& j) {
  EpochSignals e;
  e.epoch = j.at("epoch").get<int64_t>();
  e.step = j.at("step").get<int64_t>();
  e.max_epochs = j.at("max_epochs").get<int64_t>();
  e.classification = j.at("classification").get<bool>();
  e.num_classes = j.at("num_classes").get<int64_t>();
  e.trivial_loss = number_from(j.at("trivial_loss"));
  e.train = metrics_from(j.at("train"));
  e.val = metrics_from(j.at("val"));
  e.best_epoch = j.at("best_epoch").get<int64_t>();
  e.best_val_loss = number_from(j.at("best_val_loss"));
  e.frozen_fraction = j.value("frozen_fraction", 0.0);
  return e;
}

nlohmann::json history_json(const std::vector<EpochSignals>& history) {
  nlohmann::json out = nlohmann::json::array();
  for (const auto& e : history) out.push_back(epoch_json(e));
  return out;
}

std::vector<EpochSignals> history_from(const nlohmann::json& j) {
  std::vector<EpochSignals> out;
  for (const auto& e : j) out.push_back(epoch_from(e));
  return out;
}

}  // namespace

std::string ExplodingGradientDetector::save_state() const {
  return nlohmann::json{{"ratio_streak", ratio_streak_},
                        {"norms", std::vector<double>(norms_.begin(), norms_.end())}}
      .dump();
}
void ExplodingGradientDetector::load_state(const std::string& text) {
  auto j = nlohmann::json::parse(text);
  ratio_streak_ = j.at("ratio_streak").get<int>();
  auto norms = numbers_from(j.at("norms"));
  norms_.assign(norms.begin(), norms.end());
}

std::string VanishingGradientDetector::save_state() const {
  return nlohmann::json{{"streak", streak_}}.dump();
}
void VanishingGradientDetector::load_state(const std::string& text) {
  streak_ = nlohmann::json::parse(text).at("streak").get<int>();
}

std::string OverfittingDetector::save_state() const {
  return nlohmann::json{{"history", history_json(history_)}}.dump();
}
void OverfittingDetector::load_state(const std::string& text) {
  history_ = history_from(nlohmann::json::parse(text).at("history"));
}

std::string UnderfittingDetector::save_state() const {
  return nlohmann::json{{"history", history_json(history_)}}.dump();
}
void UnderfittingDetector::load_state(const std::string& text) {
  history_ = history_from(nlohmann::json::parse(text).at("history"));
}

std::string DyingReluDetector::save_state() const {
  return nlohmann::json{{"streak", streak_}}.dump();
}
void DyingReluDetector::load_state(const std::string& text) {
  streak_ = nlohmann::json::parse(text).at("streak").get<int>();
}

std::string SaturationDetector::save_state() const {
  return nlohmann::json{{"streak", streak_}}.dump();
}
void SaturationDetector::load_state(const std::string& text) {
  streak_ = nlohmann::json::parse(text).at("streak").get<int>();
}

std::string OscillatingLossDetector::save_state() const {
  return nlohmann::json{{"train", train_}}.dump();
}
void OscillatingLossDetector::load_state(const std::string& text) {
  train_ = numbers_from(nlohmann::json::parse(text).at("train"));
}

std::string LearningRateDetector::save_state() const {
  return nlohmann::json{{"high_streak", high_streak_}, {"low_streak", low_streak_}}.dump();
}
void LearningRateDetector::load_state(const std::string& text) {
  auto j = nlohmann::json::parse(text);
  high_streak_ = j.at("high_streak").get<int>();
  low_streak_ = j.at("low_streak").get<int>();
}

std::optional<Finding> SymmetricUnitsDetector::on_step(const StepSignals& s) {
  std::vector<const LayerSignals*> same;
  for (const auto& l : s.layers)
    if (l.is_weight && l.units > 1 && l.unit_spread < t_.symmetric_spread) same.push_back(&l);
  streak_ = same.empty() ? 0 : streak_ + 1;
  if (streak_ < t_.sustain_steps) return std::nullopt;
  const LayerSignals& first = *same.front();
  std::string names;
  for (size_t i = 0; i < same.size() && i < 3; ++i)
    names += std::string(i ? ", " : "") + "'" + same[i]->name + "'";
  if (same.size() > 3) names += " and " + std::to_string(same.size() - 3) + " more";
  return make(kind(), Severity::kWarning, s.step, s.epoch,
              "the " + std::to_string(first.units) + " units of '" + first.name +
                  "' are identical" + (first.weight_norm == 0 ? " (all zero)" : "") +
                  ": they differ by " + num(first.unit_spread) + " of the weights' size at " +
                  std::to_string(t_.sustain_steps) +
                  " logging steps in a row (identical units in " + names +
                  "). A constant initialization gives every unit the same gradient, so the "
                  "units never become different and the layer learns as one unit",
              {{"unit_spread", first.unit_spread},
               {"units", double(first.units)},
               {"symmetric_weights", double(same.size())}},
              "initialize the weights randomly: remove the zeros/constant initialization (keep "
              "the framework's default, or kaiming_uniform_ before ReLUs and xavier_uniform_ "
              "before tanh/sigmoid); only the last layer may start at zero");
}

std::string SymmetricUnitsDetector::save_state() const {
  return nlohmann::json{{"streak", streak_}}.dump();
}
void SymmetricUnitsDetector::load_state(const std::string& text) {
  streak_ = nlohmann::json::parse(text).at("streak").get<int>();
}

std::optional<Finding> StuckParametersDetector::on_step(const StepSignals& s) {
  std::vector<const LayerSignals*> stuck;
  for (const auto& l : s.layers)
    if (l.grad_norm > 0 && std::isfinite(l.grad_norm) && l.weight_norm > 0 && l.update_ratio == 0)
      stuck.push_back(&l);
  // A step skipped for a NaN (mixed precision's loss scaling) changes nothing, rightly.
  streak_ = stuck.empty() || s.non_finite ? 0 : streak_ + 1;
  if (streak_ < t_.sustain_steps) return std::nullopt;
  std::string names;
  for (size_t i = 0; i < stuck.size() && i < 3; ++i)
    names += std::string(i ? ", " : "") + "'" + stuck[i]->name + "'";
  if (stuck.size() > 3) names += " and " + std::to_string(stuck.size() - 3) + " more";
  double largest = 0;
  for (const auto* l : stuck) largest = std::max(largest, l->grad_norm);
  const bool all = stuck.size() == s.layers.size();
  const std::string remedy =
      s.lr == 0 ? "the learning rate is 0: set one (" + setting_ref("train.lr", "0.001") +
                      ") or check the schedule that brings it there"
                : "give every trainable parameter to the optimizer: build it after the model is "
                  "complete, from all of its parameters (a layer created in forward(), or "
                  "assigned after the optimizer was made, is never stepped). If they are in it, "
                  "their updates are below float precision: raise the learning rate";
  return make(kind(), Severity::kWarning, s.step, s.epoch,
              std::string(all ? "every parameter tensor gets"
                              : std::to_string(stuck.size()) + " of " +
                                    std::to_string(s.layers.size()) + " parameter tensors get") +
                  " a gradient (up to " + num(largest) +
                  ") that the optimizer step does not apply: unchanged at " +
                  std::to_string(t_.sustain_steps) + " logging steps in a row (" + names +
                  "), so they never train",
              {{"stuck_tensors", double(stuck.size())},
               {"tensors", double(s.layers.size())},
               {"grad_norm", largest},
               {"lr", s.lr}},
              remedy);
}

std::string StuckParametersDetector::save_state() const {
  return nlohmann::json{{"streak", streak_}}.dump();
}
void StuckParametersDetector::load_state(const std::string& text) {
  streak_ = nlohmann::json::parse(text).at("streak").get<int>();
}

std::optional<Finding> StillLossDetector::on_step(const StepSignals& s) {
  if (std::isnan(first_loss_) && std::isfinite(s.loss)) first_loss_ = s.loss;
  return std::nullopt;
}

std::optional<Finding> StillLossDetector::on_epoch(const EpochSignals& e) {
  const double tl = metric(e.train, "loss");
  train_.push_back(tl);
  const int64_t fair =
      std::clamp<int64_t>(static_cast<int64_t>(std::ceil(t_.fair_share * e.max_epochs)),
                          t_.fair_min_epochs, t_.fair_max_epochs);
  const int64_t epochs = e.epoch - std::max<int64_t>(0, e.phase_epoch - 1);
  if (epochs < std::min<int64_t>(fair, e.max_epochs) || train_.size() < 2) return std::nullopt;
  const double previous = train_[train_.size() - 2];
  if (!std::isfinite(tl) || !std::isfinite(first_loss_) || first_loss_ <= 0 || previous <= 0)
    return std::nullopt;
  const double since_first = std::fabs(tl - first_loss_) / first_loss_;
  const double since_previous = std::fabs(tl - previous) / previous;
  if (since_first >= t_.still_first || since_previous >= t_.still_epoch) return std::nullopt;
  return make(kind(), Severity::kWarning, e.step, e.epoch,
              "the training loss has not moved: " + num(tl) + " after " + std::to_string(epochs) +
                  " epochs, " + num(100 * since_first) + "% from the first logged loss (" +
                  num(first_loss_) + ") and " + num(100 * since_previous) +
                  "% from the previous epoch's; nothing is learning",
              {{"train_loss", tl},
               {"first_loss", first_loss_},
               {"change_since_first", since_first},
               {"change_since_previous", since_previous},
               {"frozen_fraction", e.frozen_fraction}},
              e.frozen_fraction >= 1
                  ? "every parameter is frozen: unfreeze the layers that should train"
                  : "check that the optimizer steps the model's parameters and that the "
                    "learning rate is not 0, that the loss reaches the parameters (no detach(), "
                    "no torch::NoGradGuard in forward), and that the targets belong to the "
                    "inputs; then try a learning rate 10x higher (" +
                        setting_ref("train.lr", "0.01") + ")");
}

std::string StillLossDetector::save_state() const {
  return nlohmann::json{{"first_loss", std::isnan(first_loss_) ? nlohmann::json(nullptr)
                                                               : nlohmann::json(first_loss_)},
                        {"train", train_}}
      .dump();
}
void StillLossDetector::load_state(const std::string& text) {
  const auto j = nlohmann::json::parse(text);
  first_loss_ = j.contains("first_loss") && j.at("first_loss").is_number()
                    ? j.at("first_loss").get<double>()
                    : NAN;
  train_ = j.contains("train") ? j.at("train").get<std::vector<double>>() : std::vector<double>{};
}

std::optional<Finding> FewStepsDetector::on_epoch(const EpochSignals& e) {
  // The whole run's budget, judged once its first epoch has shown how many steps one takes.
  if (e.epoch != 1 || e.steps_per_epoch <= 0 || e.max_epochs < 1) return std::nullopt;
  const int64_t epochs = e.max_epochs;
  const int64_t total = e.steps_per_epoch * epochs;
  if (total >= t_.min_run_steps) return std::nullopt;
  // The power of two nearest (in ratio) to the batch that gives advised_run_steps, at least 8.
  std::string remedy;
  if (e.batch_size > 8) {
    int64_t batch = 8;
    const double wanted = double(e.batch_size) * double(total) / double(t_.advised_run_steps);
    while (double(batch * 2) <= wanted * std::sqrt(2.0) && batch * 2 < e.batch_size) batch *= 2;
    remedy = "use smaller batches (" + setting_ref("train.batch_size", std::to_string(batch)) +
             " gives about " + std::to_string(std::max<int64_t>(1, total * e.batch_size / batch)) +
             " steps) or more epochs (" +
             setting_ref("train.max_epochs",
                         std::to_string((t_.advised_run_steps + e.steps_per_epoch - 1) /
                                        e.steps_per_epoch)) +
             ")";
  } else {
    remedy = "train more epochs (" +
             setting_ref("train.max_epochs",
                         std::to_string((t_.advised_run_steps + e.steps_per_epoch - 1) /
                                        e.steps_per_epoch)) +
             ") or on more data";
  }
  return make(kind(), Severity::kWarning, e.step, e.epoch,
              "the run takes only " + std::to_string(total) + " optimizer steps (" +
                  std::to_string(e.steps_per_epoch) + " per epoch" +
                  (e.batch_size > 0 ? " of batch " + std::to_string(e.batch_size) : "") + ", for " +
                  std::to_string(epochs) +
                  " epochs): too few for the weights to move "
                  "far from their initialization, whatever the data",
              {{"run_steps", double(total)},
               {"steps_per_epoch", double(e.steps_per_epoch)},
               {"batch_size", double(e.batch_size)}},
              remedy);
}

std::optional<Finding> UnreachableTargetsDetector::on_step(const StepSignals& s) {
  // The bound the outputs stay within, the share of outputs pinned at it, the targets beyond it.
  struct Bound {
    double value, pinned, beyond;
  };
  std::optional<Bound> hit;
  const std::string& known = s.output_activation;
  if (s.regression_outputs && !known.empty()) {
    // The model ends in the activation: its bounds are certain, pinned or not.
    std::vector<Bound> bounds = {{0.0, s.near_zero, s.targets_below_zero}};
    if (known == "sigmoid") bounds.push_back({1.0, s.near_one, s.targets_above_one});
    if (known == "tanh")
      bounds = {{-1.0, s.near_minus_one, s.targets_below_minus_one},
                {1.0, s.near_one, s.targets_above_one}};
    for (const auto& b : bounds)
      if (b.beyond >= t_.unreachable_share && (!hit || b.beyond > hit->beyond)) hit = b;
  } else if (s.regression_outputs && s.output_count >= t_.min_outputs) {
    std::vector<Bound> bounds;
    if (s.output_max <= 1.0) bounds.push_back({1.0, s.near_one, s.targets_above_one});
    if (s.output_min >= 0.0)
      bounds.push_back({0.0, std::max(s.near_zero, s.zero_fraction), s.targets_below_zero});
    else if (s.output_min >= -1.0)
      bounds.push_back({-1.0, s.near_minus_one, s.targets_below_minus_one});
    for (const auto& b : bounds)
      if (b.pinned >= t_.pinned_share && b.beyond >= t_.unreachable_share &&
          (!hit || b.beyond > hit->beyond))
        hit = b;
  }
  streak_ = hit ? streak_ + 1 : 0;
  if (streak_ < t_.sustain_steps) return std::nullopt;
  const bool zeros = s.output_min >= 0 && s.zero_fraction >= t_.pinned_share;
  const std::string activation = !known.empty() ? "the model's last layer, a " + display_name(known)
                                 : s.output_min < 0 ? "as after a tanh"
                                 : zeros || s.output_max > 1
                                     ? "as after a ReLU (or another non-negative activation)"
                                     : "as after a sigmoid";
  const std::string side = hit->value > 0 ? "above " + num(hit->value) : "below " + num(hit->value);
  const std::string pinned = hit->pinned >= t_.pinned_share
                                 ? "; " + num(100 * hit->pinned) +
                                       "% of the outputs are pinned at " + num(hit->value) +
                                       ", where the activation passes almost no gradient"
                                 : "";
  return make(kind(), Severity::kWarning, s.step, s.epoch,
              "the outputs stay within [" + num(s.output_min) + ", " + num(s.output_max) + "], " +
                  activation + ", while " + num(100 * hit->beyond) + "% of the targets lie " +
                  side + ": out of reach" + pinned,
              {{"output_min", s.output_min},
               {"output_max", s.output_max},
               {"pinned_share", hit->pinned},
               {"unreachable_share", hit->beyond}},
              "remove the activation after the last layer (a regression output is linear), or "
              "scale the targets into its range");
}

std::string UnreachableTargetsDetector::save_state() const {
  return nlohmann::json{{"streak", streak_}}.dump();
}
void UnreachableTargetsDetector::load_state(const std::string& text) {
  streak_ = nlohmann::json::parse(text).at("streak").get<int>();
}

std::optional<Finding> FrozenNormDriftDetector::on_step(const StepSignals& s) {
  const FrozenNormSignals* worst = nullptr;
  int64_t moving = 0;
  for (const auto& n : s.frozen_norms)
    if (n.drift > t_.norm_drift) {
      ++moving;
      if (!worst || n.drift > worst->drift) worst = &n;
    }
  streak_ = worst ? streak_ + 1 : 0;
  if (streak_ < t_.sustain_steps) return std::nullopt;
  return make(kind(), Severity::kWarning, s.step, s.epoch,
              "the running statistics of BatchNorm layer '" + worst->name + "' moved by " +
                  num(100 * worst->drift) +
                  "% since the last logging step although its weights are frozen (" +
                  std::to_string(moving) + " of " + std::to_string(s.frozen_norms.size()) +
                  " frozen BatchNorm layers run in training mode): the frozen layers' outputs "
                  "shift under the layers that train, and evaluation, which uses those "
                  "statistics, no longer sees what training saw",
              {{"drift", worst->drift},
               {"moving_layers", double(moving)},
               {"frozen_norm_layers", double(s.frozen_norms.size())}},
              "keep frozen BatchNorm layers in eval mode: freeze with "
              "trainscope::models::freeze(model, prefixes), which does, or call eval() on them "
              "after every train(); to let them adapt to the new data on purpose, say so (" +
                  setting_ref("finetune.train_bn", "true") + ")");
}

std::string FrozenNormDriftDetector::save_state() const {
  return nlohmann::json{{"streak", streak_}}.dump();
}
void FrozenNormDriftDetector::load_state(const std::string& text) {
  streak_ = nlohmann::json::parse(text).at("streak").get<int>();
}

std::optional<Finding> BatchNoiseDetector::on_epoch(const EpochSignals& e) {
  const double noise = e.noise_scale;
  const int64_t batch = e.examples_per_step > 0 ? e.examples_per_step : e.batch_size;
  if (!(std::isfinite(noise) && noise > 0) || e.noise_samples < t_.noise_min_samples || batch <= 0)
    return std::nullopt;
  const double ratio = double(batch) / noise;
  const bool large = ratio > t_.noise_batch_factor, small = ratio < 1.0 / t_.noise_batch_factor;
  if (!large && !small) return std::nullopt;
  // The power of two nearest (in ratio) to B_noise, at least 8.
  int64_t advised = 8;
  while (double(advised * 2) <= noise * std::sqrt(2.0)) advised *= 2;
  const std::string b = std::to_string(batch), n = num(noise);
  std::string message = "the gradient noise scale puts the critical batch size near " + n +
                        " examples (" + std::to_string(e.noise_samples) + " estimates in epoch " +
                        std::to_string(e.epoch) + "); ";
  message += large ? "batches of " + b + " are " + num(ratio) +
                         "x that: each step averages away noise it no longer needs, so most of "
                         "their examples buy little progress"
                   : "batches of " + b + " are " + num(1 / ratio) +
                         "x smaller: their steps are mostly noise, and larger batches would make "
                         "about as much progress per example in fewer steps (faster where the "
                         "hardware runs a larger batch in about the same time, as a GPU does)";
  return make(kind(), Severity::kInfo, e.step, e.epoch, message,
              {{"noise_scale", noise},
               {"batch_size", double(batch)},
               {"noise_samples", double(e.noise_samples)}},
              "for the fastest training per example try " +
                  setting_ref("train.batch_size", std::to_string(advised)) +
                  (large ? " with more epochs" : " and scale the learning rate with it") +
                  "; the noise scale grows as the loss falls, so later epochs tolerate larger "
                  "batches (McCandlish et al. 2018)");
}

std::optional<Finding> SharpnessDetector::on_step(const StepSignals& s) {
  // Not measured, or a step that does not descend on its own batch (momentum carried it): no
  // parabola to read, and the streak waits for the next measurement.
  if (!std::isfinite(s.step_curvature) || !(s.step_slope < 0) || !(s.step_norm > 0))
    return std::nullopt;
  const double ratio = s.step_curvature / -s.step_slope;
  if (!(ratio > t_.edge_ratio)) {
    ratios_.clear();
    return std::nullopt;
  }
  ratios_.push_back(ratio);
  if (int(ratios_.size()) < t_.sustain_steps) return std::nullopt;
  std::vector<double> sorted = ratios_;
  std::sort(sorted.begin(), sorted.end());
  const double median = sorted[sorted.size() / 2];
  const double sq = s.step_norm * s.step_norm;
  const double sharpness = s.step_curvature / sq, limit = 2 * -s.step_slope / sq;
  // lr_eff scales with the lr (plain or adaptive): dividing by the ratio lands the step near the
  // valley's floor, x sharpness about 1; one significant digit, rounded down.
  const double target = s.lr / median;
  const double scale = std::pow(10.0, std::floor(std::log10(target)));
  const double advised = std::floor(target / scale) * scale;
  return make(kind(), Severity::kWarning, s.step, s.epoch,
              "learning rate past the edge of stability: along the step it takes, the loss "
              "curves with sharpness " +
                  num(sharpness) + ", above the 2/lr_eff = " + num(limit) +
                  " a step of that length can stand (lr_eff x sharpness " + num(median) +
                  ", median of " + std::to_string(ratios_.size()) +
                  " logging steps in a row; stable below 2), so each step overshoots the valley "
                  "it descends into and the loss rises on the very batch it was computed from",
              {{"lr_x_sharpness", median},
               {"sharpness", sharpness},
               {"sharpness_limit", limit},
               {"lr", s.lr}},
              "lower the learning rate to " + num(advised) + " (" +
                  setting_ref("train.lr", num(advised)) +
                  "), where the measured curvature puts "
                  "the step near the valley's floor");
}

std::string SharpnessDetector::save_state() const {
  return nlohmann::json{{"ratios", ratios_}}.dump();
}
void SharpnessDetector::load_state(const std::string& text) {
  ratios_ = numbers_from(nlohmann::json::parse(text).at("ratios"));
}

std::vector<std::unique_ptr<Detector>> default_detectors(const DetectorThresholds& t) {
  std::vector<std::unique_ptr<Detector>> d;
  d.push_back(std::make_unique<NonFiniteDetector>());
  d.push_back(std::make_unique<ExplodingGradientDetector>(t));
  d.push_back(std::make_unique<VanishingGradientDetector>(t));
  d.push_back(std::make_unique<DyingReluDetector>(t));
  d.push_back(std::make_unique<SaturationDetector>(t));
  d.push_back(std::make_unique<LearningRateDetector>(t));
  d.push_back(std::make_unique<OverfittingDetector>(t));
  d.push_back(std::make_unique<UnderfittingDetector>(t));
  d.push_back(std::make_unique<OscillatingLossDetector>(t));
  // Appended: a checkpoint of the detectors above loads into their places.
  d.push_back(std::make_unique<ProbabilityOutputsDetector>());
  d.push_back(std::make_unique<NonNegativeLogitsDetector>());
  d.push_back(std::make_unique<BoundedLogitsDetector>());
  d.push_back(std::make_unique<SymmetricUnitsDetector>(t));
  d.push_back(std::make_unique<StuckParametersDetector>(t));
  d.push_back(std::make_unique<StillLossDetector>(t));
  d.push_back(std::make_unique<FewStepsDetector>(t));
  d.push_back(std::make_unique<UnreachableTargetsDetector>(t));
  d.push_back(std::make_unique<FrozenNormDriftDetector>(t));
  d.push_back(std::make_unique<BatchNoiseDetector>(t));
  d.push_back(std::make_unique<SharpnessDetector>(t));
  return d;
}

}  // namespace trainscope::diagnose
