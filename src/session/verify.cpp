#include <trainscope/diagnose/finding.h>
#include <trainscope/error.h>
#include <trainscope/session/session.h>
#include <trainscope/session/verify.h>
#include <trainscope/track/run.h>
#include <trainscope/track/store_reader.h>

#include <nlohmann/json.hpp>

#include <algorithm>
#include <cstdio>
#include <fstream>
#include <map>
#include <set>
#include <sstream>

namespace trainscope {
namespace fs = std::filesystem;
namespace {

int severity_rank(const std::string& s) { return s == "error" ? 2 : s == "warning" ? 1 : 0; }

// The last value of split/tag in a run's store (NaN when absent or not finite).
double last_value(track::StoreReader& store, const std::string& split, const std::string& tag) {
  double v = NAN;
  store.metrics_of(split, tag, [&](const track::MetricRowView& row) { v = row.value; });
  return std::isfinite(v) ? v : NAN;
}

struct Arm {
  std::string sweep;
  std::vector<Replay> replays;
  std::string problem;  // a replay that did not finish
  bool interrupted = false;
};

// Runs the arm's sweep over `seeds` and reads each replay's final validation loss and accuracy.
Arm run_arm(const Config& config, const std::string& name, const std::vector<uint64_t>& seeds,
            const TrialRunner& runner, bool print) {
  Arm arm;
  arm.sweep = name;
  std::string values;
  for (auto s : seeds) values += (values.empty() ? "" : ", ") + std::to_string(s);
  SweepOptions o;
  o.name = name;
  o.parameters = {parse_sweep_parameter("train.seed=[" + values + "]", config)};
  o.test = false;
  Sweep sweep(config, o);
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
      track::StoreReader store(sweep.run_dir(t) / "run.sqlite");
      store.metrics_of("train", "step_loss", [&](const track::MetricRowView& row) {
        if (std::isnan(r.first_loss)) r.first_loss = row.value;
      });
      r.val_loss = last_value(store, "val", "loss");
      r.val_accuracy = last_value(store, "val", "accuracy");
      if (std::isnan(r.val_loss)) {  // no validation split: the training loss says as much
        r.val_loss = last_value(store, "train", "loss");
        r.val_accuracy = last_value(store, "train", "accuracy");
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
  // Twice the standard error, or with one seed a 1% change of the baseline's loss.
  double base_mean = 0;
  for (const auto& b : base) base_mean += std::isfinite(b.val_loss) ? b.val_loss / base.size() : 0;
  const double margin = loss.size() > 1 ? 2 * check.loss_spread / std::sqrt(double(loss.size()))
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
  int64_t latest = 0;
  for (const auto& k : chosen)
    if (!diagnose::setting_refs(findings[k].remedy).empty())
      latest = std::max(latest, findings[k].epoch);
  const int64_t run_epochs = base.get_int("train.max_epochs");
  result.epochs =
      options.epochs > 0
          ? options.epochs
          : std::clamp<int64_t>(latest + 2, std::min<int64_t>(2, run_epochs), run_epochs);
  base.set("train.max_epochs", result.epochs, "verify",
           "a short replay: the latest finding's epoch + 2");
  base.set("ui.dashboard", false, "verify", "replays run without a dashboard of their own");
  base.set("ui.progress", std::string("off"), "verify", "one line per replay");
  const auto seed0 = static_cast<uint64_t>(base.get_int("train.seed"));
  for (int64_t i = 0; i < options.seeds; ++i) result.seeds.push_back(seed0 + uint64_t(i));
  const std::string prefix = result.run_name + "-verify-" + std::to_string(result.epochs) + "ep-" +
                             std::to_string(options.seeds) + "seeds-";

  std::ostringstream out;
  out << "remedies of run " << result.run_name << " verified by replay: " << result.epochs
      << " epoch" << (result.epochs == 1 ? "" : "s") << " from the start, with and without each "
      << "remedy, seeds";
  for (auto s : result.seeds) out << " " << s;
  out << "\n";
  if (options.print) {
    std::printf("%s", out.str().c_str());
    std::fflush(stdout);
  }

  bool any = false;
  for (const auto& k : chosen) any = any || !diagnose::setting_refs(findings[k].remedy).empty();
  Arm baseline;
  if (any) {
    baseline = run_arm(base, prefix + "base", result.seeds, runner, options.print);
    result.base_sweep = baseline.sweep;
    result.baseline = baseline.replays;
    if (baseline.interrupted) {
      result.interrupted = true;
      result.summary = out.str() + "  interrupted: the same command finishes the replays\n";
      return result;
    }
  }
  // One check per alternative the remedy offers ("dropout or weight decay": two replays).
  struct Planned {
    std::string kind;
    int alternative = 0;
    std::vector<std::pair<std::string, std::string>> settings;
  };
  std::vector<Planned> plan;
  for (const auto& k : chosen) {
    const auto alternatives = diagnose::setting_alternatives(findings[k].remedy);
    if (alternatives.empty()) plan.push_back({k, 0, {}});
    for (size_t a = 0; a < alternatives.size(); ++a)
      plan.push_back({k, alternatives.size() > 1 ? int(a + 1) : 0, alternatives[a]});
  }
  for (const auto& p : plan) {
    const std::string& k = p.kind;
    const auto& f = findings[k];
    RemedyCheck c;
    c.kind = k;
    c.alternative = p.alternative;
    c.epoch = f.epoch;
    c.remedy = diagnose::name_settings(f.remedy);
    c.settings = p.settings;
    if (c.settings.empty()) {
      c.verdict = "not replayed";
      c.note = "its remedy is a change of code or data, not of settings";
      result.checks.push_back(c);
      continue;
    }
    // The replay's budget stays the same for both arms: "train longer" is not measured by it.
    c.settings.erase(std::remove_if(c.settings.begin(), c.settings.end(),
                                    [](const auto& kv) { return kv.first == "train.max_epochs"; }),
                     c.settings.end());
    if (c.settings.empty()) {
      c.verdict = "not replayed";
      c.note = "its remedy is more epochs, which a replay of fixed length cannot measure";
      result.checks.push_back(c);
      continue;
    }
    Config with = base;
    try {
      for (const auto& [key, value] : c.settings)
        with.set_from_string(key + "=" + value, "remedy for " + k);
    } catch (const ConfigError& e) {
      c.verdict = "not replayed";
      c.note = std::string("this run does not take the remedy's settings: ") + e.what();
      result.checks.push_back(c);
      continue;
    }
    if (!baseline.problem.empty()) {
      c.verdict = "not replayed";
      c.note = "the baseline did not finish: " + baseline.problem;
      result.checks.push_back(c);
      continue;
    }
    const std::string arm_name =
        prefix + k + (c.alternative > 0 ? "-alt" + std::to_string(c.alternative) : "");
    Arm arm = run_arm(with, arm_name, result.seeds, runner, options.print);
    if (arm.interrupted) {
      result.interrupted = true;
      result.summary = out.str() + "  interrupted: the same command finishes the replays\n";
      return result;
    }
    c.sweep = arm.sweep;
    c.with_remedy = arm.replays;
    if (!arm.problem.empty()) {
      c.verdict = "not replayed";
      c.note = arm.problem;
    } else {
      judge(c, result.baseline);
    }
    result.checks.push_back(c);
  }

  // The report: per finding its settings, both arms' means, the paired effects and the verdict.
  std::ostringstream report;
  if (!result.baseline.empty())
    report << "  baseline (" << result.base_sweep << "): val_loss "
           << mean_of(result.baseline, &Replay::val_loss) << ", val_accuracy "
           << mean_of(result.baseline, &Replay::val_accuracy) << "\n";
  for (const auto& c : result.checks) {
    report << "  " << c.kind
           << (c.alternative > 0 ? ", alternative " + std::to_string(c.alternative) : "")
           << " (epoch " << c.epoch << "): ";
    if (c.settings.empty() || c.verdict == "not replayed") {
      report << c.verdict << ": " << c.note << "\n";
      continue;
    }
    std::string settings;
    for (const auto& [key, value] : c.settings)
      settings += (settings.empty() ? "" : ", ") + diagnose::config_key_name(key, value);
    const bool diverged = std::isnan(c.loss_effect) && c.verdict == "helped";
    report << settings << " (" << c.sweep << ")\n    val_loss "
           << mean_of(c.with_remedy, &Replay::val_loss) << ", effect "
           << (diverged ? std::string("finite where the baseline diverged")
                        : num(c.loss_effect) + " +- " + num(c.loss_spread, 2))
           << "; val_accuracy " << mean_of(c.with_remedy, &Replay::val_accuracy) << ", effect "
           << num(c.accuracy_effect) << " +- " << num(c.accuracy_spread, 2) << " ("
           << result.seeds.size() << " seed" << (result.seeds.size() == 1 ? "" : "s")
           << "): " << c.verdict << (c.note.empty() ? "" : " (" + c.note + ")") << "\n";
  }
  if (result.checks.empty()) report << "  the run has no findings to verify\n";

  nlohmann::json j;
  j["run"] = result.run_name;
  j["epochs"] = result.epochs;
  j["seeds"] = result.seeds;
  j["baseline_sweep"] = result.base_sweep;
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
  j["baseline"] = replays(result.baseline);
  j["checks"] = nlohmann::json::array();
  for (const auto& c : result.checks) {
    nlohmann::json s = nlohmann::json::object();
    for (const auto& [key, value] : c.settings) s[key] = value;
    j["checks"].push_back({{"kind", c.kind},
                           {"alternative", c.alternative},
                           {"epoch", c.epoch},
                           {"remedy", c.remedy},
                           {"settings", s},
                           {"sweep", c.sweep},
                           {"with_remedy", replays(c.with_remedy)},
                           {"loss_effect", number(c.loss_effect)},
                           {"loss_spread", number(c.loss_spread)},
                           {"accuracy_effect", number(c.accuracy_effect)},
                           {"accuracy_spread", number(c.accuracy_spread)},
                           {"verdict", c.verdict},
                           {"note", c.note}});
  }
  // Checks an earlier call made (another --only) stay in the file, when they were replayed with
  // the same budget and seeds, so that they compare; the same kind and settings are replaced.
  result.json = run_dir / "verify.json";
  int64_t kept = 0;
  if (fs::exists(result.json)) {
    std::ifstream in(result.json);
    const auto old = nlohmann::json::parse(in, nullptr, /*allow_exceptions=*/false);
    if (old.is_object() && old.value("epochs", nlohmann::json()) == j["epochs"] &&
        old.value("seeds", nlohmann::json()) == j["seeds"] && old.contains("checks") &&
        old["checks"].is_array())
      for (const auto& o : old["checks"]) {
        const bool replaced =
            std::any_of(j["checks"].begin(), j["checks"].end(), [&](const nlohmann::json& n) {
              return n.value("kind", "") == o.value("kind", "") &&
                     n.value("settings", nlohmann::json()) == o.value("settings", nlohmann::json());
            });
        if (!replaced) j["checks"].push_back(o), ++kept;
      }
  }
  track::write_text_atomically(result.json, j.dump(2) + "\n");
  report << "  written to " << result.json.string()
         << (kept > 0 ? " (with " + std::to_string(kept) + " check" + (kept == 1 ? "" : "s") +
                            " of an earlier call at the same budget and seeds)"
                      : std::string())
         << "\n";
  result.summary = out.str() + report.str();
  return result;
}

}  // namespace trainscope
