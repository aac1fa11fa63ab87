#pragma once
// Finding: a training problem stated with its evidence and what to change.

#include <cstdint>
#include <map>
#include <string>

namespace trainscope::diagnose {

enum class Severity { kInfo, kWarning, kError };
const char* to_string(Severity severity);

struct Finding {
  std::string kind;  // stable id: "exploding_gradients", "overfitting", ...
  Severity severity = Severity::kWarning;
  int64_t step = 0;     // first step at which it was seen (0 for pre-flight checks)
  int64_t epoch = 0;    // first epoch at which it was seen (0 for pre-flight checks)
  std::string message;  // what is wrong, in words with numbers
  std::map<std::string, double> evidence;  // the numbers that triggered it
  std::string remedy;                      // what to change, concretely

  // "warning  overfitting (epoch 7): <message>\n  remedy: <remedy>"
  std::string to_text() const;
  // {"kind":..., "evidence": {...}, ...} for the run store.
  std::string evidence_json() const;
};

}  // namespace trainscope::diagnose
