#include <trainscope/diagnose/finding.h>
#include <trainscope/error.h>
#include <trainscope/session/session.h>
#include <trainscope/session/verify.h>
#include <trainscope/track/checkpoint_file.h>
#include <trainscope/track/payload.h>
#include <trainscope/track/run.h>
#include <trainscope/track/run_store.h>
#include <trainscope/track/store_reader.h>

#include <nlohmann/json.hpp>

#include <algorithm>
#include <cstdio>
#include <fstream>
#include <limits>
#include <map>
#include <optional>
#include <set>
#include <sstream>

namespace trainscope {
namespace fs = std::filesystem;
namespace {

int severity_rank(const std::string& s) { return s == "error" ? 2 : s == "warning" ? 1 : 0; }

// Where a replay starts: the run's start, or a checkpoint it kept at an epoch's end.
struct Origin {
  int64_t epoch = 0, step = 0;  // 0: the start
  fs::path checkpoint;          // the file forked from; empty from the start
  int64_t epochs = 0;           // trained after the origin
  std::string prefix;           // <run>-verify-[from<E>-]<N>ep-<S>seeds-
};

// Settings a checkpoint takes on resume: they change how the next steps train, not what the
// checkpoint holds (the model's architecture and initial weights, the data, the batches of an
// epoch, the optimizer's kind).
bool forkable(const std::string& key) {
  static const std::set<std::string> keys = {"train.lr",
                                             "train.weight_decay",
                                             "train.grad_clip",
                                             "train.label_smoothing",
                                             "train.class_weights",
                                             "train.max_epochs"};
  return keys.count(key) > 0 || key.rfind("diagnose.", 0) == 0;
}

// The latest checkpoint in `run_dir` taken at the end of an epoch before `before_epoch` whose
// payload verifies; at a tie the first by name (the files of one epoch hold the same state).
// None, with the reason in `why_not`, when there is none or the run's are a data-parallel job's
// (a fork resumes as one process).
std::optional<Origin> fork_point(const fs::path& run_dir, int64_t before_epoch,
                                 std::string& why_not) {
  why_not =
      "the run kept no checkpoint from an epoch's end before epoch " + std::to_string(before_epoch);
  std::vector<std::pair<track::CheckpointInfo, fs::path>> candidates;
  std::error_code ec;
  for (const auto& e : fs::directory_iterator(run_dir / "checkpoints", ec)) {
    if (e.path().extension() != ".ckpt") continue;
    try {
      auto info = track::read_checkpoint_info(e.path());
      if (info.epoch_complete && info.epoch >= 1 && info.epoch < before_epoch)
        candidates.emplace_back(std::move(info), e.path());
    } catch (const Error&) {  // damaged, or from a newer trainscope: not a state to fork from
    }
  }
  std::sort(candidates.begin(), candidates.end(), [](const auto& a, const auto& b) {
    return a.first.epoch != b.first.epoch ? a.first.epoch > b.first.epoch : a.second < b.second;
  });
  for (const auto& [info, file] : candidates) {
    std::optional<int64_t> world;
    try {
      world = track::PayloadReader::of_file(file).counters().world_size;
    } catch (const std::exception&) {  // damaged, or not a payload this build reads
      continue;
    }
    if (world && *world > 1) {
      why_not = "the run's checkpoints belong to a job of " + std::to_string(*world) +
                " processes, and a fork resumes as one";
      return std::nullopt;
    }
    Origin o;
    o.epoch = info.epoch;
    o.step = info.step;
    o.checkpoint = file;
    return o;
  }
  return std::nullopt;
}

// A checkpoint is never written in place (a new state goes to a temporary file renamed over the
// old name), so the forks of a run can share its files: a hard link, or a copy across file
// systems.
void link_or_copy(const fs::path& file, const fs::path& to) {
  std::error_code ec;
  fs::create_hard_link(file, to, ec);
  if (ec) fs::copy_file(file, to);
}

// Makes `dir` a fork of the run in `from` at `origin`, to be resumed with `config`: the run's
// files beside its store (a TorchScript model's source/, ...), its store (the resume cuts it back
// to the checkpoint's mark), the checkpoints it kept up to the origin (the checkpoint's own view
// of checkpoints/) with the origin's as last.ckpt, and `config` as config.toml. Built in a
// hidden folder and renamed into place: `dir` is a whole fork or absent.
void make_fork(const fs::path& from, const fs::path& dir, const Origin& origin,
               const Config& config) {
  const fs::path tmp = dir.parent_path() / ("." + dir.filename().string() + ".forking");
  std::error_code ec;
  fs::remove_all(tmp, ec);
  try {
    fs::create_directories(tmp / "checkpoints");
    for (const auto& e : fs::directory_iterator(from)) {
      const std::string name = e.path().filename().string();
      if (name == "checkpoints" || name == "config.toml" || name == "verify.json" ||
          name.rfind("run.sqlite", 0) == 0 || name.rfind("events.out.tfevents", 0) == 0 ||
          name.rfind(".", 0) == 0)
        continue;
      // A TorchScript model's source/model.pt is written once, atomically: shared as a hard link
      // too. Other files are copied: nothing promises they are never rewritten in place.
      std::error_code linked = std::make_error_code(std::errc::operation_not_supported);
      if (name == "source")
        fs::copy(e.path(), tmp / name,
                 fs::copy_options::recursive | fs::copy_options::create_hard_links, linked);
      if (linked) {
        fs::remove_all(tmp / name, ec);
        fs::copy(e.path(), tmp / name, fs::copy_options::recursive);
      }
    }
    for (const auto& e : fs::directory_iterator(from / "checkpoints")) {
      const std::string name = e.path().filename().string();
      if (e.path().extension() != ".ckpt" || name == "last.ckpt" || name == "previous.ckpt")
        continue;
      try {
        if (track::read_checkpoint_info(e.path()).step > origin.step) continue;
      } catch (const Error&) {
        continue;
      }
      link_or_copy(e.path(), tmp / "checkpoints" / name);
    }
    link_or_copy(origin.checkpoint, tmp / "checkpoints" / "last.ckpt");
    track::RunStore(from / "run.sqlite", track::RunStore::Mode::kReadOnly)
        .copy_to(tmp / "run.sqlite");
    {
      track::RunStore store(tmp / "run.sqlite");
      // A stopped run, as the sweep resumes it; its history is the original's until the fork.
      store.set_meta("name", dir.filename().string());
      store.set_meta("status", "stopped");
      store.set_meta("stop_reason", "interrupted");
      store.set_meta("stop_message", "a fork, not yet resumed");
      store.set_meta("forked_from", from.filename().string());
      store.set_meta("forked_epoch", std::to_string(origin.epoch));
      store.set_meta("forked_at", origin.checkpoint.filename().string() + " (epoch " +
                                      std::to_string(origin.epoch) + ", step " +
                                      std::to_string(origin.step) + ")");
      // Its own start and duration; the command that made it is diagnose --verify, not the
      // original's (forked_from names that run).
      store.set_meta("started_at", std::to_string(track::wall_time_now()));
      store.erase_meta(
          {"ended_at", "resumes", "resumed_at", "resumed_from", "checkpoint_error", "command"});
      store.erase_results("test");
      store.erase_results("verify");
    }
    track::write_text_atomically(tmp / "config.toml", config.to_toml());
    fs::rename(tmp, dir);
  } catch (const fs::filesystem_error& e) {
    fs::remove_all(tmp, ec);
    throw Error("cannot fork run " + from.string() + " into " + dir.string() + ": " + e.what());
  } catch (...) {
    fs::remove_all(tmp, ec);
    throw;
  }
}

// The last finite value of split/tag in a run's store after `epoch` (NaN when none).
double last_value(track::StoreReader& store, const std::string& split, const std::string& tag,
                  int64_t epoch) {
  double v = NAN;
  store.metrics_of(split, tag, [&](const track::MetricRowView& row) {
    if (row.epoch > epoch) v = row.value;
  });
  return std::isfinite(v) ? v : NAN;
}

struct Arm {
  std::string sweep;
  std::vector<Replay> replays;
  std::string problem;  // a replay that did not finish
  bool interrupted = false;
};

// Runs the arm's sweep over `seeds` (each trial a fork of `run_dir` at `origin`, unless it starts
// from the start) and reads each replay's final validation loss and accuracy.
Arm run_arm(const fs::path& run_dir, const Origin& origin, const Config& config,
            const std::string& name, const std::vector<uint64_t>& seeds, const TrialRunner& runner,
            bool print) {
  Arm arm;
  arm.sweep = name;
  std::string values;
  for (auto s : seeds) values += (values.empty() ? "" : ", ") + std::to_string(s);
  SweepOptions o;
  o.name = name;
  o.parameters = {parse_sweep_parameter("train.seed=[" + values + "]", config)};
  o.test = false;
  Sweep sweep(config, o);
  if (!origin.checkpoint.empty())
    for (const auto& t : sweep.trials())
      if (!fs::exists(sweep.run_dir(t)))
        make_fork(run_dir, sweep.run_dir(t), origin, sweep.trial_config(t));
  const TrialRunner quiet = [&](const SweepTrial& trial, TrialAction action, const Config& c,
                                const fs::path& dir) {
    if (print) {
      std::printf("  replay %s (%s)\n", trial.run_name.c_str(), trial.settings_text().c_str());
      std::fflush(stdout);
    }
    return runner(trial, action, c, dir);
  };
  auto result = sweep.run(quiet);
  arm.interrupted = result.interrupted;
  for (size_t i = 0; i < result.trials.size() && i < seeds.size(); ++i) {
    const auto& t = result.trials[i];
    Replay r;
    r.seed = seeds[i];
    r.run_name = t.run_name;
    if (t.status != "finished") {
      arm.problem = "replay " + t.run_name + " " + t.status;
    } else {
      // A fork's store holds the original's history up to the origin: only what came after
      // is the replay's.
      track::StoreReader store(sweep.run_dir(t) / "run.sqlite");
      store.metrics_of("train", "step_loss", [&](const track::MetricRowView& row) {
        if (std::isnan(r.first_loss) && row.step > origin.step) r.first_loss = row.value;
      });
      r.val_loss = last_value(store, "val", "loss", origin.epoch);
      r.val_accuracy = last_value(store, "val", "accuracy", origin.epoch);
      if (std::isnan(r.val_loss)) {  // no validation split: the training loss says as much
        r.val_loss = last_value(store, "train", "loss", origin.epoch);
        r.val_accuracy = last_value(store, "train", "accuracy", origin.epoch);
      }
    }
    arm.replays.push_back(r);
  }
  return arm;
}

// Mean and standard deviation (n - 1) of `d`; NaN when empty.
std::pair<double, double> mean_sd(const std::vector<double>& d) {
  if (d.empty()) return {NAN, NAN};
  double mean = 0;
  for (double v : d) mean += v;
  mean /= double(d.size());
  double ss = 0;
  for (double v : d) ss += (v - mean) * (v - mean);
  return {mean, d.size() > 1 ? std::sqrt(ss / double(d.size() - 1)) : 0.0};
}

std::string num(double v, int digits = 4) {
  if (!std::isfinite(v)) return std::isnan(v) ? "n/a" : (v > 0 ? "inf" : "-inf");
  if (std::fabs(v) < 1e-12) v = 0;  // a difference of equal means, up to rounding
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.*g", digits, v);
  return buf;
}

std::string mean_of(const std::vector<Replay>& replays, double Replay::*field) {
  double sum = 0;
  int n = 0, bad = 0;
  for (const auto& r : replays) {
    if (std::isfinite(r.*field))
      sum += r.*field, ++n;
    else
      ++bad;
  }
  if (bad && field == &Replay::val_loss)
    return bad == int(replays.size()) ? "diverged" : "diverged in " + std::to_string(bad);
  return n ? num(sum / n) : "n/a";
}

// The 97.5% quantile of Student's t with `df` degrees of freedom (df >= 1).
double t_quantile_975(int64_t df) {
  static const double table[] = {12.706, 4.303, 3.182, 2.776, 2.571, 2.447, 2.365, 2.306,
                                 2.262,  2.228, 2.201, 2.179, 2.160, 2.145, 2.131, 2.120,
                                 2.110,  2.101, 2.093, 2.086, 2.080, 2.074, 2.069, 2.064,
                                 2.060,  2.056, 2.052, 2.048, 2.045, 2.042};
  if (df < 1) return NAN;
  return df <= 30 ? table[df - 1] : 1.96 + 2.4 / double(df);  // within 0.01 past 30
}

// Paired effects and the verdict of `check` against `base`.
void judge(RemedyCheck& check, const std::vector<Replay>& base) {
  std::vector<double> loss, accuracy;
  bool rescued = false, all_finite = true;
  int broken = 0;  // finite without the remedy, diverged with it
  for (size_t i = 0; i < base.size() && i < check.with_remedy.size(); ++i) {
    const double b = base[i].val_loss, r = check.with_remedy[i].val_loss;
    // Finite, and below where its training started: it learned something.
    const double start = check.with_remedy[i].first_loss;
    all_finite = all_finite && std::isfinite(r) && (!std::isfinite(start) || r < start);
    rescued = rescued || (!std::isfinite(b) && std::isfinite(r));
    broken += std::isfinite(b) && !std::isfinite(r);
    if (std::isfinite(b) && std::isfinite(r)) loss.push_back(r - b);
    const double ba = base[i].val_accuracy, ra = check.with_remedy[i].val_accuracy;
    if (std::isfinite(ba) && std::isfinite(ra)) accuracy.push_back(ra - ba);
  }
  std::tie(check.loss_effect, check.loss_spread) = mean_sd(loss);
  std::tie(check.accuracy_effect, check.accuracy_spread) = mean_sd(accuracy);
  if (rescued && all_finite) {
    check.verdict = "helped";
    check.note =
        "with the remedy every replay stayed finite and learned; without it training diverged";
    return;
  }
  if (broken > 0 && !rescued) {
    check.verdict = "hurt";
    check.note = "with the remedy " + std::to_string(broken) + " of " +
                 std::to_string(base.size()) + " replays diverged; without it none did";
    return;
  }
  if (loss.empty()) {
    check.verdict = "no clear effect";
    check.note = "no pair of finite replays to compare";
    return;
  }
  // A paired t-test at 95% (two-sided): the effect must exceed t(n - 1) standard errors, where
  // twice the standard error would call 18% of comparisons of two equal arms an effect at 3 seeds.
  // With one seed, a 1% change of the baseline's loss.
  double base_mean = 0;
  for (const auto& b : base) base_mean += std::isfinite(b.val_loss) ? b.val_loss / base.size() : 0;
  const double margin = loss.size() > 1 ? t_quantile_975(int64_t(loss.size()) - 1) *
                                              check.loss_spread / std::sqrt(double(loss.size()))
                                        : 0.01 * std::fabs(base_mean);
  if (check.loss_effect < 0 && check.loss_effect + margin < 0)
    check.verdict = "helped";
  else if (check.loss_effect > 0 && check.loss_effect - margin > 0)
    check.verdict = "hurt";
  else
    check.verdict = "no clear effect";
}

}  // namespace

VerifyResult verify_remedies(const fs::path& run_dir, const VerifyOptions& options,
                             const TrialRunner& runner) {
  if (!fs::exists(run_dir / "run.sqlite"))
    throw Error(run_dir.string() + " holds no run (no run.sqlite)");
  if (options.seeds < 1 || options.seeds > 20)
    throw ConfigError("--seeds " + std::to_string(options.seeds) + ": expected 1 to 20 seeds");
  if (options.epochs < 0)
    throw ConfigError("--epochs " + std::to_string(options.epochs) + ": expected at least 1");
  VerifyResult result;
  result.run_name = run_dir.filename().string();

  // Each finding once, at its most severe; the auto-remedy's own records are not findings.
  std::map<std::string, track::FindingRecord> findings;
  std::vector<std::string> order;
  {
    track::StoreReader store(run_dir / "run.sqlite");
    for (const auto& sf : store.findings()) {
      const auto& f = sf.finding;
      if (f.kind == "remedy") continue;
      auto it = findings.find(f.kind);
      if (it == findings.end()) {
        findings[f.kind] = f;
        order.push_back(f.kind);
      } else if (severity_rank(f.severity) > severity_rank(it->second.severity)) {
        it->second = f;
      }
    }
  }
  for (const auto& k : options.kinds)
    if (!findings.count(k)) {
      std::string found;
      for (const auto& o : order) found += (found.empty() ? "" : ", ") + o;
      throw ConfigError("run " + result.run_name + " has no finding '" + k +
                        "'; it found: " + (found.empty() ? "nothing" : found));
    }
  std::vector<std::string> chosen;
  for (const auto& k : order)
    if (options.kinds.empty() || std::count(options.kinds.begin(), options.kinds.end(), k))
      chosen.push_back(k);

  Config base = Session::of_run(run_dir).config();
  base.set("ui.dashboard", false, "verify", "replays run without a dashboard of their own");
  base.set("ui.progress", std::string("off"), "verify", "one line per replay");
  const auto seed0 = static_cast<uint64_t>(base.get_int("train.seed"));
  for (int64_t i = 0; i < options.seeds; ++i) result.seeds.push_back(seed0 + uint64_t(i));

  // One check per alternative the remedy offers ("dropout or weight decay": two replays); the
  // ones that cannot be replayed say why.
  std::vector<RemedyCheck> checks;
  for (const auto& k : chosen) {
    const auto& f = findings[k];
    auto alternatives = diagnose::setting_alternatives(f.remedy);
    if (alternatives.empty()) alternatives.emplace_back();
    for (size_t a = 0; a < alternatives.size(); ++a) {
      RemedyCheck c;
      c.kind = k;
      c.alternative = alternatives.size() > 1 ? int(a + 1) : 0;
      c.epoch = f.epoch;
      c.remedy = diagnose::name_settings(f.remedy);
      c.settings = alternatives[a];
      // A remedy that is more epochs alone ("or train longer ({train.max_epochs=34})") is
      // measured as a longer replay; beside other settings, both arms keep the replay's budget.
      if (!(c.settings.size() == 1 && c.settings[0].first == "train.max_epochs"))
        c.settings.erase(
            std::remove_if(c.settings.begin(), c.settings.end(),
                           [](const auto& kv) { return kv.first == "train.max_epochs"; }),
            c.settings.end());
      if (c.settings.empty()) {
        c.verdict = "not replayed";
        c.note = "its remedy is a change of code or data, not of settings";
      } else {
        try {
          Config with = base;
          for (const auto& [key, value] : c.settings)
            with.set_from_string(key + "=" + value, "remedy for " + k);
        } catch (const ConfigError& e) {
          c.verdict = "not replayed";
          c.note = std::string("this run does not take the remedy's settings: ") + e.what();
        }
      }
      checks.push_back(c);
    }
  }

  // Where each check starts: a check whose settings a checkpoint takes, on a finding after the
  // first epoch, forks from the latest checkpoint the run kept before its finding (checks that
  // meet at one checkpoint share its baseline); the others replay from the start.
  auto replayed = [](const RemedyCheck& c) { return c.verdict.empty(); };
  auto takes_fork = [](const RemedyCheck& c) {
    return c.epoch >= 2 && std::all_of(c.settings.begin(), c.settings.end(),
                                       [](const auto& kv) { return forkable(kv.first); });
  };
  std::map<int64_t, std::pair<std::optional<Origin>, std::string>> before;  // by finding epoch
  std::map<int64_t, Origin> forks;  // by the checkpoint's epoch
  std::map<int64_t, std::vector<size_t>> at_fork;
  Origin start;
  std::vector<size_t> at_start;
  for (size_t i = 0; i < checks.size(); ++i) {
    auto& c = checks[i];
    if (!replayed(c)) continue;
    if (takes_fork(c)) {
      auto it = before.find(c.epoch);
      if (it == before.end()) {
        std::string why_not;
        auto point = fork_point(run_dir, c.epoch, why_not);
        it = before.emplace(c.epoch, std::make_pair(std::move(point), why_not)).first;
      }
      if (const auto& point = it->second.first) {
        forks.emplace(point->epoch, *point);
        at_fork[point->epoch].push_back(i);
        continue;
      }
      c.why_from_start = it->second.second;
    }
    at_start.push_back(i);
    std::string keys;
    for (const auto& [key, value] : c.settings)
      if (!forkable(key)) keys += (keys.empty() ? "" : " or ") + key;
    if (!keys.empty())
      c.why_from_start = "a checkpoint cannot take " + keys;
    else if (c.epoch <= 1)
      c.why_from_start = "a finding before the first epoch's end";
  }
  const int64_t run_epochs = base.get_int("train.max_epochs");
  auto plan_origin = [&](Origin& o, const std::vector<size_t>& members) {
    int64_t latest = 0;
    for (size_t i : members) latest = std::max(latest, checks[i].epoch);
    if (options.epochs > 0)
      o.epochs = options.epochs;
    else if (o.epoch == 0)
      o.epochs = std::clamp<int64_t>(latest + 2, std::min<int64_t>(2, run_epochs), run_epochs);
    else
      o.epochs =
          std::clamp<int64_t>(latest - o.epoch + 2, 2, std::max<int64_t>(2, run_epochs - o.epoch));
    o.prefix = result.run_name + "-verify-" +
               (o.epoch > 0 ? "from" + std::to_string(o.epoch) + "-" : std::string()) +
               std::to_string(o.epochs) + "ep-" + std::to_string(options.seeds) + "seeds-";
    for (size_t i : members) {
      checks[i].from_epoch = o.epoch;
      checks[i].epochs = o.epochs;
      checks[i].from_checkpoint =
          o.checkpoint.empty() ? "" : (fs::path("checkpoints") / o.checkpoint.filename()).string();
    }
  };
  for (auto& [epoch, origin] : forks) plan_origin(origin, at_fork[epoch]);
  plan_origin(start, at_start);

  std::ostringstream out;
  out << "remedies of run " << result.run_name
      << " verified by replay, with and without each remedy, on seeds";
  for (auto s : result.seeds) out << " " << s;
  out << "\n";
  if (options.print) {
    std::printf("%s", out.str().c_str());
    std::fflush(stdout);
  }

  // Each origin's baseline, then its checks.
  std::vector<std::pair<Origin*, const std::vector<size_t>*>> origins;
  for (auto& [epoch, origin] : forks) origins.emplace_back(&origin, &at_fork[epoch]);
  if (!at_start.empty()) origins.emplace_back(&start, &at_start);
  auto interrupted = [&] {
    result.interrupted = true;
    result.checks = checks;
    result.summary = out.str() + "  interrupted: the same command finishes the replays\n";
    return result;
  };
  for (auto& [origin, members] : origins) {
    Config config = base;
    config.set("train.max_epochs", origin->epoch + origin->epochs, "verify",
               origin->epoch > 0 ? "a short replay from epoch " + std::to_string(origin->epoch)
                                 : std::string("a short replay from the start"));
    if (options.print) {
      std::printf("  %lld epoch%s %s\n", static_cast<long long>(origin->epochs),
                  origin->epochs == 1 ? "" : "s",
                  origin->epoch > 0 ? ("from epoch " + std::to_string(origin->epoch) + " (" +
                                       origin->checkpoint.filename().string() + ")")
                                          .c_str()
                                    : "from the start");
      std::fflush(stdout);
    }
    const Arm baseline = run_arm(run_dir, *origin, config, origin->prefix + "base", result.seeds,
                                 runner, options.print);
    if (baseline.interrupted) return interrupted();
    for (size_t i : *members) {
      RemedyCheck& c = checks[i];
      c.base_sweep = baseline.sweep;
      c.baseline = baseline.replays;
      if (!baseline.problem.empty()) {
        c.verdict = "not replayed";
        c.note = "the baseline did not finish: " + baseline.problem;
        continue;
      }
      Config with = config;
      for (const auto& [key, value] : c.settings)
        with.set_from_string(key + "=" + value, "remedy for " + c.kind);
      if (c.settings.size() == 1 && c.settings[0].first == "train.max_epochs") {
        // Train longer: the remedy's epochs beyond the baseline's, at most as many again.
        const int64_t baseline_end = origin->epoch + origin->epochs;
        const int64_t more =
            std::min(with.get_int("train.max_epochs") - baseline_end, origin->epochs);
        if (more < 1) {
          c.verdict = "not replayed";
          c.note = "the baseline replay already trains as long as the remedy asks";
          continue;
        }
        with.set("train.max_epochs", baseline_end + more, "verify",
                 "the remedy's longer training, at most twice the replay");
        c.note = std::to_string(more) + " more epoch" + (more == 1 ? "" : "s") +
                 " than the baseline, whose replay ends at epoch " + std::to_string(baseline_end);
      }
      const std::string arm_name =
          origin->prefix + c.kind +
          (c.alternative > 0 ? "-alt" + std::to_string(c.alternative) : "");
      Arm arm = run_arm(run_dir, *origin, with, arm_name, result.seeds, runner, options.print);
      if (arm.interrupted) return interrupted();
      c.sweep = arm.sweep;
      c.with_remedy = arm.replays;
      if (!arm.problem.empty()) {
        c.verdict = "not replayed";
        c.note = arm.problem;
      } else {
        judge(c, c.baseline);
      }
    }
  }
  result.checks = checks;

  // The report: per origin its baseline, then per check its settings, the remedy arm's means,
  // the paired effects and the verdict; the checks not replayed last.
  std::ostringstream report;
  const std::string n_seeds =
      std::to_string(result.seeds.size()) + " seed" + (result.seeds.size() == 1 ? "" : "s");
  for (const auto& [origin, members] : origins) {
    const RemedyCheck& first = checks[members->front()];
    report << "  " << origin->epochs << " epoch" << (origin->epochs == 1 ? "" : "s") << " ";
    if (origin->epoch > 0) {
      report << "from epoch " << origin->epoch << " (forked from " << first.from_checkpoint << ")";
    } else {
      // "a checkpoint cannot take model.hidden or train.batch_size; the run kept no ..."
      std::set<std::string> keys, others;
      for (size_t i : *members) {
        bool unforkable = false;
        for (const auto& [key, value] : checks[i].settings)
          if (!forkable(key)) keys.insert(key), unforkable = true;
        if (!unforkable) others.insert(checks[i].why_from_start);
      }
      std::string why;
      for (const auto& k : keys) why += (why.empty() ? "a checkpoint cannot take " : " or ") + k;
      for (const auto& w : others) why += (why.empty() ? "" : "; ") + w;
      report << "from the start (" << why << ")";
    }
    report << "; baseline (" << first.base_sweep << "): val_loss "
           << mean_of(first.baseline, &Replay::val_loss) << ", val_accuracy "
           << mean_of(first.baseline, &Replay::val_accuracy) << "\n";
    for (size_t i : *members) {
      const RemedyCheck& c = checks[i];
      report << "    " << c.kind
             << (c.alternative > 0 ? ", alternative " + std::to_string(c.alternative) : "")
             << " (epoch " << c.epoch << "): ";
      std::string settings;
      for (const auto& [key, value] : c.settings)
        settings += (settings.empty() ? "" : ", ") + diagnose::config_key_name(key, value);
      if (c.sweep.empty()) {
        report << settings << ": " << c.verdict << ": " << c.note << "\n";
        continue;
      }
      const bool diverged = std::isnan(c.loss_effect) && c.verdict == "helped";
      report << settings << " (" << c.sweep << ")\n      val_loss "
             << mean_of(c.with_remedy, &Replay::val_loss) << ", effect "
             << (diverged ? std::string("finite where the baseline diverged")
                          : num(c.loss_effect) + " +- " + num(c.loss_spread, 2))
             << "; val_accuracy " << mean_of(c.with_remedy, &Replay::val_accuracy) << ", effect "
             << num(c.accuracy_effect) << " +- " << num(c.accuracy_spread, 2) << " (" << n_seeds
             << "): " << c.verdict << (c.note.empty() ? "" : " (" + c.note + ")") << "\n";
    }
  }
  for (const auto& c : checks)
    if (c.verdict == "not replayed" && c.base_sweep.empty())
      report << "  " << c.kind
             << (c.alternative > 0 ? ", alternative " + std::to_string(c.alternative) : "")
             << " (epoch " << c.epoch << "): not replayed: " << c.note << "\n";
  if (checks.empty()) report << "  the run has no findings to verify\n";

  nlohmann::json j;
  j["run"] = result.run_name;
  j["seeds"] = result.seeds;
  auto replays = [](const std::vector<Replay>& rs) {
    nlohmann::json a = nlohmann::json::array();
    for (const auto& r : rs)
      a.push_back({{"seed", r.seed},
                   {"run", r.run_name},
                   {"val_loss", std::isfinite(r.val_loss) ? nlohmann::json(r.val_loss) : nullptr},
                   {"val_accuracy",
                    std::isfinite(r.val_accuracy) ? nlohmann::json(r.val_accuracy) : nullptr}});
    return a;
  };
  auto number = [](double v) { return std::isfinite(v) ? nlohmann::json(v) : nlohmann::json(); };
  j["checks"] = nlohmann::json::array();
  for (const auto& c : checks) {
    nlohmann::json s = nlohmann::json::object();
    for (const auto& [key, value] : c.settings) s[key] = value;
    j["checks"].push_back({{"kind", c.kind},
                           {"alternative", c.alternative},
                           {"epoch", c.epoch},
                           {"remedy", c.remedy},
                           {"settings", s},
                           {"from_epoch", c.from_epoch},
                           {"from_checkpoint", c.from_checkpoint},
                           {"why_from_start", c.why_from_start},
                           {"epochs", c.epochs},
                           {"baseline_sweep", c.base_sweep},
                           {"baseline", replays(c.baseline)},
                           {"sweep", c.sweep},
                           {"with_remedy", replays(c.with_remedy)},
                           {"loss_effect", number(c.loss_effect)},
                           {"loss_spread", number(c.loss_spread)},
                           {"accuracy_effect", number(c.accuracy_effect)},
                           {"accuracy_spread", number(c.accuracy_spread)},
                           {"verdict", c.verdict},
                           {"note", c.note}});
  }
  // Checks an earlier call made (another --only) stay, when they were replayed on the same seeds;
  // the same kind and settings are replaced. Each check carries its own baseline and budget.
  result.json = run_dir / "verify.json";
  int64_t kept = 0;
  if (fs::exists(result.json)) {
    std::ifstream in(result.json);
    const auto old = nlohmann::json::parse(in, nullptr, /*allow_exceptions=*/false);
    if (old.is_object() && old.value("seeds", nlohmann::json()) == j["seeds"] &&
        old.contains("checks") && old["checks"].is_array())
      for (const auto& o : old["checks"]) {
        if (!o.is_object() || !o.contains("epochs")) continue;  // an earlier format
        const bool replaced =
            std::any_of(j["checks"].begin(), j["checks"].end(), [&](const nlohmann::json& n) {
              return n.value("kind", "") == o.value("kind", "") &&
                     n.value("settings", nlohmann::json()) == o.value("settings", nlohmann::json());
            });
        if (!replaced) j["checks"].push_back(o), ++kept;
      }
  }
  track::write_text_atomically(result.json, j.dump(2) + "\n");
  // The dashboard shows the checks beside the run's findings.
  track::RunStore(run_dir / "run.sqlite").put_result("verify", "remedies", j.dump());
  report << "  written to " << result.json.string()
         << (kept > 0 ? " (with " + std::to_string(kept) + " check" + (kept == 1 ? "" : "s") +
                            " of an earlier call on the same seeds)"
                      : std::string())
         << "\n";
  result.summary = out.str() + report.str();
  return result;
}

}  // namespace trainscope
