#pragma once
// RunLogger: writes a fit's settings, metrics and outcome to the run store.
#include <trainscope/config.h>
#include <trainscope/train/callback.h>

#include <optional>

namespace trainscope::callbacks {

// At fit start: the resolved settings and meta (name, status "running", start time; on a resume
// the count of resumes and what it resumed from), and where the run comes from: the command line
// (meta "command", from /proc/self/cmdline), the host ("host"), and, when the working directory
// is in a git work tree, its commit ("git.commit"), whether it has uncommitted changes
// ("git.dirty") and their diff against HEAD (result "git"/"diff", at most 1 MiB).
// Every step: the lr of each parameter group (lr, lr/group1, ...). Every `log_every` steps: the
// training loss (one host sync per interval) and the process's system metrics, split "system":
// cpu_percent (all threads: 200 is two cores busy) and rss_mib. Pending points are committed at
// most every 0.5 s, so that the dashboard shows a running run live.
// Every epoch: train and val metrics, epoch time and samples/s.
// At fit end: status (finished, stopped, crashed), stop reason and message, best epoch.
// At test end: test metrics, per-class metrics and the confusion matrix as JSON results.
// Does nothing when the Trainer keeps no run.
class RunLogger : public Callback {
 public:
  // `settings`, when given, are stored with their sources and reasons at fit start.
  explicit RunLogger(int64_t log_every = 50, std::optional<Config> settings = std::nullopt)
      : log_every_(log_every), settings_(std::move(settings)) {}
  std::string name() const override { return "run_logger"; }
  CallbackOrder order() const override { return CallbackOrder::kLogging; }

  void on_fit_start(TrainState& state) override;
  void on_epoch_start(TrainState& state) override;
  void on_train_batch_end(TrainState& state) override;
  void on_epoch_end(TrainState& state) override;
  void on_fit_end(TrainState& state) override;
  void on_test_end(TrainState& state, const EvalResult& result) override;
  void on_exception(TrainState& state, const std::exception_ptr& error) override;

 private:
  int64_t log_every_;
  std::optional<Config> settings_;
  std::chrono::steady_clock::time_point epoch_start_;
  std::chrono::steady_clock::time_point last_flush_;
  int64_t epoch_samples_ = 0;
  // The CPU time and wall time at the last system sample (cpu_percent is over the interval).
  double last_cpu_seconds_ = -1.0;
  std::chrono::steady_clock::time_point last_sample_;
};

}  // namespace trainscope::callbacks
