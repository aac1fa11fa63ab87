#include <trainscope/callbacks/early_stopping.h>
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

void EarlyStopping::on_fit_start(TrainState&) {
  best_ = 0.0;
  best_epoch_ = 0;
  wait_ = 0;
  warned_ = false;
  best_state_.clear();
}

void EarlyStopping::on_epoch_end(TrainState& state) {
  auto it = state.val_metrics.find("loss");
  if (it == state.val_metrics.end()) {
    if (!warned_)
      std::cerr << "trainscope: early stopping needs a validation set; it is off for this fit\n";
    warned_ = true;
    return;
  }
  const double value = it->second;
  if (!std::isfinite(value)) {
    state.request_stop(StopReason::kNonFinite, "val_loss is " + std::to_string(value) +
                                                   " at epoch " + std::to_string(state.epoch) +
                                                   "; training diverged");
    return;
  }
  if (best_epoch_ == 0 || value < best_ - options_.min_delta) {
    best_ = value;
    best_epoch_ = state.epoch;
    wait_ = 0;
    if (options_.restore_best) best_state_ = state.model->snapshot();
    return;
  }
  if (++wait_ >= options_.patience)
    state.request_stop(StopReason::kPatience,
                       "val_loss has not improved for " + std::to_string(wait_) + " epochs (best " +
                           fmt(best_) + " at epoch " + std::to_string(best_epoch_) + ")");
}

void EarlyStopping::on_fit_end(TrainState& state) {
  if (!options_.restore_best || best_state_.empty()) return;
  state.model->restore(best_state_);
}

}  // namespace trainscope::callbacks
