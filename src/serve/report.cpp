#include <trainscope/error.h>
#include <trainscope/serve/dashboard.h>

#include "serve/assets.h"
#include "serve/run_reader.h"

#include <sstream>

namespace trainscope::serve {
namespace {

constexpr size_t kReportPoints = 1500;

std::string asset_text(std::string_view path) {
  const Asset* a = find_asset(path);
  if (a == nullptr)
    throw Error("report: the front end lacks " + std::string(path) + " (rebuild trainscope)");
  return std::string(a->content);
}

// An ES module as part of one inline module: its imports go (everything shares one scope), and
// `export` keywords at the start of a line are dropped.
std::string inline_module(std::string_view path) {
  std::istringstream in(asset_text(path));
  std::string out, line;
  while (std::getline(in, line)) {
    if (line.rfind("import ", 0) == 0) continue;
    if (line.rfind("export ", 0) == 0) line.erase(0, 7);
    out += line;
    out += '\n';
  }
  return out;
}

// Text inside <script> must not close it early.
std::string script_safe(std::string text) {
  for (size_t pos = 0; (pos = text.find("</", pos)) != std::string::npos; pos += 3)
    text.replace(pos, 2, "<\\/");
  return text;
}

std::string html_escape(const std::string& s) {
  std::string out;
  for (char c : s) {
    switch (c) {
      case '&':
        out += "&amp;";
        break;
      case '<':
        out += "&lt;";
        break;
      case '>':
        out += "&gt;";
        break;
      case '"':
        out += "&quot;";
        break;
      case '\'':
        out += "&#39;";
        break;
      default:
        out += c;
    }
  }
  return out;
}

// JSON inside a <script type="application/json">: '<', '>' and '&' as \u escapes, so that no
// value (a run named "</script><script>...") can end the element.
std::string json_for_html(const nlohmann::json& j) {
  const std::string text = j.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
  std::string out;
  out.reserve(text.size());
  for (char c : text) {
    if (c == '<')
      out += "\\u003c";
    else if (c == '>')
      out += "\\u003e";
    else if (c == '&')
      out += "\\u0026";
    else
      out += c;
  }
  return out;
}

}  // namespace

std::string static_report(const std::filesystem::path& run_dir) {
  const auto file = run_dir / "run.sqlite";
  if (!std::filesystem::is_regular_file(file))
    throw Error("no run at " + run_dir.string() +
                " (it has no run.sqlite); give a run directory such as runs/cnn-20261128-101500");
  RunReader reader(file);
  std::string name = std::filesystem::absolute(run_dir).lexically_normal().filename().string();
  if (name.empty())
    name = std::filesystem::absolute(run_dir).lexically_normal().parent_path().filename().string();
  nlohmann::json data;
  data["run"] = reader.detail(name);
  data["findings"] = reader.findings();
  data["series"] = reader.all_series(kReportPoints);
  data["generated_at"] = static_cast<double>(std::time(nullptr));

  std::string html;
  html += "<!doctype html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n";
  html += "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n";
  html += "<title>trainscope report: " + html_escape(name) + "</title>\n<style>\n";
  html += script_safe(asset_text("vendor/uPlot.min.css"));
  html += "\n";
  html += script_safe(asset_text("style.css"));
  html += "\n</style>\n</head>\n<body class=\"report\">\n<div id=\"app\"></div>\n";
  html +=
      "<script type=\"application/json\" id=\"report-data\">" + json_for_html(data) + "</script>\n";
  html += "<script>" + script_safe(asset_text("vendor/uPlot.iife.min.js")) + "</script>\n";
  html += "<script type=\"module\">\n";
  for (const char* module : {"util.js", "charts.js", "views.js", "scalars.js", "report.js"})
    html += script_safe(inline_module(module));
  html += "</script>\n</body>\n</html>\n";
  return html;
}

}  // namespace trainscope::serve
