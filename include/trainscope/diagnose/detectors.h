#pragma once
// Detectors: small pure classes that read the signal history and say, once, what is going wrong.
// No I/O; the Diagnostics callback wires them to the trainer, the console and the run store.
// Thresholds and their sources are documented beside each rule in src/diagnose/detectors.cpp.

#include <trainscope/diagnose/finding.h>
#include <trainscope/diagnose/signals.h>

#include <deque>
#include <memory>
#include <optional>
#include <vector>

namespace trainscope::diagnose {

// Consumes signals in step order; returns a Finding whenever its rule holds. Diagnostics reports
// the first Finding of each kind, and later ones only when more severe, so the console shows
// each problem once.
// Not thread-safe.
class Detector {
 public:
  virtual ~Detector() = default;
  virtual std::string kind() const = 0;
  virtual std::optional<Finding> on_step(const StepSignals&) { return std::nullopt; }
  virtual std::optional<Finding> on_epoch(const EpochSignals&) { return std::nullopt; }
  // The history the rule keeps, as JSON text, for checkpoints; load_state() continues from it, so
  // a resumed fit finds what the uninterrupted one would.
  virtual std::string save_state() const { return "{}"; }
  virtual void load_state(const std::string&) {}
};

// NaN or Inf in the loss or the gradients.
class NonFiniteDetector : public Detector {
 public:
  std::string kind() const override { return "non_finite"; }
  std::optional<Finding> on_step(const StepSignals& s) override;
  std::optional<Finding> on_epoch(const EpochSignals& e) override;
};

// First/last layer gradient-norm ratio above 70, or the global norm growing 100x within a window.
class ExplodingGradientDetector : public Detector {
 public:
  std::string kind() const override { return "exploding_gradients"; }
  std::optional<Finding> on_step(const StepSignals& s) override;

  std::string save_state() const override;
  void load_state(const std::string& state) override;

 private:
  int ratio_streak_ = 0;
  std::deque<double> norms_;
};

// First/last ratio below 1e-3 with the first layer's norm below 1e-4, or mean |g| below 1e-7.
class VanishingGradientDetector : public Detector {
 public:
  std::string kind() const override { return "vanishing_gradients"; }
  std::optional<Finding> on_step(const StepSignals& s) override;

  std::string save_state() const override;
  void load_state(const std::string& state) override;

 private:
  int streak_ = 0;
};

// Validation loss rising while training loss falls; a sustained loss gap; an accuracy gap.
class OverfittingDetector : public Detector {
 public:
  std::string kind() const override { return "overfitting"; }
  std::optional<Finding> on_epoch(const EpochSignals& e) override;

  std::string save_state() const override;
  void load_state(const std::string& state) override;

 private:
  std::vector<EpochSignals> history_;
};

// Training loss near a trivial predictor's, accuracy near chance, or slow convergence, after a
// fair share of the epochs.
class UnderfittingDetector : public Detector {
 public:
  std::string kind() const override { return "underfitting"; }
  std::optional<Finding> on_epoch(const EpochSignals& e) override;

  std::string save_state() const override;
  void load_state(const std::string& state) override;

 private:
  std::vector<EpochSignals> history_;
};

// At least 70% exactly-zero gradient entries in a weight, or over half of a ReLU layer's units
// active for less than 1% of the examples.
class DyingReluDetector : public Detector {
 public:
  std::string kind() const override { return "dying_relu"; }
  std::optional<Finding> on_step(const StepSignals& s) override;

  std::string save_state() const override;
  void load_state(const std::string& state) override;

 private:
  int streak_ = 0;
};

// Over half of a sigmoid/tanh layer's outputs within 1% of their bounds.
class SaturationDetector : public Detector {
 public:
  std::string kind() const override { return "saturated_activations"; }
  std::optional<Finding> on_step(const StepSignals& s) override;

  std::string save_state() const override;
  void load_state(const std::string& state) override;

 private:
  int streak_ = 0;
};

// Training loss going up and down from epoch to epoch by more than 5%.
class OscillatingLossDetector : public Detector {
 public:
  std::string kind() const override { return "oscillating_loss"; }
  std::optional<Finding> on_epoch(const EpochSignals& e) override;

  std::string save_state() const override;
  void load_state(const std::string& state) override;

 private:
  std::vector<double> train_;
};

// Median update-to-weight ratio of the weights outside [1e-5, 1e-1].
class LearningRateDetector : public Detector {
 public:
  std::string kind() const override { return "learning_rate"; }
  std::optional<Finding> on_step(const StepSignals& s) override;

  std::string save_state() const override;
  void load_state(const std::string& state) override;

 private:
  int high_streak_ = 0, low_streak_ = 0;
};

// One of each, in the order their findings are most useful to read.
std::vector<std::unique_ptr<Detector>> default_detectors();

}  // namespace trainscope::diagnose
