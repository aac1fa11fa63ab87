#include <trainscope/track/archive.h>
#include <trainscope/callbacks/early_stopping.h>
#include <trainscope/error.h>
#include <trainscope/models/model.h>

#include <cmath>
#include <iostream>
#include <sstream>

namespace trainscope::callbacks {
namespace {

std::string fmt(double v) {
  std::ostringstream o;
  o.precision(4);
  o << std::fixed << v;
  return o.str();
}

}  // namespace

EarlyStopping::EarlyStopping(EarlyStoppingOptions options) : options_(std::move(options)) {
  if (options_.patience < 0)
    throw ConfigError("early stopping patience " + std::to_string(options_.patience) +
                      " is out of range; expected >= 0");
  if (!(options_.min_delta >= 0))
    throw ConfigError("early stopping min_delta " + std::to_string(options_.min_delta) +
                      " is out of range; expected >= 0");
  if (options_.start_from_epoch < 0)
    throw ConfigError("early stopping start_from_epoch " +
                      std::to_string(options_.start_from_epoch) +
                      " is out of range; expected >= 0");
}

void EarlyStopping::on_fit_start(TrainState&) {
  reference_ = 0.0;
  reference_epoch_ = 0;
  wait_ = 0;
  phase_epoch_ = 0;
  warned_ = false;
  restored_ = false;
  baseline_beaten_ = false;
  best_state_.clear();
}

void EarlyStopping::on_epoch_end(TrainState& state) {
  const Monitor& monitor = state.monitor;
  const std::string& name = monitor.name;
  const std::optional<double> current = monitor.value(state);
  const std::string at = " at epoch " + std::to_string(state.epoch);
  if (!current || state.best.by.name != name) {
    if (!warned_)
      std::cerr << "trainscope: early stopping monitors " << name
                << ", which this fit does not report (no validation set?); it is off for this "
                   "fit\n";
    warned_ = true;
    return;
  }
  if (state.best.improved && options_.restore_best) best_state_ = state.model->snapshot();
  const double value = *current;
  if (!std::isfinite(value)) {
    if (options_.check_finite)
      state.request_stop(StopReason::kNonFinite,
                         name + " is " + std::to_string(value) + at + "; training diverged");
    return;
  }
  if (state.epoch <= options_.start_from_epoch) return;  // warm-up: not monitored yet
  // A new phase of the fit (the backbone unfroze, augmentation started) gets its own patience,
  // judged on its own epochs: what changed can move the metric away from the best before it
  // improves again (the best epoch is still what is restored).
  if (state.phase_epoch > phase_epoch_)
    phase_epoch_ = state.phase_epoch, wait_ = 0, reference_epoch_ = 0;
  if (std::isfinite(options_.divergence_threshold) &&
      monitor.improves(options_.divergence_threshold, value)) {
    state.request_stop(StopReason::kDivergence, name + " = " + fmt(value) + at +
                                                    " is worse than divergence_threshold " +
                                                    fmt(options_.divergence_threshold));
    return;
  }
  // The first monitored epoch counts; later ones improve on the last that counted by more than
  // min_delta. As in Keras, the wait restarts only when an improvement also beats the baseline.
  const bool improved =
      reference_epoch_ == 0 || monitor.improves(value, reference_, options_.min_delta);
  const bool has_baseline = std::isfinite(options_.baseline);
  const bool beats_baseline =
      !has_baseline || monitor.improves(value, options_.baseline, options_.min_delta);
  if (improved) reference_ = value, reference_epoch_ = state.epoch;
  if (improved && beats_baseline) {
    wait_ = 0;
    baseline_beaten_ = true;
  } else {
    ++wait_;
  }
  if (std::isfinite(options_.stopping_threshold) &&
      !monitor.improves(options_.stopping_threshold, value)) {
    state.request_stop(StopReason::kThreshold, name + " = " + fmt(value) + at +
                                                   " reached stopping_threshold " +
                                                   fmt(options_.stopping_threshold));
    return;
  }
  if (wait_ == 0 || wait_ < options_.patience) return;
  const std::string best =
      " (best " + fmt(state.best.value) + " at epoch " + std::to_string(state.best.epoch) + ")";
  if (has_baseline && !baseline_beaten_)
    state.request_stop(StopReason::kPatience, name + " has not beaten the baseline " +
                                                  fmt(options_.baseline) + " in " +
                                                  std::to_string(wait_) + " epochs" + best);
  else
    state.request_stop(StopReason::kPatience,
                       name + " has not improved for " + std::to_string(wait_) + " epochs" + best);
}

void EarlyStopping::restore(TrainState& state) {
  if (!options_.restore_best || best_state_.empty() || restored_ || state.model == nullptr) return;
  state.model->restore(best_state_);
  restored_ = true;
}

void EarlyStopping::on_fit_end(TrainState& state) { restore(state); }

void EarlyStopping::on_exception(TrainState& state, const std::exception_ptr&) {
  try {
    restore(state);
  } catch (...) {
    // The exception that ended the fit is the one to report.
  }
}

void EarlyStopping::on_checkpoint_save(TrainState& state, torch::serialize::OutputArchive& a) {
  a.write("reference", c10::IValue(reference_));
  a.write("reference_epoch", c10::IValue(reference_epoch_));
  a.write("wait", c10::IValue(wait_));
  a.write("warned", c10::IValue(warned_));
  a.write("baseline_beaten", c10::IValue(baseline_beaten_));
  a.write("phase_epoch", c10::IValue(phase_epoch_));
  // The best weights are usually the model's own at the epoch that set them: then the checkpoint's
  // model weights serve, and the copy is not written twice.
  bool same = !best_state_.empty();
  if (same) {
    const auto now = state.model->snapshot();
    for (size_t i = 0; same && i < now.size(); ++i) same = torch::equal(now[i], best_state_[i]);
  }
  a.write("best_is_model", c10::IValue(same));
  if (!same)
    for (size_t i = 0; i < best_state_.size(); ++i)
      a.write("best_state/" + std::to_string(i), best_state_[i], /*is_buffer=*/true);
  a.write("best_state_size", c10::IValue(static_cast<int64_t>(best_state_.size())));
}

void EarlyStopping::on_checkpoint_load(TrainState& state, torch::serialize::InputArchive& a) {
  // Checkpoints from before the best moved to TrainState call the reference "best".
  c10::IValue probe;
  const bool named = a.try_read("reference", probe);
  reference_ = read_double(a, named ? "reference" : "best");
  reference_epoch_ = read_int(a, named ? "reference_epoch" : "best_epoch");
  wait_ = read_int(a, "wait");
  warned_ = read_bool(a, "warned");
  baseline_beaten_ = read_bool(a, "baseline_beaten");
  phase_epoch_ = a.try_read("phase_epoch", probe) ? probe.toInt() : 0;
  const bool same = read_bool(a, "best_is_model");
  const int64_t n = read_int(a, "best_state_size");
  best_state_.clear();
  if (same) {
    // on_checkpoint_load runs after the model's weights are restored.
    best_state_ = state.model->snapshot();
  } else {
    for (int64_t i = 0; i < n; ++i) {
      torch::Tensor t;
      a.read("best_state/" + std::to_string(i), t, /*is_buffer=*/true);
      best_state_.push_back(t.clone());
    }
  }
}

}  // namespace trainscope::callbacks
