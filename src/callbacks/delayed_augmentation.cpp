#include <trainscope/callbacks/delayed_augmentation.h>
#include <trainscope/error.h>
#include <trainscope/track/archive.h>
#include <trainscope/track/run.h>

#include <algorithm>
#include <cmath>
#include <utility>

namespace trainscope::callbacks {

namespace {

double loss_of(const MetricMap& metrics) {
  const auto it = metrics.find("loss");
  return it == metrics.end() ? std::nan("") : it->second;
}

std::string number(double v) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.4g", v);
  return buf;
}

}  // namespace

DelayedAugmentation::DelayedAugmentation(DelayedAugmentationOptions options, std::FILE* out)
    : options_(options), out_(out) {
  if (options_.start_epoch < 0)
    throw ConfigError("delayed augmentation start_epoch " + std::to_string(options_.start_epoch) +
                      " is out of range; expected 0 (when overfitting begins) or a positive epoch");
  if (!(options_.gap >= 0))
    throw ConfigError("delayed augmentation gap " + std::to_string(options_.gap) +
                      " is out of range; expected a share >= 0 such as 0.1");
}

void DelayedAugmentation::on_fit_start(TrainState& state) {
  start_ = options_.start_epoch;
  why_ = start_ > 0 ? "from epoch " + std::to_string(start_) + " as set" : std::string();
  // A checkpoint written before this callback existed augmented from the start: on_checkpoint_load
  // replaces this with the decision of a checkpoint that has one.
  if (start_ == 0 && state.resumed && !state.resumed->file.empty())
    start_ = 1, why_ = "a checkpoint from before delayed augmentation: from the start";
}

void DelayedAugmentation::on_epoch_start(TrainState& state) {
  state.augment_batches = start_ > 0 && state.epoch >= start_;
  enter_phase(state);
}

// Augmented batches are another training distribution: from the start epoch on, early stopping
// judges the fit by that phase's own epochs.
void DelayedAugmentation::enter_phase(TrainState& state) const {
  if (start_ > 1 && state.epoch >= start_) state.phase_epoch = std::max(state.phase_epoch, start_);
}

void DelayedAugmentation::on_epoch_end(TrainState& state) {
  if (start_ > 0) return;
  const double train = loss_of(state.train_metrics), val = loss_of(state.val_metrics);
  if (std::isnan(val)) {
    start(state, state.epoch + 1, "no validation loss to tell when overfitting begins");
  } else if (train > 0 && (val - train) / train > options_.gap) {
    start(state, state.epoch + 1,
          "validation loss " + number(val) + " is " + number(100 * (val - train) / train) +
              "% above training loss " + number(train));
  } else if (!state.best.improved) {
    start(state, state.epoch + 1,
          state.best.by.name + " did not improve on epoch " + std::to_string(state.best.epoch) +
              "'s " + number(state.best.value));
  }
}

void DelayedAugmentation::start(TrainState& state, int64_t epoch, std::string why) {
  start_ = epoch;
  why_ = std::move(why);
  const std::string line = "augmentation from epoch " + std::to_string(start_) + ": " + why_;
  if (state.run) state.run->store().set_meta("data.augment_started", line);
  if (out_ && start_ <= state.max_epochs) {
    std::fprintf(out_, "epoch %lld: %s\n", static_cast<long long>(state.epoch), line.c_str());
    std::fflush(out_);
  }
}

void DelayedAugmentation::on_checkpoint_save(TrainState&,
                                             torch::serialize::OutputArchive& archive) {
  archive.write("start", c10::IValue(start_));
  archive.write("why", c10::IValue(why_));
}

void DelayedAugmentation::on_checkpoint_load(TrainState& state,
                                             torch::serialize::InputArchive& archive) {
  start_ = read_int(archive, "start");
  why_ = read_string(archive, "why");
  enter_phase(state);
}

}  // namespace trainscope::callbacks
