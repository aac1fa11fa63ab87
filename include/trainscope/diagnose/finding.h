#pragma once
// Finding: a training problem stated with its evidence and what to change.

#include <cstdint>
#include <functional>
#include <map>
#include <string>
#include <utility>
#include <vector>

namespace trainscope::diagnose {

// A setting a remedy proposes is written into its text as "{key=value}" ({train.lr=0.0001}), so
// that each reader names it its own way: the library and the dashboard as the config key
// ("train.lr = 0.0001"), the CLI as its flag ("--lr 0.0001", or "--set key=value").
std::string setting_ref(const std::string& key, const std::string& value);
// How a reader names a proposed setting.
using SettingNamer = std::function<std::string(const std::string& key, const std::string& value)>;
// "train.lr = 0.0001": the config key, as a library user sets it.
std::string config_key_name(const std::string& key, const std::string& value);
// `text` with every {key=value} named by `namer` (config keys when it is null).
std::string name_settings(const std::string& text, const SettingNamer& namer = nullptr);
// The {key=value} references in `text`, in order.
std::vector<std::pair<std::string, std::string>> setting_refs(const std::string& text);
// The same references as the remedy's alternatives: a reference after an " or ", or after a comma
// that starts another clause, in the text since the previous one starts another alternative; the
// others join the one before ("lower the lr ({train.lr=1e-4}) and clip ({train.grad_clip=1})" is
// one, and so is "unfreeze it ({a=1}, {b=2})"; "dropout ({model.dropout=0.3}) or weight decay
// ({train.weight_decay=1e-4})" two; "lower the lr ({...}), use LeakyReLU ({...}), or add batch
// normalization ({...})" three).
std::vector<std::vector<std::pair<std::string, std::string>>> setting_alternatives(
    const std::string& text);

enum class Severity { kInfo, kWarning, kError };
const char* to_string(Severity severity);

struct Finding {
  std::string kind;  // stable id: "exploding_gradients", "overfitting", ...
  Severity severity = Severity::kWarning;
  int64_t step = 0;     // first step at which it was seen (0 for pre-flight checks)
  int64_t epoch = 0;    // first epoch at which it was seen (0 for pre-flight checks)
  std::string message;  // what is wrong, in words with numbers
  std::map<std::string, double> evidence;  // the numbers that triggered it
  std::string remedy;  // what to change, concretely; settings as {key=value} (setting_ref)

  // The settings the remedy proposes, as (key, value), in order.
  std::vector<std::pair<std::string, std::string>> changes() const { return setting_refs(remedy); }
  // "warning  overfitting (epoch 7): <message>\n  remedy: <remedy>", settings named by `namer`.
  std::string to_text(const SettingNamer& namer = nullptr) const;
  // {"kind":..., "evidence": {...}, ...} for the run store.
  std::string evidence_json() const;
};

}  // namespace trainscope::diagnose
