#pragma once
// ProgressPrinter: what the console shows during a fit.
#include <trainscope/config.h>
#include <trainscope/train/callback.h>

#include <chrono>
#include <cstdio>
#include <optional>

namespace trainscope::callbacks {

enum class ProgressStyle {
  kBar,    // a live bar per epoch (rate, ETA, loss), redrawn at most 10 times a second
  kPlain,  // no per-batch output
  kOff,    // nothing at all
};

// "auto": a bar when `out` is a terminal, plain otherwise.
ProgressStyle progress_style_from(const std::string& text, std::FILE* out = stdout);

// Prints the settings once at fit start, then one summary line per epoch, the reason the fit
// stopped, and the test report. Reads the loss (a host sync) only when it redraws the bar.
class ProgressPrinter : public Callback {
 public:
  // `settings`, when given, are printed once at fit start with their reasons.
  explicit ProgressPrinter(ProgressStyle style, std::optional<Config> settings = std::nullopt,
                           std::FILE* out = stdout)
      : style_(style), settings_(std::move(settings)), out_(out) {}
  std::string name() const override { return "progress"; }
  CallbackOrder order() const override { return CallbackOrder::kLogging; }

  void on_fit_start(TrainState& state) override;
  void on_epoch_start(TrainState& state) override;
  void on_train_batch_end(TrainState& state) override;
  void on_epoch_end(TrainState& state) override;
  void on_fit_end(TrainState& state) override;
  void on_test_end(TrainState& state, const EvalResult& result) override;
  void on_checkpoint_save(TrainState& state, torch::serialize::OutputArchive& archive) override;
  void on_checkpoint_load(TrainState& state, torch::serialize::InputArchive& archive) override;

 private:
  void draw_bar(TrainState& state, bool final);

  ProgressStyle style_;
  std::optional<Config> settings_;
  std::FILE* out_;
  std::chrono::steady_clock::time_point epoch_start_, last_draw_;
  std::string feature_cache_;  // the head phase's cache line last printed
  int64_t samples_ = 0;
  double best_val_ = 0.0;
  bool has_best_ = false;
};

}  // namespace trainscope::callbacks
