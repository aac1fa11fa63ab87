#pragma once
// Remedies verified by replay (`trainscope diagnose RUN --verify`): for each finding of a run whose
// remedy proposes settings, the run is replayed for a short budget with and without those
// settings, on paired seeds, and the effect on the final validation loss and accuracy is measured
// with its spread.
//
// Where a replay starts: the run is forked from the latest checkpoint it kept at an epoch's end
// before the finding (best.ckpt, epoch-*.ckpt, previous.ckpt, last.ckpt; findings that meet at
// one checkpoint share its baseline), so both arms start from the very weights, optimizer state
// and history the run had there. Each fork is a run of its own: a copy of the run's store up to
// that checkpoint (its curves continue the original's), the checkpoint as its last.ckpt and the
// arm's settings in its config.toml; its store's meta "forked_from" names the original and the
// epoch. Remedies a checkpoint cannot take (the model's architecture or initialization, the data,
// the batch size, the optimizer), findings of the first epoch and runs with no checkpoint before
// the finding replay from the start instead (the same config, so the same initial weights at the
// run's seed). A fork continues on its own seed from the checkpoint (Trainer::resume reseeds when
// train.seed changed): the paired seeds draw different data orders and dropout masks after the
// fork, the same in both arms.
//
// The baseline arm is the sweep <run>-verify-[from<E>-]<N>ep-<S>seeds-base, each remedy the sweep
// <run>-verify-...-<kind>, over train.seed, beside the original run (the dashboard groups each
// sweep's runs). Starting the same verification again reuses the replays that finished (sweeps
// never run a finished trial twice). A remedy that offers alternatives ("dropout or weight
// decay") gets one check per alternative (sweep <run>-verify-...-<kind>-alt<N>); the settings of
// one alternative are applied together, except train.max_epochs: both arms keep the replay's
// budget. A remedy that is more epochs alone is replayed longer than the baseline, by as many
// epochs as it asks beyond the baseline's end, at most as many as the replay has. The report is
// kept as <run>/verify.json and as the original run's result ("verify", "remedies"), which the
// dashboard shows beside each finding.
//
//   ts::VerifyResult r = ts::verify_remedies("runs/cnn-20261206-101500");
//   for (const auto& c : r.checks) std::printf("%s: %s\n", c.kind.c_str(), c.verdict.c_str());

#include <trainscope/session/sweep.h>

#include <cmath>
#include <cstdint>
#include <filesystem>
#include <string>
#include <utility>
#include <vector>

namespace trainscope {

struct VerifyOptions {
  int64_t seeds = 3;  // paired seeds: the run's train.seed and the next ones
  // Epochs each replay trains after its starting point. 0: up to the latest finding's epoch + 2,
  // at least 2, within the run's budget where that leaves 2.
  int64_t epochs = 0;
  std::vector<std::string> kinds;  // the findings to verify (empty: every one with settings)
  bool print = true;               // a line as each replay starts
};

// One replay: its run and what it ended with (NaN: not measured, or not finite).
struct Replay {
  uint64_t seed = 0;
  std::string run_name;
  double val_loss = NAN, val_accuracy = NAN;
  double first_loss = NAN;  // its first logged training loss, where it started
};

struct RemedyCheck {
  std::string kind;     // the finding's
  int alternative = 0;  // 1-based among the alternatives its remedy offers; 0: it offers one
  int64_t epoch = 0;
  std::string remedy;                                         // as the finding says it
  std::vector<std::pair<std::string, std::string>> settings;  // what the replay changes
  // Where both arms start: the epoch of the checkpoint they fork from (0: the run's start), the
  // checkpoint (relative to the run), and why from the start when they do.
  int64_t from_epoch = 0;
  std::string from_checkpoint;
  std::string why_from_start;
  int64_t epochs = 0;               // trained after that point
  std::string base_sweep;           // <run>-verify-...-base
  std::vector<Replay> baseline;     // by seed
  std::string sweep;                // <run>-verify-...-<kind>; or ""
  std::vector<Replay> with_remedy;  // by seed, as the baseline's
  // Paired differences (remedy - baseline) over the seeds: mean and standard deviation, over
  // the pairs where both ended finite (the verdict weighs divergence itself).
  double loss_effect = NAN, loss_spread = NAN;
  double accuracy_effect = NAN, accuracy_spread = NAN;
  // "helped" (the loss fell, significantly by a paired t-test at 95%; or the remedy kept every
  // replay finite and below its starting loss where the baseline diverged), "hurt" (the mirror
  // case, or replays that diverge only with the remedy), "no clear effect", or "not replayed" with
  // the reason in `note` (its remedy is a change of code, not of settings).
  std::string verdict;
  std::string note;
};

struct VerifyResult {
  std::string run_name;
  std::vector<uint64_t> seeds;
  std::vector<RemedyCheck> checks;
  // <run>/verify.json: this call's checks, and an earlier call's other checks on the same seeds.
  std::filesystem::path json;
  std::string summary;       // what the CLI prints
  bool interrupted = false;  // Ctrl-C or SIGTERM stopped a replay: the same call finishes it
};

// Verifies the remedies of the run in `run_dir` (trainscope's own config.toml and run.sqlite).
// `runner` trains each replay (the default: a Session in this process, without the test pass;
// a library user whose run used a model of their own passes a runner that gives it). Throws
// Error when `run_dir` holds no run, ConfigError for a kind the run did not find.
VerifyResult verify_remedies(const std::filesystem::path& run_dir,
                             const VerifyOptions& options = {},
                             const TrialRunner& runner = in_process_trials(false));

}  // namespace trainscope
