#include <trainscope/session/sweep.h>

#include <trainscope/error.h>
#include <trainscope/session/session.h>
#include <trainscope/track/run.h>
#include <trainscope/track/run_store.h>

#include <nlohmann/json.hpp>

#include <algorithm>
#include <atomic>
#include <cmath>
#include <cstdio>
#include <fstream>
#include <mutex>
#include <random>
#include <sstream>
#include <thread>

namespace trainscope {
namespace fs = std::filesystem;
namespace {

std::string trim(std::string s) {
  const auto not_space = [](unsigned char c) { return !std::isspace(c); };
  s.erase(s.begin(), std::find_if(s.begin(), s.end(), not_space));
  s.erase(std::find_if(s.rbegin(), s.rend(), not_space).base(), s.end());
  return s;
}

// "[a, [1, 2], "b, c"]" -> a, [1, 2], b, c (the config's list syntax). Text without brackets is
// one value.
std::vector<std::string> split_values(const std::string& text, const std::string& where) {
  const std::string t = trim(text);
  if (t.empty() || t.front() != '[') return {t};
  auto items = split_config_list(t);
  if (!items) throw ConfigError(where + ": unbalanced brackets or quotes in the list of values");
  return *items;
}

double number(const std::string& text, const std::string& where) {
  try {
    size_t used = 0;
    const double v = std::stod(trim(text), &used);
    if (used == trim(text).size() && std::isfinite(v)) return v;
  } catch (const std::logic_error&) {
  }
  throw ConfigError(where + ": '" + trim(text) + "' is not a number");
}

// The value as the setting reads it, checked by its range: a ConfigError names the parameter.
void check_value(const Config& base, const std::string& key, const std::string& value,
                 const std::string& where) {
  Config c = base;
  try {
    c.set_from_string(key + "=" + value, "sweep");
    c.resolve();
  } catch (const ConfigError& e) {
    throw ConfigError(where + ": " + e.what());
  }
}

std::string short_number(double v) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.4g", v);
  return buf;
}

bool valid_name(const std::string& name) {
  return !name.empty() && name != "." && name != ".." &&
         name.find_first_not_of(
             "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._-") ==
             std::string::npos;
}

// Settings that change how a trial is shown or how many threads it has, not what it trains.
bool presentation(const std::string& key) {
  return key.rfind("ui.", 0) == 0 || key == "runtime.threads" || key == "run.name" ||
         key == "run.sweep" || key == "run.sweep_trial" || key == "run.dir";
}

// The plan as text: what the sweep was started with. Starting it again must give the same.
std::string plan_text(const SweepOptions& o, const Config& base,
                      const std::vector<SweepTrial>& trials) {
  std::ostringstream out;
  out << "# trainscope sweep plan: starting the same sweep again (trainscope sweep --name "
      << o.name << ") runs what is not done yet.\n";
  out << "name = \"" << o.name << "\"\n";
  out << "method = \"" << name_of(o.method, kSweepMethodNames) << "\"\n";
  if (o.method == SweepMethod::kRandom) out << "seed = " << o.seed << "\n";
  out << "parameters = [";
  for (size_t i = 0; i < o.parameters.size(); ++i)
    out << (i ? ", " : "") << to_toml_literal(o.parameters[i].text);
  out << "]\n\n[base]  # the settings every trial shares, besides their defaults\n";
  for (const auto& s : base.settings())
    if (s.source != "default" && !presentation(s.key))
      out << to_toml_literal(s.key) << " = " << to_toml_literal(s.value) << "\n";
  out << "\n[trials]\n";
  for (const auto& t : trials)
    out << to_toml_literal(t.run_name) << " = " << to_toml_literal(t.settings_text()) << "\n";
  return out.str();
}

std::string read_file(const fs::path& file) {
  std::ifstream in(file, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(in), {});
}

bool has_checkpoint(const fs::path& run) {
  std::error_code ec;
  for (const auto& e : fs::directory_iterator(run / "checkpoints", ec))
    if (e.path().extension() == ".ckpt") return true;
  return false;
}

// The trial's outcome from its run store.
void read_outcome(SweepTrial& t, const fs::path& run) {
  t.status = "pending";
  if (!fs::exists(run / "run.sqlite")) return;
  try {
    track::RunStore store(run / "run.sqlite", track::RunStore::Mode::kReadOnly);
    t.status = store.meta("status").value_or("running");
    t.stop_reason = store.meta("stop_reason").value_or("");
    // A fit that ended on its own (early stopping, a threshold, divergence, a diagnosis) is done
    // as much as one that used its budget; only an interrupted one, or one whose save failed,
    // has more to do.
    if (t.status == "stopped" && t.stop_reason != "interrupted" &&
        t.stop_reason != "checkpoint_failed" && !t.stop_reason.empty())
      t.status = "finished";
    t.monitor = store.meta("best_monitor").value_or("");
    if (auto v = store.meta("best_value")) t.best = std::stod(*v);
    if (auto m = store.result("test", "metrics")) {
      const auto j = nlohmann::json::parse(*m, nullptr, false);
      if (j.is_object() && j.contains("accuracy") && j["accuracy"].is_number())
        t.test_accuracy = j["accuracy"].get<double>();
      if (j.is_object() && j.contains("loss") && j["loss"].is_number())
        t.test_loss = j["loss"].get<double>();
    }
  } catch (const std::exception&) {
    t.status = "running";  // a store being created: treated as a run that stopped early
  }
}

// Moves a trial's unusable run (no checkpoint to resume from) out of the way of a new one.
void set_aside(const fs::path& run) {
  fs::path aside = run.string() + ".abandoned";
  for (int i = 2; fs::exists(aside); ++i) aside = run.string() + ".abandoned-" + std::to_string(i);
  fs::rename(run, aside);
}

}  // namespace

std::string SweepTrial::settings_text() const {
  std::string out;
  for (const auto& [key, value] : settings) out += (out.empty() ? "" : " ") + key + "=" + value;
  return out;
}

SweepParameter parse_sweep_parameter(const std::string& text, const Config& base) {
  const std::string where = "sweep parameter '" + text + "'";
  const auto eq = text.find('=');
  if (eq == std::string::npos)
    throw ConfigError(where +
                      ": expected KEY=[v1, v2, ...] or KEY=uniform(lo, hi), "
                      "loguniform(lo, hi), int(lo, hi); for example train.lr=[0.001, 0.0003]");
  SweepParameter p;
  p.text = text;
  p.key = trim(text.substr(0, eq));
  try {
    base.setting(p.key);
  } catch (const ConfigError& e) {
    throw ConfigError(where + ": " + e.what());
  }
  if (presentation(p.key) && p.key != "runtime.threads")
    throw ConfigError(where + ": " + p.key + " names or shows the runs; sweep what they train");
  const std::string value = trim(text.substr(eq + 1));
  for (const auto& [prefix, kind] : {std::pair{"uniform(", SweepParameter::Kind::kUniform},
                                     std::pair{"loguniform(", SweepParameter::Kind::kLogUniform},
                                     std::pair{"int(", SweepParameter::Kind::kInt}}) {
    if (value.rfind(prefix, 0) != 0) continue;
    if (value.back() != ')') throw ConfigError(where + ": the range does not end with ')'");
    const auto inner =
        value.substr(std::string(prefix).size(), value.size() - std::string(prefix).size() - 1);
    const auto comma = inner.find(',');
    if (comma == std::string::npos || inner.find(',', comma + 1) != std::string::npos)
      throw ConfigError(where + ": a range takes two numbers, low and high, e.g. " +
                        std::string(prefix) + "1, 10)");
    p.kind = kind;
    p.low = number(inner.substr(0, comma), where);
    p.high = number(inner.substr(comma + 1), where);
    if (!(p.low <= p.high))
      throw ConfigError(where + ": low " + short_number(p.low) + " is above high " +
                        short_number(p.high));
    if (kind == SweepParameter::Kind::kLogUniform && !(p.low > 0))
      throw ConfigError(where + ": loguniform needs positive ends");
    if (kind == SweepParameter::Kind::kInt &&
        (p.low != std::floor(p.low) || p.high != std::floor(p.high)))
      throw ConfigError(where + ": int(lo, hi) takes whole numbers");
    const auto text_of = [&](double v) {
      return kind == SweepParameter::Kind::kInt ? std::to_string(static_cast<int64_t>(v))
                                                : short_number(v);
    };
    check_value(base, p.key, text_of(p.low), where);
    check_value(base, p.key, text_of(p.high), where);
    return p;
  }
  p.values = split_values(value, where);
  if (p.values.empty()) throw ConfigError(where + ": no values to sweep");
  for (const auto& v : p.values) check_value(base, p.key, v, where);
  return p;
}

std::vector<SweepTrial> plan_sweep(const SweepOptions& o, const Config& base) {
  (void)base;
  if (!valid_name(o.name))
    throw ConfigError("sweep name '" + o.name +
                      "' is not a run name; use letters, digits, '.', '_' and '-'");
  if (o.parameters.empty())
    throw ConfigError("sweep " + o.name + ": nothing to sweep; give --set KEY=[v1, v2, ...]");
  for (size_t i = 0; i < o.parameters.size(); ++i)
    for (size_t j = 0; j < i; ++j)
      if (o.parameters[i].key == o.parameters[j].key)
        throw ConfigError("sweep " + o.name + ": " + o.parameters[i].key + " is swept twice");
  if (o.parallel < 1) throw ConfigError("sweep " + o.name + ": --parallel must be at least 1");
  std::vector<std::vector<std::pair<std::string, std::string>>> combos;
  if (o.method == SweepMethod::kGrid) {
    for (const auto& p : o.parameters)
      if (p.kind != SweepParameter::Kind::kValues)
        throw ConfigError("sweep " + o.name + ": '" + p.text +
                          "' is a range; a grid takes lists of values (ranges need --method "
                          "random)");
    if (o.trials != 0)
      throw ConfigError("sweep " + o.name +
                        ": a grid runs every combination; --trials is for --method random");
    combos = {{}};
    for (const auto& p : o.parameters) {
      std::vector<std::vector<std::pair<std::string, std::string>>> next;
      for (const auto& c : combos)
        for (const auto& v : p.values) {
          auto with = c;
          with.emplace_back(p.key, v);
          next.push_back(std::move(with));
        }
      combos = std::move(next);
    }
  } else {
    if (o.trials < 1)
      throw ConfigError("sweep " + o.name + ": random search needs --trials N (at least 1)");
    // Our own draws from a 64-bit Mersenne Twister: the same on every standard library.
    std::mt19937_64 gen(o.seed);
    const auto unit = [&] { return static_cast<double>(gen() >> 11) * 0x1.0p-53; };
    for (int64_t t = 0; t < o.trials; ++t) {
      std::vector<std::pair<std::string, std::string>> c;
      for (const auto& p : o.parameters) {
        std::string v;
        switch (p.kind) {
          case SweepParameter::Kind::kValues:
            v = p.values[gen() % p.values.size()];
            break;
          case SweepParameter::Kind::kUniform:
            v = short_number(p.low + (p.high - p.low) * unit());
            break;
          case SweepParameter::Kind::kLogUniform:
            v = short_number(
                std::exp(std::log(p.low) + (std::log(p.high) - std::log(p.low)) * unit()));
            break;
          case SweepParameter::Kind::kInt:
            v = std::to_string(
                static_cast<int64_t>(p.low) +
                static_cast<int64_t>(gen() % static_cast<uint64_t>(p.high - p.low + 1)));
            break;
        }
        c.emplace_back(p.key, v);
      }
      combos.push_back(std::move(c));
    }
  }
  std::vector<SweepTrial> trials;
  const int width =
      combos.size() >= 1000 ? static_cast<int>(std::to_string(combos.size()).size()) : 3;
  for (size_t i = 0; i < combos.size(); ++i) {
    SweepTrial t;
    t.index = static_cast<int64_t>(i + 1);
    char num[24];
    std::snprintf(num, sizeof num, "%0*zu", width, i + 1);
    t.run_name = o.name + "-" + num;
    t.settings = combos[i];
    trials.push_back(std::move(t));
  }
  return trials;
}

Sweep::Sweep(Config base, SweepOptions options)
    : base_(std::move(base)), options_(std::move(options)) {
  plan_ = plan_sweep(options_, base_);
  runs_dir_ = base_.get_string("run.dir");
  sweep_dir_ = track::sweep_dir(runs_dir_, options_.name);
  // Each trial must be a valid config: checked now, not after the first trials ran.
  for (const auto& t : plan_) {
    Config c = trial_config(t);
    try {
      c.resolve();
    } catch (const ConfigError& e) {
      throw ConfigError("sweep " + options_.name + ", trial " + t.run_name + " (" +
                        t.settings_text() + "): " + e.what());
    }
  }
  const std::string text = plan_text(options_, base_, plan_);
  const fs::path file = sweep_dir_ / "plan.toml";
  if (fs::exists(file)) {
    if (read_file(file) != text)
      throw ConfigError(file.string() + ": sweep '" + options_.name +
                        "' was started with another plan (other parameters, method, seed or "
                        "base settings); start it with the same command to go on, or choose "
                        "another --name");
    return;
  }
  std::error_code ec;
  fs::create_directories(sweep_dir_, ec);
  if (ec) throw Error("cannot create " + sweep_dir_.string() + ": " + ec.message());
  track::write_atomically(file, [&](const fs::path& tmp) {
    std::ofstream out(tmp, std::ios::binary);
    out << text;
    if (!out) throw Error("cannot write " + tmp.string());
  });
}

std::vector<SweepTrial> Sweep::trials() const {
  std::vector<SweepTrial> out = plan_;
  for (auto& t : out) read_outcome(t, run_dir(t));
  return out;
}

fs::path Sweep::run_dir(const SweepTrial& trial) const { return runs_dir_ / trial.run_name; }

Config Sweep::trial_config(const SweepTrial& trial) const {
  Config c = base_;
  for (const auto& [key, value] : trial.settings) c.set_from_string(key + "=" + value, "sweep");
  c.set("run.name", trial.run_name, "sweep",
        "trial " + std::to_string(trial.index) + " of sweep " + options_.name);
  c.set("run.sweep", options_.name, "sweep", "trial " + std::to_string(trial.index));
  c.set("run.sweep_trial", trial.settings_text(), "sweep", "the trial's settings");
  return c;
}

fs::path Sweep::write_trial_config(const SweepTrial& trial) const {
  const Config c = trial_config(trial);
  std::ostringstream out;
  out << "# trial " << trial.index << " of sweep " << options_.name << ": " << trial.settings_text()
      << "\n# trainscope train --config " << (sweep_dir_ / (trial.run_name + ".toml")).string()
      << " trains it (the settings not listed are at their defaults)\n";
  // TOML defines a table once: each section's settings together, in the order they appear.
  std::vector<std::pair<std::string, std::string>> sections;  // name, lines
  for (const auto& s : c.settings()) {
    if (s.source == "default") continue;
    const auto dot = s.key.find('.');
    const std::string name = s.key.substr(0, dot);
    auto it = std::find_if(sections.begin(), sections.end(),
                           [&](const auto& sec) { return sec.first == name; });
    if (it == sections.end()) it = sections.insert(sections.end(), {name, ""});
    it->second +=
        s.key.substr(dot + 1) + " = " + to_toml_literal(s.value) + "  # from " + s.source + "\n";
  }
  for (const auto& [name, lines] : sections) out << "\n[" << name << "]\n" << lines;
  const fs::path file = sweep_dir_ / (trial.run_name + ".toml");
  track::write_atomically(file, [&](const fs::path& tmp) {
    std::ofstream f(tmp, std::ios::binary);
    f << out.str();
    if (!f) throw Error("cannot write " + tmp.string());
  });
  return file;
}

SweepResult Sweep::run(const TrialRunner& runner) {
  // An exclusive lock on the sweep while this process runs it.
  track::FileLock lock(sweep_dir_ / "lock", track::FileLock::Wait::kTry);
  if (!lock.held())
    throw ConfigError("sweep lock " + (sweep_dir_ / "lock").string() +
                      " is held: another trainscope sweep is running this sweep; wait for it or "
                      "stop it, then start the sweep again");
  SweepResult result;
  result.trials = trials();
  std::vector<size_t> todo;
  for (size_t i = 0; i < result.trials.size(); ++i) {
    const auto& t = result.trials[i];
    const bool tested = t.test_accuracy.has_value() || t.test_loss.has_value();
    if (t.status != "finished" || (options_.test && !tested)) todo.push_back(i);
  }
  std::mutex mutex;
  std::atomic<size_t> next{0};
  std::atomic<bool> stop{false};
  std::exception_ptr error;
  auto work = [&] {
    while (!stop) {
      const size_t k = next++;
      if (k >= todo.size()) return;
      SweepTrial trial;
      {
        std::lock_guard<std::mutex> guard(mutex);
        trial = result.trials[todo[k]];
      }
      const fs::path dir = run_dir(trial);
      TrialAction action = TrialAction::kTrain;
      if (trial.status == "finished") {
        action = TrialAction::kTest;
      } else if (fs::exists(dir)) {
        if (has_checkpoint(dir) && fs::exists(dir / "run.sqlite"))
          action = TrialAction::kResume;
        else
          set_aside(dir);  // stopped before its first checkpoint: nothing to resume
      }
      int code = 1;
      try {
        code = runner(trial, action, trial_config(trial), dir);
      } catch (...) {
        std::lock_guard<std::mutex> guard(mutex);
        if (!error) error = std::current_exception();
        stop = true;
        return;
      }
      std::lock_guard<std::mutex> guard(mutex);
      SweepTrial& done = result.trials[todo[k]];
      read_outcome(done, dir);
      ++result.ran;
      if (code == 130) {
        result.interrupted = true;
        stop = true;
      } else if (code != 0 && done.status != "finished") {
        done.status = "failed";
      }
    }
  };
  const int64_t threads = std::min<int64_t>(options_.parallel, std::max<size_t>(1, todo.size()));
  if (threads <= 1) {
    work();
  } else {
    std::vector<std::thread> pool;
    for (int64_t i = 0; i < threads; ++i) pool.emplace_back(work);
    for (auto& t : pool) t.join();
  }
  if (error) std::rethrow_exception(error);
  result.summary = sweep_summary(options_.name, result.trials);
  return result;
}

TrialRunner in_process_trials(bool test) {
  return
      [test](const SweepTrial&, TrialAction action, const Config& config, const fs::path& run_dir) {
        switch (action) {
          case TrialAction::kTrain:
            return Session(config).train(test).exit_code();
          case TrialAction::kResume:
            return Session::of_run(run_dir).resume(test).exit_code();
          case TrialAction::kTest:
            Session::of_run(run_dir).test();
            return 0;
        }
        return 1;
      };
}

std::string sweep_summary(const std::string& name, const std::vector<SweepTrial>& trials) {
  std::vector<const SweepTrial*> order;
  for (const auto& t : trials) order.push_back(&t);
  // Lower is better for losses and errors, higher for everything else early stopping watches.
  auto lower_better = [](const std::string& monitor) {
    return monitor.find("loss") != std::string::npos || monitor.find("mae") != std::string::npos ||
           monitor.find("rmse") != std::string::npos || monitor.find("error") != std::string::npos;
  };
  std::stable_sort(order.begin(), order.end(), [&](const SweepTrial* a, const SweepTrial* b) {
    const bool ra = a->status == "finished" && a->best, rb = b->status == "finished" && b->best;
    if (ra != rb) return ra;
    // Pruned trials after the ones that ran their budget: their best is from fewer epochs.
    const bool pa = a->stop_reason == "pruned", pb = b->stop_reason == "pruned";
    if (pa != pb) return pb;
    if (!ra) return false;
    return lower_better(a->monitor) ? *a->best < *b->best : *a->best > *b->best;
  });
  size_t width = 8;
  for (const auto& t : trials) width = std::max(width, t.settings_text().size());
  std::ostringstream out;
  int64_t finished = 0;
  for (const auto& t : trials) finished += t.status == "finished";
  int64_t pruned = 0;
  for (const auto& t : trials) pruned += t.stop_reason == "pruned";
  out << "sweep " << name << ": " << finished << " of " << trials.size() << " trials finished"
      << (pruned ? " (" + std::to_string(pruned) + " pruned early)" : std::string())
      << ", best first\n";
  char line[512];
  std::snprintf(line, sizeof line, "  %-4s %-14s %-*s  %-10s %-22s %s\n", "rank", "run",
                static_cast<int>(width), "settings", "status", "best (monitor)", "test");
  out << line;
  int rank = 0;
  for (const SweepTrial* t : order) {
    std::string best = "-", test = "-";
    if (t->best) {
      char b[64];
      std::snprintf(b, sizeof b, "%.4g (%s)", *t->best, t->monitor.c_str());
      best = b;
    }
    if (t->test_accuracy) {
      char b[32];
      std::snprintf(b, sizeof b, "accuracy %.2f%%", 100 * *t->test_accuracy);
      test = b;
    } else if (t->test_loss) {
      char b[32];
      std::snprintf(b, sizeof b, "loss %.4g", *t->test_loss);
      test = b;
    }
    const std::string r = t->status == "finished" && t->best ? std::to_string(++rank) : "-";
    // A pruned trial ended early by the sweep's successive halving: ranked on its best so far.
    const std::string status = t->stop_reason == "pruned" ? "pruned" : t->status;
    std::snprintf(line, sizeof line, "  %-4s %-14s %-*s  %-10s %-22s %s\n", r.c_str(),
                  t->run_name.c_str(), static_cast<int>(width), t->settings_text().c_str(),
                  status.c_str(), best.c_str(), test.c_str());
    out << line;
  }
  return out.str();
}

}  // namespace trainscope
