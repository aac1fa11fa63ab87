#pragma once
// Monitor: the metric a fit ranks its epochs by (TrainState::best, which early stopping and the
// best checkpoint read) and ReduceLROnPlateau watches, named "<split>_<tag>" as Keras and
// Lightning name them: val_loss, val_accuracy, train_loss, val_mae.
#include <map>
#include <optional>
#include <string>

namespace trainscope {

struct TrainState;

struct Monitor {
  std::string name = "val_loss";
  std::string split = "val";  // "train" or "val"
  std::string tag = "loss";
  bool maximize = false;

  // `mode` is "min", "max" or "auto" (max for accuracy, f1, precision, recall and r2; min for
  // everything else). Throws ConfigError naming `field`, the name and what is expected.
  static Monitor parse(const std::string& name, const std::string& mode = "auto",
                       const std::string& field = "monitor");

  // The metric at the current epoch end; nullopt when the split or tag is absent.
  std::optional<double> value(const TrainState& state) const;
  // Whether `value` beats `reference` by more than `min_delta` in this monitor's direction.
  bool improves(double value, double reference, double min_delta = 0.0) const;
  const char* mode_name() const { return maximize ? "max" : "min"; }
  // The same metric of another split, in the same direction: val_loss -> train_loss.
  Monitor of_split(const std::string& other) const;
};

}  // namespace trainscope
