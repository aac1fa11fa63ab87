#include <trainscope/train/monitor.h>

#include <trainscope/error.h>
#include <trainscope/train/state.h>

#include <cmath>
#include <limits>

namespace trainscope {

Monitor Monitor::parse(const std::string& name, const std::string& mode, const std::string& field) {
  Monitor m;
  m.name = name;
  const auto underscore = name.find('_');
  m.split = underscore == std::string::npos ? "" : name.substr(0, underscore);
  m.tag = underscore == std::string::npos ? "" : name.substr(underscore + 1);
  if ((m.split != "val" && m.split != "train") || m.tag.empty())
    throw ConfigError(field + " = \"" + name +
                      "\" is not a metric name; expected <split>_<metric> such as val_loss, "
                      "val_accuracy, train_loss or val_mae");
  if (mode == "auto") {
    // Scores, higher is better: accuracy (top5_accuracy), f1, precision, recall (_macro,
    // _micro), r2, auroc, miou, exact_match.
    auto starts = [&](const char* p) { return m.tag.rfind(p, 0) == 0; };
    const bool accuracy = m.tag.size() >= 8 && m.tag.compare(m.tag.size() - 8, 8, "accuracy") == 0;
    m.maximize = accuracy || starts("f1") || starts("precision") || starts("recall") ||
                 m.tag == "r2" || m.tag == "auroc" || m.tag == "miou" || m.tag == "exact_match";
  } else if (mode == "min" || mode == "max") {
    m.maximize = mode == "max";
  } else {
    throw ConfigError(field + " mode \"" + mode + "\" is not known; expected min, max or auto");
  }
  return m;
}

std::optional<double> Monitor::value(const TrainState& state) const {
  const MetricMap& metrics = split == "val" ? state.val_metrics : state.train_metrics;
  auto it = metrics.find(tag);
  if (it == metrics.end()) return std::nullopt;
  return it->second;
}

bool Monitor::improves(double value, double reference, double min_delta) const {
  return maximize ? value > reference + min_delta : value < reference - min_delta;
}

Monitor Monitor::of_split(const std::string& other) const {
  Monitor m = *this;
  m.split = other;
  m.name = other + "_" + tag;
  return m;
}

void update_best(TrainState& state) {
  BestEpoch& best = state.best;
  best.improved = false;
  const std::optional<double> value = best.by.value(state);
  if (!value || !std::isfinite(*value)) return;
  if (best.epoch > 0 && !best.by.improves(*value, best.value)) return;
  best.epoch = state.epoch;
  best.value = *value;
  const auto loss = state.val_metrics.find("loss");
  best.val_loss =
      loss == state.val_metrics.end() ? std::numeric_limits<double>::quiet_NaN() : loss->second;
  best.improved = true;
}

}  // namespace trainscope
