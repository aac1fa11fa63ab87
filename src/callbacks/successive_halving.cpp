#include <trainscope/callbacks/successive_halving.h>
#include <trainscope/error.h>
#include <trainscope/track/run.h>
#include <trainscope/train/state.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <fstream>
#include <sstream>

namespace trainscope::callbacks {
namespace {

std::vector<RungRecord> read_rungs(const std::filesystem::path& file) {
  std::vector<RungRecord> out;
  std::ifstream in(file);
  std::string line;
  for (int64_t number = 1; std::getline(in, line); ++number) {
    if (line.empty() || line[0] == '#') continue;
    std::istringstream fields(line);
    RungRecord r;
    std::string value;
    if (!(fields >> r.epoch) || fields.get() != '\t' || !std::getline(fields, r.trial, '\t') ||
        !std::getline(fields, value) || r.trial.empty())
      throw Error(file.string() + ":" + std::to_string(number) + ": cannot read '" + line +
                  "'; expected EPOCH<tab>TRIAL<tab>VALUE (delete the file to forget the rungs)");
    r.value = std::strtod(value.c_str(), nullptr);
    out.push_back(std::move(r));
  }
  return out;
}

std::string format_value(double v) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.4g", v);
  return buf;
}

}  // namespace

RungDecision decide_rung(double value, const std::vector<double>& others, int64_t factor,
                         bool maximize) {
  RungDecision d;
  d.trials = static_cast<int64_t>(others.size()) + 1;
  auto better = [&](double a, double b) { return maximize ? a > b : a < b; };
  d.rank =
      1 + std::count_if(others.begin(), others.end(), [&](double o) { return better(o, value); });
  d.keep = d.trials < factor ? d.trials : std::max<int64_t>(1, d.trials / factor);
  std::vector<double> all = others;
  all.push_back(value);
  std::sort(all.begin(), all.end(), better);
  d.cutoff = all[static_cast<size_t>(d.keep - 1)];
  d.prune = d.rank > d.keep;
  return d;
}

std::vector<int64_t> rung_epochs(int64_t min_epochs, int64_t factor, int64_t max_epochs) {
  std::vector<int64_t> out;
  for (int64_t e = std::max<int64_t>(min_epochs, 1); e < max_epochs;
       e *= std::max<int64_t>(factor, 2))
    out.push_back(e);
  return out;
}

std::vector<RungRecord> record_rung(const std::filesystem::path& file, const RungRecord& record) {
  track::FileLock lock(file.string() + ".lock");  // the trials of a parallel sweep take turns
  std::vector<RungRecord> all = read_rungs(file);
  all.erase(std::remove_if(all.begin(), all.end(),
                           [&](const RungRecord& r) {
                             return r.epoch == record.epoch && r.trial == record.trial;
                           }),
            all.end());
  all.push_back(record);
  std::string text = "# successive halving: epoch<tab>trial<tab>best monitored value by then\n";
  for (const RungRecord& r : all) {
    char value[40];
    std::snprintf(value, sizeof value, "%.17g", r.value);
    text += std::to_string(r.epoch) + "\t" + r.trial + "\t" + value + "\n";
  }
  track::write_text_atomically(file, text);
  return all;
}

SuccessiveHalving::SuccessiveHalving(SuccessiveHalvingOptions options, std::FILE* out)
    : options_(std::move(options)), out_(out) {
  if (options_.min_epochs < 1)
    throw ConfigError("sweep.prune_min_epochs = " + std::to_string(options_.min_epochs) +
                      " is out of range; expected >= 1");
  if (options_.factor < 2)
    throw ConfigError("sweep.prune_factor = " + std::to_string(options_.factor) +
                      " is out of range; expected >= 2 (keep the best 1/factor at each rung)");
  if (options_.rungs_file.empty() || options_.trial.empty())
    throw ConfigError("successive halving needs the sweep's rungs file and the trial's name");
}

void SuccessiveHalving::on_epoch_end(TrainState& state) {
  const auto rungs = rung_epochs(options_.min_epochs, options_.factor, state.max_epochs);
  if (std::find(rungs.begin(), rungs.end(), state.epoch) == rungs.end()) return;
  if (state.best.epoch == 0 || !std::isfinite(state.best.value)) return;
  const double value = state.best.value;
  const auto all = record_rung(options_.rungs_file, {state.epoch, options_.trial, value});
  std::vector<double> others;
  for (const RungRecord& r : all)
    if (r.epoch == state.epoch && r.trial != options_.trial) others.push_back(r.value);
  const bool maximize = state.best.by.maximize;
  const RungDecision d = decide_rung(value, others, options_.factor, maximize);
  const std::string name = state.best.by.name;
  std::string message = "rung at epoch " + std::to_string(state.epoch) + ": best " + name + " " +
                        format_value(value) + " ranks " + std::to_string(d.rank) + " of " +
                        std::to_string(d.trials) + " trials";
  if (!d.prune) {
    if (out_ != nullptr && d.trials >= options_.factor)
      std::fprintf(out_, "successive halving: %s; the best %lld continue\n", message.c_str(),
                   static_cast<long long>(d.keep));
    return;
  }
  message += "; only the best " + std::to_string(d.keep) + " continue (" + name + " " +
             (maximize ? ">= " : "<= ") + format_value(d.cutoff) + "): pruned";
  if (out_ != nullptr) std::fprintf(out_, "successive halving: %s\n", message.c_str());
  state.request_stop(StopReason::kPruned, message);
}

}  // namespace trainscope::callbacks
