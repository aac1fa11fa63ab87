#include <trainscope/diagnose/finding.h>

#include <nlohmann/json.hpp>

#include <algorithm>
#include <cctype>
#include <cmath>
#include <sstream>

namespace trainscope::diagnose {
namespace {

// Calls `each(key, value)` for every {key=value} in `text` and `between(part)` for the text around
// them. A key is lowercase words joined by dots and underscores; anything else in braces is text.
template <typename Each, typename Between>
void scan_refs(const std::string& text, Each each, Between between) {
  size_t done = 0;
  for (size_t open = text.find('{'); open != std::string::npos; open = text.find('{', open + 1)) {
    const size_t close = text.find('}', open);
    const size_t eq = text.find('=', open);
    if (close == std::string::npos) break;
    if (eq == std::string::npos || eq > close || eq == open + 1) continue;
    const std::string key = text.substr(open + 1, eq - open - 1);
    if (key.find_first_not_of("abcdefghijklmnopqrstuvwxyz0123456789_.") != std::string::npos ||
        key.find('.') == std::string::npos)
      continue;
    between(text.substr(done, open - done));
    each(key, text.substr(eq + 1, close - eq - 1));
    done = close + 1;
    open = close;
  }
  between(text.substr(done));
}

}  // namespace

std::string setting_ref(const std::string& key, const std::string& value) {
  return "{" + key + "=" + value + "}";
}

std::string config_key_name(const std::string& key, const std::string& value) {
  return key + " = " + value;
}

std::string name_settings(const std::string& text, const SettingNamer& namer) {
  std::string out;
  scan_refs(
      text,
      [&](const std::string& key, const std::string& value) {
        out += namer ? namer(key, value) : config_key_name(key, value);
      },
      [&](const std::string& part) { out += part; });
  return out;
}

std::vector<std::pair<std::string, std::string>> setting_refs(const std::string& text) {
  std::vector<std::pair<std::string, std::string>> refs;
  scan_refs(
      text,
      [&](const std::string& key, const std::string& value) { refs.emplace_back(key, value); },
      [](const std::string&) {});
  return refs;
}

std::vector<std::vector<std::pair<std::string, std::string>>> setting_alternatives(
    const std::string& text) {
  std::vector<std::vector<std::pair<std::string, std::string>>> out;
  bool next_is_new = true;
  scan_refs(
      text,
      [&](const std::string& key, const std::string& value) {
        if (next_is_new || out.empty()) out.emplace_back();
        out.back().emplace_back(key, value);
        next_is_new = false;
      },
      [&](const std::string& part) {
        // Only the text between two references decides; the first opens the first alternative.
        // "A, use B, or add C" lists three; "(A, B)", "A and B", "A with B" join.
        if (out.empty()) return;
        const bool words = std::any_of(part.begin(), part.end(), [](char c) {
          return std::isalpha(static_cast<unsigned char>(c)) != 0;
        });
        const bool joined =
            part.find(" and ") != std::string::npos || part.find(" with ") != std::string::npos;
        if (part.find(" or ") != std::string::npos ||
            (words && !joined && part.find(',') != std::string::npos))
          next_is_new = true;
      });
  return out;
}

const char* to_string(Severity s) {
  switch (s) {
    case Severity::kInfo:
      return "info";
    case Severity::kWarning:
      return "warning";
    case Severity::kError:
      return "error";
  }
  return "unknown";
}

std::string Finding::to_text(const SettingNamer& namer) const {
  std::ostringstream o;
  o << to_string(severity) << " " << kind;
  if (epoch > 0 || step > 0)
    o << " (epoch " << epoch << ", step " << step << ")";
  else if (kind.rfind("data_", 0) == 0)
    o << " (data check)";
  else
    o << " (pre-flight)";
  o << ": " << name_settings(message, namer) << "\n  remedy: " << name_settings(remedy, namer);
  return o.str();
}

std::string Finding::evidence_json() const {
  nlohmann::json j = nlohmann::json::object();
  for (const auto& [k, v] : evidence)
    j[k] = std::isfinite(v) ? nlohmann::json(v) : nlohmann::json(std::to_string(v));
  return j.dump();
}

}  // namespace trainscope::diagnose
