#pragma once
// Config: the fully resolved configuration of a run, and the defaults policy that fills it.
//
// Every setting has a key ("train.lr"), a typed value, where the value came from (a default,
// a config file, --set, the library) and, for defaults, the reason for it. The keys, their
// defaults, reasons, help and checks are declared once, with the options field each one sets, in
// src/session/settings.cpp; `trainscope train --help` and config.toml list them from there.

#include <trainscope/error.h>

#include <cstdint>
#include <filesystem>
#include <functional>
#include <memory>
#include <optional>
#include <iosfwd>
#include <map>
#include <string>
#include <variant>
#include <vector>

namespace trainscope {

// Index order is part of the contract (to_toml_literal and the parsers switch on it); new types go
// last.
using ConfigValue = std::variant<bool, int64_t, double, std::string, std::vector<int64_t>,
                                 std::vector<std::string>, std::vector<double>>;

// One setting of a resolved config.
struct Setting {
  std::string key;
  ConfigValue value;
  std::string source;  // "default", "<file>:<line>", "--set", "library"
  std::string reason;  // why this value: the defaults policy for defaults, else "set by the user"
};

// Schema entry of a known key: its type and default come from `default_value`.
struct SettingSpec {
  std::string key;
  ConfigValue default_value;
  std::string reason;  // why the default is what it is
  std::string help;    // what the setting does (shown by --help)
  // nullopt when the value is acceptable; else the rest of the message after "<where>: <key> =
  // <value>", e.g. " is out of range; expected a positive number such as 0.001".
  std::function<std::optional<std::string>(const ConfigValue&)> check = nullptr;
};

class Config;
// The known keys, in the order they are printed, and the policy that fills defaults depending
// on other settings (run by Config::resolve after the checks).
struct Schema {
  std::vector<SettingSpec> settings;
  std::function<void(Config&)> derive = nullptr;
};

// An ordered set of settings over the known keys of a schema. Copyable value type (copies share
// the immutable schema); not thread-safe. The session's schema and its defaults:
// trainscope::default_config() (session/settings.h).
class Config {
 public:
  // Every key of `schema` at its default, with the reason for it.
  explicit Config(std::shared_ptr<const Schema> schema);
  const std::vector<SettingSpec>& schema() const { return schema_->settings; }

  // Overrides from a TOML file. Throws ConfigError naming file, line, key and value for an
  // unknown key, a wrong type or an out-of-range value.
  void merge_file(const std::filesystem::path& file);
  // The same for TOML text; `origin` names it in errors ("checkpoint.ckpt config").
  void merge_text(const std::string& toml, const std::string& origin);
  // Override from text "key=value" (CLI --set); the value is parsed according to the key's type.
  void set_from_string(const std::string& assignment, const std::string& source = "--set");
  // Override with a typed value. Throws ConfigError for an unknown key or a wrong type.
  // `reason` replaces "set by the user" when a tool, not the user, chose the value.
  void set(const std::string& key, ConfigValue value, const std::string& source = "library",
           const std::string& reason = "");
  // A default that depends on other settings: changes the value of `key` while it is still at its
  // default (source stays "default", the reason says what it was derived from). No-op otherwise.
  void derive_default(const std::string& key, ConfigValue value, const std::string& reason);
  // A value that stands for another ("auto", 0 for "one per core") replaced by what it means,
  // keeping where it came from; the reason changes only for a default.
  void resolve_value(const std::string& key, ConfigValue value, const std::string& reason);

  // Runs every setting's check (throws ConfigError naming the first bad one, where it came from
  // and what is expected), then the schema's dependent defaults. Call once after all overrides.
  void resolve();

  bool get_bool(const std::string& key) const;
  int64_t get_int(const std::string& key) const;
  double get_double(const std::string& key) const;
  const std::string& get_string(const std::string& key) const;
  const std::vector<int64_t>& get_ints(const std::string& key) const;
  const std::vector<std::string>& get_strings(const std::string& key) const;
  const std::vector<double>& get_doubles(const std::string& key) const;
  const Setting& setting(const std::string& key) const;
  const std::vector<Setting>& settings() const { return settings_; }

  // config.toml text: sections per prefix, each default annotated with its reason.
  // Reading it back with merge_file() gives the same config.
  std::string to_toml() const;
  // "  lr = 0.001  (the Adam rule of thumb)" lines for every setting still at its default.
  void print_defaults(std::ostream& out) const;

 private:
  Setting& find(const std::string& key, const std::string& where);
  std::shared_ptr<const Schema> schema_;
  std::vector<Setting> settings_;
};

// Names of an enum's values in config text ("adam", "sgd"), declared once beside the enum.
template <typename E>
struct EnumName {
  E value;
  const char* name;
};
template <typename E, size_t N>
const char* name_of(E value, const EnumName<E> (&names)[N]) {
  for (const auto& n : names)
    if (n.value == value) return n.name;
  return "?";
}
// The value named `name`; nullopt when no value has that name.
template <typename E, size_t N>
std::optional<E> value_of(const std::string& name, const EnumName<E> (&names)[N]) {
  for (const auto& n : names)
    if (name == n.name) return n.value;
  return std::nullopt;
}

// The value as a TOML literal: 0.001, true, "cnn", [32, 64], ["hflip", "rotate(10)"].
std::string to_toml_literal(const ConfigValue& value);

// The items of list text as --set takes it: `[a, "b(1, 2)", [3, 4]]` or `a, b(1, 2)`. Commas
// inside parentheses, brackets or quotes do not split; quotes around an item are removed.
// nullopt when a bracket, parenthesis or quote is left open.
std::optional<std::vector<std::string>> split_config_list(std::string text);

}  // namespace trainscope
