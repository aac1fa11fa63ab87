// The diagnostics scenario suite at full size: each run built to show one problem, plus healthy
// controls, at several seeds. Reports per scenario how many seeds found the expected problem and
// when, every warning raised, and per detector its detection rate on the scenarios built for it
// and its false-positive rate on the healthy controls.
//   bench_diagnose [--examples N] [--epochs N] [--every N] [--seeds K]
#include "../tests/integration/diagnose_scenarios.h"

#include <algorithm>
#include <cstdio>
#include <map>
#include <set>
#include <string>

namespace sc = trainscope::scenarios;

namespace {

std::set<std::string> split_kinds(const std::string& expected) {
  std::set<std::string> out;
  size_t start = 0;
  while (start <= expected.size() && !expected.empty()) {
    const size_t bar = expected.find('|', start);
    out.insert(expected.substr(start, bar - start));
    if (bar == std::string::npos) break;
    start = bar + 1;
  }
  return out;
}

}  // namespace

int main(int argc, char** argv) {
  sc::Scale scale;
  scale.train_examples = 20000;
  scale.overfit_examples = 500;
  scale.epochs = 10;
  scale.every = 20;
  int64_t seeds = 1;
  std::string only;  // scenarios whose name contains this
  for (int i = 1; i + 1 < argc; i += 2) {
    std::string k = argv[i];
    if (k == "--examples") scale.train_examples = std::stoll(argv[i + 1]);
    if (k == "--epochs") scale.epochs = std::stoll(argv[i + 1]);
    if (k == "--every") scale.every = std::stoll(argv[i + 1]);
    if (k == "--seeds") seeds = std::stoll(argv[i + 1]);
    if (k == "--only") only = argv[i + 1];
  }
  trainscope::configure_process();
  // Per detector kind: runs of its own scenarios, and those that found it; healthy runs that
  // raised it. Every scenario's first detection is judged against a quarter of its epochs.
  std::map<std::string, int> target_runs, target_found, healthy_raised;
  int problem_runs = 0, detected_runs = 0, early_runs = 0, healthy_runs = 0,
      false_positive_runs = 0;
  std::printf(
      "| scenario | expected | detected (seeds) | first epoch (each seed) | warnings and errors "
      "raised (seed 0) | seconds per run |\n|---|---|---|---|---|---|\n");
  std::vector<std::string> healthy_messages;
  for (const auto& s : sc::all()) {
    if (s.name.find(only) == std::string::npos) continue;
    int found = 0;
    std::string firsts, raised;
    double seconds = 0;
    const auto kinds = split_kinds(s.expected);
    for (int64_t seed = 0; seed < seeds; ++seed) {
      scale.seed = uint64_t(seed);
      auto r = sc::run(s, scale);
      seconds += r.seconds;
      const int64_t epochs = scale.epochs * s.epoch_factor;
      if (seed == 0)
        for (const auto& w : r.warnings) raised += (raised.empty() ? "" : ", ") + w;
      std::set<std::string> kinds_raised;
      for (const auto& w : r.warnings) kinds_raised.insert(w.substr(0, w.find('@')));
      if (s.expected.empty()) {
        ++healthy_runs;
        false_positive_runs += !r.warnings.empty();
        for (const auto& k : kinds_raised) ++healthy_raised[k];
        for (size_t i = 0; i < r.warnings.size(); ++i)
          healthy_messages.push_back(s.name + ", seed " + std::to_string(seed) + ": " +
                                     r.warnings[i] + ": " + r.messages[i]);
      } else {
        ++problem_runs;
        detected_runs += r.detected;
        early_runs += r.detected && r.first_epoch <= std::max<int64_t>(1, (epochs + 3) / 4);
        for (const auto& k : kinds) ++target_runs[k];
        for (const auto& k : kinds)
          if (kinds_raised.count(k)) ++target_found[k];
      }
      found += r.detected;
      firsts += (firsts.empty() ? "" : ", ") +
                (r.first_epoch > 0 ? std::to_string(r.first_epoch) : std::string("-"));
    }
    std::printf("| %s | %s | %d/%lld | %s | %s | %.0f |\n", s.name.c_str(),
                s.expected.empty() ? "(healthy: nothing)" : s.expected.c_str(), found,
                static_cast<long long>(seeds), s.expected.empty() ? "-" : firsts.c_str(),
                raised.empty() ? "none" : raised.c_str(), seconds / double(seeds));
    std::fflush(stdout);
  }
  std::printf(
      "\ndetection %d/%d runs (%d within the first quarter of the run); false positives on "
      "healthy runs %d/%d (%lld training examples, %lld epochs, %lld seeds)\n",
      detected_runs, problem_runs, early_runs, false_positive_runs, healthy_runs,
      static_cast<long long>(scale.train_examples), static_cast<long long>(scale.epochs),
      static_cast<long long>(seeds));
  if (!healthy_messages.empty()) std::printf("\nwarnings on healthy runs:\n");
  for (const auto& m : healthy_messages) std::printf("- %s\n", m.c_str());
  std::printf(
      "\n| detector | detection on its scenarios | raised on healthy runs |\n|---|---|---|\n");
  std::set<std::string> every_kind;
  for (const auto& d : trainscope::diagnose::default_detectors()) every_kind.insert(d->kind());
  for (const auto& [k, n] : healthy_raised) every_kind.insert(k);
  for (const auto& k : every_kind) {
    const std::string detection = target_runs.count(k) ? std::to_string(target_found[k]) + "/" +
                                                             std::to_string(target_runs[k])
                                                       : "(no scenario)";
    std::printf("| %s | %s | %d/%d |\n", k.c_str(), detection.c_str(), healthy_raised[k],
                healthy_runs);
  }
  return 0;
}
