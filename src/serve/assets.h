#pragma once
// The front end, embedded in the library at build time (cmake/embed_web.cmake writes the table
// from web/*.html|js|css and uPlot's dist files).
#include <string_view>

namespace trainscope::serve {

struct Asset {
  std::string_view path;  // "index.html", "app.js", "vendor/uPlot.esm.js", ...
  std::string_view content;
  std::string_view mime;
};

// nullptr when no asset has that path.
const Asset* find_asset(std::string_view path);

}  // namespace trainscope::serve
