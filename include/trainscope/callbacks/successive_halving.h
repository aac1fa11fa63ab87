#pragma once
// SuccessiveHalving: early termination of a sweep's poor trials, the asynchronous successive
// halving of ASHA (Li et al., "A System for Massively Parallel Hyperparameter Tuning", 2020) and
// Optuna's SuccessiveHalvingPruner. Rungs sit at epochs min_epochs * factor^k. A trial reaching a
// rung records its monitored value there in a file the sweep's trials share, and goes on only if
// that value is among the best 1/factor of all values recorded at the rung so far (by every
// trial, itself included); a trial behind them stops with StopReason::kPruned. Trials run one
// after another see the same earlier trials each time, so a sweep prunes the same trials on every
// run; trials run in parallel compare with whatever has been recorded when they reach the rung.
#include <trainscope/train/callback.h>

#include <cstdint>
#include <filesystem>
#include <optional>
#include <string>
#include <vector>

namespace trainscope::callbacks {

struct SuccessiveHalvingOptions {
  // The rungs file the sweep's trials share (<run.dir>/<sweep>.sweep/rungs.tsv). Required.
  std::filesystem::path rungs_file;
  std::string trial;       // this trial's run name, as recorded in the file. Required.
  int64_t min_epochs = 1;  // the first rung (epochs), >= 1
  int64_t factor = 3;      // keeps the best 1/factor at each rung; rungs grow by it. >= 2
};

// One trial's value at a rung, as the rungs file holds it.
struct RungRecord {
  int64_t epoch = 0;
  std::string trial;
  double value = 0.0;
};

// The decision at one rung, from the values recorded there (the trial's own included).
struct RungDecision {
  bool prune = false;
  int64_t rank = 0;     // 1-based: 1 + how many recorded values are strictly better
  int64_t trials = 0;   // values recorded at the rung
  int64_t keep = 0;     // how many go on: max(1, trials / factor); all while trials < factor
  double cutoff = 0.0;  // the worst value that goes on
};
// Pure: `value` against `others` (the other trials' values at the rung) in the direction of
// `maximize`. Fewer than `factor` values at the rung prune nothing: too few to rank.
RungDecision decide_rung(double value, const std::vector<double>& others, int64_t factor,
                         bool maximize);

// The rung epochs below `max_epochs` (a rung at the last epoch would stop nothing).
std::vector<int64_t> rung_epochs(int64_t min_epochs, int64_t factor, int64_t max_epochs);

// Reads and writes the rungs file under an exclusive lock (flock on <file>.lock): records the
// trial's value at the rung (replacing what a killed and resumed attempt wrote) and returns every
// record, its own included. Writes atomically: a crash never leaves a torn file. Throws
// trainscope::Error naming the file when it cannot be read or written, and for a line it cannot
// parse (file, line, text).
std::vector<RungRecord> record_rung(const std::filesystem::path& rungs_file,
                                    const RungRecord& record);

// At each rung epoch's end: records the trial's best monitored value so far (TrainState::best,
// robust to one noisy epoch) and requests a stop (kPruned) when decide_rung says so, with a
// message that names the rung, the rank and the cutoff; prints it to `out` (nullptr: silently).
// An epoch before any monitored value records nothing. Order kUser: before early stopping and
// checkpointing, so a checkpoint records the decision. Not for data-parallel fits (each rank
// would decide alone): the Session adds it to single-process trials only. Throws ConfigError for
// options out of range.
class SuccessiveHalving : public Callback {
 public:
  explicit SuccessiveHalving(SuccessiveHalvingOptions options, std::FILE* out = stdout);
  std::string name() const override { return "successive_halving"; }

  void on_epoch_end(TrainState& state) override;

 private:
  SuccessiveHalvingOptions options_;
  std::FILE* out_;
};

}  // namespace trainscope::callbacks
