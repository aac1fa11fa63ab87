#pragma once
// The options of the commands that build a Config from settings (train, finetune, check, tune lr,
// data preview): --config, --set, the shortcut flags for the most used settings, and the way the
// CLI names a setting in what it prints (as the flag a user types).
#include <trainscope/config.h>
#include <trainscope/diagnose/finding.h>

#include <CLI/CLI.hpp>

#include <deque>
#include <string>
#include <vector>

namespace trainscope::cli {

// A shortcut flag: "--lr 0.01" is "--set train.lr=0.01".
struct Shortcut {
  const char* flag;
  const char* key;
};
extern const std::vector<Shortcut> kTrainShortcuts;     // train and finetune
extern const std::vector<Shortcut> kFinetuneShortcuts;  // finetune only

struct FitArgs {
  std::string config_file;
  std::vector<std::string> sets;  // --set KEY=VALUE, and the flags as settings, in order
  struct Given {
    std::string key, value, flag;
  };
  std::vector<Given> shortcuts;  // the shortcut flags given, in order
  bool no_test = false;
  bool no_dashboard = false;
  bool auto_remedy = false;
  bool train_bn = false;
  bool head_only = false;
};

// The default config, then --config, the shortcuts, --set and the flags, in that order.
Config build_config(const FitArgs& args);

// A command's fit options. CLI11 keeps references into it: it must outlive parsing.
class FitCommand {
 public:
  FitCommand(CLI::App* app, FitArgs& args) : app_(app), args_(args) {}
  // --config and --set only (check, tune lr, data preview).
  void add_settings_options();
  // The shortcut flags of `shortcuts` alone (check: --data, --model, ... after
  // add_settings_options); collect() gathers them.
  void add_shortcut_options(const std::vector<Shortcut>& shortcuts);
  // --config, --set, `shortcuts`, --nproc, --no-test, --no-dashboard, --auto-remedy, and the
  // settings list as the help footer. A second call adds more shortcuts.
  void add_fit_options(const std::vector<Shortcut>& shortcuts);
  // After parsing: the shortcuts given, and the flags as settings, into the args.
  void collect();

 private:
  CLI::App* app_;
  FitArgs& args_;
  std::vector<Shortcut> shortcuts_;
  std::deque<std::string> values_;  // one per shortcut; a deque, so that references stay valid
};

// A setting as the CLI user types it: "--lr 0.0001", "--auto-remedy", "--set key=value".
std::string flag_name(const std::string& key, const std::string& value);

}  // namespace trainscope::cli
