// Config: typed settings over a schema, read from TOML and "key=value" text, validated by the
// schema's checks and written back as TOML. The schema itself (which keys, their defaults and
// reasons) is the session's: src/session/settings.cpp.

#include <trainscope/config.h>

#include <toml++/toml.h>

#include <algorithm>
#include <cmath>
#include <fstream>
#include <iomanip>
#include <ostream>
#include <sstream>
#include <thread>

#include <sched.h>

namespace trainscope {
namespace {

using Ints = std::vector<int64_t>;
using Strings = std::vector<std::string>;
using Numbers = std::vector<double>;

const char* type_name(const ConfigValue& v) {
  switch (v.index()) {
    case 0:
      return "a boolean (true or false)";
    case 1:
      return "an integer";
    case 2:
      return "a number";
    case 3:
      return "a string";
    case 5:
      return "a list of strings";
    case 6:
      return "a number or a list of numbers";
    default:
      return "a list of integers";
  }
}

std::string quote(const std::string& s) {
  std::string out = "\"";
  for (char c : s) {
    if (c == '"' || c == '\\') out += '\\';
    if (c == '\n') {
      out += "\\n";
      continue;
    }
    out += c;
  }
  return out + "\"";
}

std::string trim(std::string s) {
  auto not_space = [](unsigned char c) { return !std::isspace(c); };
  s.erase(s.begin(), std::find_if(s.begin(), s.end(), not_space));
  s.erase(std::find_if(s.rbegin(), s.rend(), not_space).base(), s.end());
  return s;
}

// Closest known key by edit distance, for "did you mean" hints.
std::string closest_key(const std::string& key, const std::vector<SettingSpec>& specs) {
  auto distance = [](const std::string& a, const std::string& b) {
    std::vector<size_t> row(b.size() + 1);
    for (size_t j = 0; j <= b.size(); ++j) row[j] = j;
    for (size_t i = 1; i <= a.size(); ++i) {
      size_t diag = row[0];
      row[0] = i;
      for (size_t j = 1; j <= b.size(); ++j) {
        size_t up = row[j];
        row[j] = std::min({row[j] + 1, row[j - 1] + 1, diag + (a[i - 1] == b[j - 1] ? 0 : 1)});
        diag = up;
      }
    }
    return row[b.size()];
  };
  std::string best;
  size_t best_d = 4;  // farther than this is not a typo
  for (const auto& s : specs) {
    size_t d = distance(key, s.key);
    if (d < best_d) best_d = d, best = s.key;
  }
  return best;
}

std::string unknown_key_message(const std::string& where, const std::string& key,
                                const std::vector<SettingSpec>& specs) {
  std::string msg = where + ": unknown setting '" + key + "'";
  std::string near = closest_key(key, specs);
  if (!near.empty()) return msg + "; did you mean '" + near + "'?";
  return msg + "; `trainscope train --help` lists the settings";
}

template <typename Fail>
Strings parse_string_list(const std::string& t, const Fail& fail) {
  auto items = split_config_list(t);
  if (!items) throw fail();
  return *items;
}

}  // namespace

std::optional<std::vector<std::string>> split_config_list(std::string t) {
  t = trim(t);
  if (!t.empty() && t.front() == '[') {
    if (t.back() != ']') return std::nullopt;
    t = t.substr(1, t.size() - 2);
  }
  Strings out;
  std::string item;
  int depth = 0;
  bool quoted = false;
  auto push = [&]() {
    std::string v = trim(item);
    item.clear();
    if (v.size() >= 2 && (v.front() == '"' || v.front() == '\'') && v.back() == v.front())
      v = v.substr(1, v.size() - 2);
    if (!v.empty()) out.push_back(v);
  };
  for (char c : t) {
    if (c == '"') quoted = !quoted;
    if (!quoted && (c == '(' || c == '[')) ++depth;
    if (!quoted && (c == ')' || c == ']')) --depth;
    if (c == ',' && depth == 0 && !quoted) {
      push();
      continue;
    }
    item += c;
  }
  if (quoted || depth != 0) return std::nullopt;
  push();
  return out;
}

namespace {

// Parses CLI text into the type of `like`.
ConfigValue parse_as(const ConfigValue& like, const std::string& text, const std::string& where) {
  std::string t = trim(text);
  auto fail = [&]() -> ConfigError {
    return ConfigError(where + ": expected " + type_name(like) + ", got '" + text + "'");
  };
  try {
    switch (like.index()) {
      case 0:
        if (t == "true" || t == "1" || t == "on" || t == "yes") return true;
        if (t == "false" || t == "0" || t == "off" || t == "no") return false;
        throw fail();
      case 1: {
        size_t used = 0;
        long long v = std::stoll(t, &used);
        if (used != t.size()) throw fail();
        return int64_t{v};
      }
      case 2: {
        size_t used = 0;
        double v = std::stod(t, &used);
        if (used != t.size()) throw fail();
        return v;
      }
      case 3:
        if (t.size() >= 2 && t.front() == '"' && t.back() == '"') return t.substr(1, t.size() - 2);
        return t;
      case 5:
        return parse_string_list(t, fail);
      case 6: {  // "0.5", "0.485,0.456,0.406" or "[0.485, 0.456, 0.406]"
        Numbers out;
        for (const std::string& item : parse_string_list(t, fail)) {
          size_t used = 0;
          out.push_back(std::stod(item, &used));
          if (used != item.size()) throw fail();
        }
        return out;
      }
      default: {
        if (!t.empty() && t.front() == '[') {
          if (t.back() != ']') throw fail();
          t = t.substr(1, t.size() - 2);
        }
        Ints out;
        std::stringstream ss(t);
        std::string item;
        while (std::getline(ss, item, ',')) {
          item = trim(item);
          if (item.empty()) continue;
          size_t used = 0;
          out.push_back(std::stoll(item, &used));
          if (used != item.size()) throw fail();
        }
        return out;
      }
    }
  } catch (const std::logic_error&) {  // stoll/stod: invalid_argument, out_of_range
    throw fail();
  }
}

// Converts a TOML node to the type of `like`; integers are accepted where numbers are expected.
ConfigValue from_toml(const ConfigValue& like, const toml::node& node, const std::string& where) {
  auto fail = [&]() {
    return ConfigError(
        where + ": expected " + type_name(like) + ", got a " +
        std::string(toml::impl::node_type_friendly_names[static_cast<int>(node.type())]));
  };
  switch (like.index()) {
    case 0:
      if (auto v = node.value_exact<bool>()) return *v;
      throw fail();
    case 1:
      if (auto v = node.value_exact<int64_t>()) return *v;
      throw fail();
    case 2:
      if (node.is_number()) return *node.value<double>();
      throw fail();
    case 3:
      if (auto v = node.value_exact<std::string>()) return *v;
      // "auto"-or-number settings (train.batch_size) take a bare integer too; resolve() checks it.
      if (auto v = node.value_exact<int64_t>()) return std::to_string(*v);
      throw fail();
    case 5: {
      const toml::array* arr = node.as_array();
      if (!arr) throw fail();
      Strings out;
      for (const auto& item : *arr) {
        auto v = item.value_exact<std::string>();
        if (!v) throw fail();
        out.push_back(*v);
      }
      return out;
    }
    case 6: {  // a bare number is a list of one (config.toml files before lists were allowed)
      if (node.is_number()) return Numbers{*node.value<double>()};
      const toml::array* arr = node.as_array();
      if (!arr) throw fail();
      Numbers out;
      for (const auto& item : *arr) {
        if (!item.is_number()) throw fail();
        out.push_back(*item.value<double>());
      }
      return out;
    }
    default: {
      const toml::array* arr = node.as_array();
      if (!arr) throw fail();
      Ints out;
      for (const auto& item : *arr) {
        auto v = item.value_exact<int64_t>();
        if (!v) throw fail();
        out.push_back(*v);
      }
      return out;
    }
  }
}

}  // namespace

std::string to_toml_literal(const ConfigValue& value) {
  std::ostringstream out;
  switch (value.index()) {
    case 0:
      out << (std::get<bool>(value) ? "true" : "false");
      break;
    case 1:
      out << std::get<int64_t>(value);
      break;
    case 2: {
      double d = std::get<double>(value);
      out << std::setprecision(17) << d;
      std::string s = out.str();
      // Shortest text that reads back to the same double; TOML floats need a '.' or exponent.
      for (int p = 1; p <= 17; ++p) {
        std::ostringstream o;
        o << std::setprecision(p) << d;
        if (std::stod(o.str()) == d) {
          s = o.str();
          break;
        }
      }
      // Whole numbers read better without an exponent: 60.0, not 6e+01.
      if (s.find_first_of("eE") != std::string::npos && std::isfinite(d) && d == std::floor(d) &&
          std::fabs(d) < 1e15) {
        std::ostringstream whole;
        whole << std::fixed << std::setprecision(0) << d;
        s = whole.str();
      }
      if (s.find_first_of(".eEn") == std::string::npos) s += ".0";
      return s;
    }
    case 3:
      out << quote(std::get<std::string>(value));
      break;
    case 5: {
      out << "[";
      const auto& v = std::get<Strings>(value);
      for (size_t i = 0; i < v.size(); ++i) out << (i ? ", " : "") << quote(v[i]);
      out << "]";
      break;
    }
    case 6: {
      out << "[";
      const auto& v = std::get<Numbers>(value);
      for (size_t i = 0; i < v.size(); ++i) out << (i ? ", " : "") << to_toml_literal(v[i]);
      out << "]";
      break;
    }
    default: {
      out << "[";
      const auto& v = std::get<Ints>(value);
      for (size_t i = 0; i < v.size(); ++i) out << (i ? ", " : "") << v[i];
      out << "]";
    }
  }
  return out.str();
}

Config::Config(std::shared_ptr<const Schema> schema) : schema_(std::move(schema)) {
  if (!schema_) throw std::invalid_argument("Config: the schema is null");
  for (const auto& s : schema_->settings)
    settings_.push_back({s.key, s.default_value, "default", s.reason});
}

Setting& Config::find(const std::string& key, const std::string& where) {
  for (auto& s : settings_)
    if (s.key == key) return s;
  throw ConfigError(unknown_key_message(where, key, schema_->settings));
}

const Setting& Config::setting(const std::string& key) const {
  for (const auto& s : settings_)
    if (s.key == key) return s;
  throw ConfigError(unknown_key_message("config", key, schema_->settings));
}

void Config::set(const std::string& key, ConfigValue value, const std::string& source,
                 const std::string& reason) {
  Setting& s = find(key, source);
  if (value.index() == 1 && s.value.index() == 2) value = double(std::get<int64_t>(value));
  if (value.index() == 1 && s.value.index() == 3) value = std::to_string(std::get<int64_t>(value));
  if (value.index() == 1 && s.value.index() == 6) value = Numbers{double(std::get<int64_t>(value))};
  if (value.index() == 2 && s.value.index() == 6) value = Numbers{std::get<double>(value)};
  if (value.index() != s.value.index())
    throw ConfigError(source + ": " + key + " expects " + type_name(s.value) + ", got " +
                      to_toml_literal(value));
  s.value = std::move(value);
  s.source = source;
  s.reason = reason.empty() ? "set by the user" : reason;
}

void Config::derive_default(const std::string& key, ConfigValue value, const std::string& reason) {
  Setting& s = find(key, "derived default");
  if (s.source != "default") return;
  if (value.index() != s.value.index())
    throw std::logic_error("derived default of " + key + " has the wrong type");
  s.value = std::move(value);
  s.reason = reason;
}

void Config::resolve_value(const std::string& key, ConfigValue value, const std::string& reason) {
  Setting& s = find(key, "resolved value");
  if (value.index() != s.value.index())
    throw std::logic_error("resolved value of " + key + " has the wrong type");
  s.value = std::move(value);
  if (s.source == "default") s.reason = reason;
}

void Config::set_from_string(const std::string& assignment, const std::string& source) {
  auto eq = assignment.find('=');
  if (eq == std::string::npos)
    throw ConfigError(source + " '" + assignment +
                      "': expected key=value, for example train.lr=0.0003");
  std::string key = trim(assignment.substr(0, eq));
  const Setting& s = find(key, source + " " + key);
  set(key, parse_as(s.value, assignment.substr(eq + 1), source + " " + key), source);
}

void Config::merge_file(const std::filesystem::path& file) {
  if (!std::filesystem::exists(file))
    throw ConfigError("config file " + file.string() + " does not exist");
  std::ifstream in(file, std::ios::binary);
  merge_text(std::string(std::istreambuf_iterator<char>(in), {}), file.string());
}

void Config::merge_text(const std::string& text, const std::string& origin) {
  toml::table root;
  try {
    root = toml::parse(text, origin);
  } catch (const toml::parse_error& e) {
    throw ConfigError(origin + ":" + std::to_string(e.source().begin.line) + ": " +
                      std::string(e.description()) + " (not valid TOML)");
  }
  const std::filesystem::path file = origin;
  for (auto&& [section, node] : root) {
    std::string line = std::to_string(node.source().begin.line);
    const toml::table* table = node.as_table();
    if (!table)
      throw ConfigError(file.string() + ":" + line + ": '" + std::string(section.str()) +
                        "' must be a section such as [train]");
    for (auto&& [name, value] : *table) {
      std::string key = std::string(section.str()) + "." + std::string(name.str());
      std::string where = file.string() + ":" + std::to_string(value.source().begin.line);
      Setting& s = find(key, where);
      set(key, from_toml(s.value, value, where + ": " + key), where);
    }
  }
}

void Config::resolve() {
  for (const auto& spec : schema_->settings) {
    if (!spec.check) continue;
    const Setting& s = setting(spec.key);
    if (const auto problem = spec.check(s.value))
      throw ConfigError(s.source + ": " + spec.key + " = " + to_toml_literal(s.value) + *problem);
  }
  if (schema_->derive) schema_->derive(*this);
}

bool Config::get_bool(const std::string& key) const { return std::get<bool>(setting(key).value); }
int64_t Config::get_int(const std::string& key) const {
  return std::get<int64_t>(setting(key).value);
}
double Config::get_double(const std::string& key) const {
  return std::get<double>(setting(key).value);
}
const std::string& Config::get_string(const std::string& key) const {
  return std::get<std::string>(setting(key).value);
}
const std::vector<int64_t>& Config::get_ints(const std::string& key) const {
  return std::get<Ints>(setting(key).value);
}
const std::vector<std::string>& Config::get_strings(const std::string& key) const {
  return std::get<Strings>(setting(key).value);
}
const std::vector<double>& Config::get_doubles(const std::string& key) const {
  return std::get<Numbers>(setting(key).value);
}

std::string Config::to_toml() const {
  std::ostringstream out;
  out << "# trainscope resolved configuration; reuse it with `trainscope train --config FILE`.\n";
  // TOML defines a table once: the settings of a section together, sections in the order they
  // first appear.
  std::vector<std::string> sections;
  for (const auto& s : settings_) {
    const std::string sec = s.key.substr(0, s.key.find('.'));
    if (std::find(sections.begin(), sections.end(), sec) == sections.end()) sections.push_back(sec);
  }
  std::vector<const Setting*> ordered;
  for (const auto& sec : sections)
    for (const auto& s : settings_)
      if (s.key.compare(0, sec.size() + 1, sec + ".") == 0) ordered.push_back(&s);
  std::string section;
  for (const Setting* setting : ordered) {
    const Setting& s = *setting;
    auto dot = s.key.find('.');
    std::string sec = s.key.substr(0, dot), name = s.key.substr(dot + 1);
    if (sec != section) {
      out << "\n[" << sec << "]\n";
      section = sec;
    }
    out << name << " = " << to_toml_literal(s.value);
    if (s.source == "default")
      out << "  # default: " << s.reason;
    else
      out << "  # from " << s.source;
    out << "\n";
  }
  return out.str();
}

void Config::print_defaults(std::ostream& out) const {
  size_t width = 0;
  for (const auto& s : settings_)
    width = std::max(width, s.key.size() + 3 + to_toml_literal(s.value).size());
  for (const auto& s : settings_) {
    std::string lhs = s.key + " = " + to_toml_literal(s.value);
    out << "  " << std::left << std::setw(int(width)) << lhs << "  "
        << (s.source == "default" ? s.reason : "from " + s.source) << "\n";
  }
}

}  // namespace trainscope
