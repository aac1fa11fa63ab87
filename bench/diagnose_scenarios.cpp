// The diagnostics scenario suite at full size: each run built to show one problem, plus healthy
// controls. Reports the epoch of first detection, the detection rate and false positives.
//   bench_diagnose [--examples N] [--epochs N] [--every N]
#include "../tests/integration/diagnose_scenarios.h"

#include <cstdio>
#include <string>

namespace sc = trainscope::scenarios;

int main(int argc, char** argv) {
  sc::Scale scale;
  scale.train_examples = 20000;
  scale.overfit_examples = 500;
  scale.epochs = 10;
  scale.every = 20;
  for (int i = 1; i + 1 < argc; i += 2) {
    std::string k = argv[i];
    if (k == "--examples") scale.train_examples = std::stoll(argv[i + 1]);
    if (k == "--epochs") scale.epochs = std::stoll(argv[i + 1]);
    if (k == "--every") scale.every = std::stoll(argv[i + 1]);
  }
  trainscope::configure_process();
  int problems = 0, detected = 0, controls = 0, false_positives = 0;
  std::printf(
      "| scenario | expected | detected | first epoch | warnings and errors raised | seconds "
      "|\n|---|---|---|---|---|---|\n");
  for (const auto& s : sc::all()) {
    auto r = sc::run(s, scale);
    std::string found;
    for (const auto& w : r.warnings) found += (found.empty() ? "" : ", ") + w;
    if (s.expected.empty()) {
      ++controls;
      false_positives += !r.warnings.empty();
    } else {
      ++problems;
      detected += r.detected;
    }
    std::printf("| %s | %s | %s | %s | %s | %.0f |\n", s.name.c_str(),
                s.expected.empty() ? "(healthy)" : s.expected.c_str(), r.detected ? "yes" : "NO",
                r.first_epoch > 0 ? std::to_string(r.first_epoch).c_str() : "-",
                found.empty() ? "none" : found.c_str(), r.seconds);
    std::fflush(stdout);
  }
  std::printf(
      "\ndetection rate %d/%d; false positives on healthy runs %d/%d (%lld training examples, %lld "
      "epochs)\n",
      detected, problems, false_positives, controls, static_cast<long long>(scale.train_examples),
      static_cast<long long>(scale.epochs));
  return 0;
}
