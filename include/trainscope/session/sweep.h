#pragma once
// Sweeps: one base configuration and the settings to vary over it, as a grid or as random draws.
// Each trial is a run of its own (<sweep>-001, <sweep>-002, ... under run.dir) whose run.sweep
// setting names the sweep, so the runs table groups them. The plan is kept beside the runs
// (<run.dir>/<sweep>.sweep/plan.toml): starting the same sweep again finishes what a crash, a
// kill or Ctrl-C left (resuming stopped trials from their checkpoints, testing trials whose test
// pass did not run) and never runs a finished trial twice; a sweep of the same name with another
// plan is refused. With sweep.prune = "halving" in the base config, the trials stop poor ones
// early by successive halving (callbacks::SuccessiveHalving; rungs in <sweep>.sweep/rungs.tsv);
// a pruned trial counts as finished.
//
//   ts::Config base = ts::default_config();
//   base.set("train.max_epochs", int64_t{5});
//   ts::SweepOptions o;
//   o.name = "lr-width";
//   o.parameters = {ts::parse_sweep_parameter("train.lr=[0.001, 0.0003]", base),
//                   ts::parse_sweep_parameter("model.hidden=[[64], [128]]", base)};
//   ts::Sweep sweep(base, o);
//   ts::SweepResult r = sweep.run(ts::in_process_trials());  // four runs, one after another
//   std::printf("%s", r.summary.c_str());

#include <trainscope/config.h>

#include <cstdint>
#include <filesystem>
#include <functional>
#include <optional>
#include <string>
#include <utility>
#include <vector>

namespace trainscope {

// A swept setting, as text: "train.lr=[0.001, 0.0003]" (values: a grid's axis, or drawn from in
// random search), "train.lr=loguniform(1e-4, 1e-2)", "train.weight_decay=uniform(0, 0.1)" or
// "train.seed=int(1, 100)" (ranges, random search only).
struct SweepParameter {
  enum class Kind { kValues, kUniform, kLogUniform, kInt };
  std::string key;
  Kind kind = Kind::kValues;
  std::vector<std::string> values;  // kValues: each value as --set text
  double low = 0.0, high = 0.0;     // ranges, inclusive
  std::string text;                 // as given
};
// Throws ConfigError naming the text and what was expected: an unknown key (with the closest
// one), no values, a value the setting does not take (checked against `base`'s schema), a range
// whose ends are out of order or not positive for loguniform.
SweepParameter parse_sweep_parameter(const std::string& text, const Config& base);

enum class SweepMethod { kGrid, kRandom };
inline constexpr EnumName<SweepMethod> kSweepMethodNames[] = {{SweepMethod::kGrid, "grid"},
                                                              {SweepMethod::kRandom, "random"}};

struct SweepOptions {
  std::string name;                        // the sweep's name; its runs are <name>-NNN
  std::vector<SweepParameter> parameters;  // at least one
  SweepMethod method = SweepMethod::kGrid;
  // Random search: how many draws (required). Grid: 0 for every combination.
  int64_t trials = 0;
  uint64_t seed = 0;     // random search: the draws follow it
  int64_t parallel = 1;  // trials at a time (the runner must allow it: in_process_trials does not)
  bool test = true;      // each trial is tested after its fit; a finished one lacking it is tested
};

struct SweepTrial {
  int64_t index = 1;                                          // 1-based
  std::string run_name;                                       // <sweep>-001
  std::vector<std::pair<std::string, std::string>> settings;  // key, value as --set text
  // "pending" (no run yet), "running", "stopped" (Ctrl-C, a kill, a failed save: resumable),
  // "crashed", "finished" (the fit ended: its budget, early stopping, a threshold, a diagnosis;
  // tested unless the trial skips its test), "failed" (the runner returned an error: a bad value,
  // a fit that raised).
  std::string status = "pending";
  std::string stop_reason;     // the run's, e.g. "patience", "max_epochs", "interrupted"
  std::string monitor;         // the value early stopping watched, e.g. "val_loss"
  std::optional<double> best;  // its value at the best epoch
  std::optional<double> test_accuracy, test_loss;
  std::string settings_text() const;  // "train.lr=0.001 model.hidden=[64]"
};

// The trials of `options` over `base`, in order: a grid's combinations (the first parameter
// varies slowest), or `options.trials` random draws (values uniformly, ranges as their kind),
// deterministic in options.seed. Throws ConfigError for an empty plan, a range in a grid, a
// random search without a trial count, or a sweep name that is not a run name.
std::vector<SweepTrial> plan_sweep(const SweepOptions& options, const Config& base);

// What a runner is asked to do with a trial's run.
enum class TrialAction {
  kTrain,   // no run yet: train it with `config`
  kResume,  // stopped or crashed after a checkpoint: resume it exactly
  kTest,    // finished, but its test pass did not run
};
// Runs one trial; returns its exit code (0: done; 130: interrupted, the sweep stops too). Called
// from `parallel` threads at once when the sweep runs trials in parallel.
using TrialRunner = std::function<int(const SweepTrial& trial, TrialAction action,
                                      const Config& config, const std::filesystem::path& run_dir)>;
// Each trial as a Session in this process (train, resume or test), one after another; `test`:
// whether trained and resumed trials run their test pass.
TrialRunner in_process_trials(bool test = true);

struct SweepResult {
  std::vector<SweepTrial> trials;  // in plan order, with their outcome
  int64_t ran = 0;                 // trials this call trained, resumed or tested
  bool interrupted = false;        // a trial was interrupted: the rest were not started
  std::string summary;             // the trials ranked by their monitored value, as printed
};

class Sweep {
 public:
  // Plans the sweep and writes (or checks) its plan file. `base` is the command's config: every
  // setting but the swept ones; run.dir says where the runs go. Throws ConfigError as
  // plan_sweep, and when <run.dir>/<name>.sweep/plan.toml holds another plan.
  Sweep(Config base, SweepOptions options);

  const SweepOptions& options() const { return options_; }
  // The trials with their status read from their runs.
  std::vector<SweepTrial> trials() const;
  // The config a trial trains with: base, its settings (source "sweep"), run.name and run.sweep.
  Config trial_config(const SweepTrial& trial) const;
  std::filesystem::path run_dir(const SweepTrial& trial) const;
  // The trial's settings that differ from the defaults, as a TOML file in the sweep's folder
  // (<run.dir>/<sweep>.sweep/<run>.toml): `trainscope train --config FILE` trains the trial.
  std::filesystem::path write_trial_config(const SweepTrial& trial) const;
  // Runs every trial that is not done, `parallel` at a time. Holds a lock on the sweep while it
  // runs: a second process running the same sweep gets a ConfigError.
  SweepResult run(const TrialRunner& runner);

 private:
  Config base_;
  SweepOptions options_;
  std::filesystem::path runs_dir_, sweep_dir_;
  std::vector<SweepTrial> plan_;
};

// The ranking table of `trials` (best first by their monitored value; unfinished ones last).
std::string sweep_summary(const std::string& name, const std::vector<SweepTrial>& trials);

}  // namespace trainscope
