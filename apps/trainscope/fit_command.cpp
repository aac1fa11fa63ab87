#include "fit_command.h"

#include <trainscope/session/settings.h>

#include <sstream>

namespace trainscope::cli {

const std::vector<Shortcut> kTrainShortcuts = {
    {"--epochs", "train.max_epochs"},
    {"--lr", "train.lr"},
    {"--batch-size", "train.batch_size"},
    {"--model", "model.name"},
    {"--data", "data.dataset"},
    {"--name", "run.name"},
    {"--runs-dir", "run.dir"},
    {"--seed", "train.seed"},
    {"--threads", "runtime.threads"},
    {"--progress", "ui.progress"},
    {"--device", "runtime.device"},
};
const std::vector<Shortcut> kFinetuneShortcuts = {
    {"--from", "finetune.from"},
    {"--head", "finetune.head"},
    {"--unfreeze-at", "finetune.unfreeze_at_epoch"},
    {"--backbone-lr-ratio", "finetune.backbone_lr_ratio"},
};

namespace {

// The flags that stand for one value of a setting, for flag_name (build_config sets them from
// FitArgs' bools).
struct Flag {
  const char* flag;
  const char* key;
  const char* value;
};
const Flag kFlags[] = {
    {"--no-dashboard", "ui.dashboard", "false"},
    {"--auto-remedy", "diagnose.auto_remedy", "true"},
    {"--train-bn", "finetune.train_bn", "true"},
    {"--head-only", "finetune.head_only", "true"},
};

std::string settings_help() {
  std::ostringstream o;
  o << "\nSettings (--set KEY=VALUE, or [section] key = value in a --config TOML file):\n";
  for (const auto& s : default_config().schema())
    o << "  " << s.key << " = " << to_toml_literal(s.default_value) << "\n      " << s.help
      << "; default because " << s.reason << "\n";
  return o.str();
}

// Quoted for a POSIX shell when it holds anything a shell would read.
std::string shell_word(const std::string& word) {
  if (word.find_first_not_of(
          "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._-+=/:,") ==
      std::string::npos)
    return word;
  std::string quoted = "'";
  for (char c : word) quoted += c == '\'' ? std::string("'\\''") : std::string(1, c);
  return quoted + "'";
}

}  // namespace

Config build_config(const FitArgs& args) {
  Config config = default_config();
  if (!args.config_file.empty()) config.merge_file(args.config_file);
  for (const auto& s : args.shortcuts) config.set_from_string(s.key + "=" + s.value, s.flag);
  for (const auto& s : args.sets) config.set_from_string(s, "--set");
  if (args.no_dashboard) config.set_from_string("ui.dashboard=false", "--no-dashboard");
  if (args.auto_remedy) config.set_from_string("diagnose.auto_remedy=true", "--auto-remedy");
  if (args.train_bn) config.set_from_string("finetune.train_bn=true", "--train-bn");
  if (args.head_only) config.set_from_string("finetune.head_only=true", "--head-only");
  return config;
}

void FitCommand::add_settings_options() {
  app_->add_option("--config", args_.config_file,
                   "TOML file of settings (a run's config.toml works)")
      ->check(CLI::ExistingFile);
  app_->add_option("--set", args_.sets,
                   "override a setting: --set train.lr=0.0003 (repeatable; the settings are "
                   "listed by trainscope train --help)");
}

void FitCommand::add_shortcut_options(const std::vector<Shortcut>& shortcuts) {
  const size_t first = shortcuts_.size();
  shortcuts_.insert(shortcuts_.end(), shortcuts.begin(), shortcuts.end());
  values_.resize(shortcuts_.size());
  for (size_t i = first; i < shortcuts_.size(); ++i) {
    const auto& spec = default_config().setting(shortcuts_[i].key);
    app_->add_option(shortcuts_[i].flag, values_[i],
                     "same as --set " + std::string(shortcuts_[i].key) + "=VALUE (default " +
                         to_toml_literal(spec.value) + ")");
  }
}

void FitCommand::add_fit_options(const std::vector<Shortcut>& shortcuts) {
  const bool first = shortcuts_.empty();
  if (first) add_settings_options();
  add_shortcut_options(shortcuts);
  if (!first) return;
  static int nproc_help = 0;  // taken out of the command line before parsing (dist/launch.h)
  app_->add_option("--nproc", nproc_help,
                   "train with N data-parallel processes on this machine (Gloo); under "
                   "torchrun-style launchers the RANK/WORLD_SIZE/MASTER_* variables are used");
  app_->add_flag("--no-test", args_.no_test,
                 "skip evaluating the test split after training (default: test)");
  app_->add_flag("--no-dashboard", args_.no_dashboard,
                 "do not serve the dashboard while training (same as --set ui.dashboard=false)");
  app_->add_flag("--auto-remedy", args_.auto_remedy,
                 "let diagnostics clip gradients, lower the lr or stop (default: off; same as "
                 "--set diagnose.auto_remedy=true)");
  app_->footer(settings_help());
}

void FitCommand::collect() {
  for (size_t i = 0; i < shortcuts_.size(); ++i)
    if (app_->count(shortcuts_[i].flag) > 0)
      args_.shortcuts.push_back({shortcuts_[i].key, values_[i], shortcuts_[i].flag});
}

std::string flag_name(const std::string& key, const std::string& value) {
  for (const auto& f : kFlags)
    if (key == f.key && value == f.value) return f.flag;
  for (const auto* table : {&kTrainShortcuts, &kFinetuneShortcuts})
    for (const auto& s : *table)
      if (key == s.key) return std::string(s.flag) + " " + shell_word(value);
  return "--set " + shell_word(key + "=" + value);
}

}  // namespace trainscope::cli
