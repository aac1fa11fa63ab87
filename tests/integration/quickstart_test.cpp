// The library trains as the CLI does: examples/quickstart (a Session built from a Config in code)
// and `trainscope train` on the same settings give the same batch choice, the same augmentation,
// the same printed settings and pre-flight, the same metrics and, on CPU, the same weights bit for
// bit.
#include <gtest/gtest.h>

#include "process.h"

#include <sqlite3.h>

#include <algorithm>
#include <sstream>
#include <string>
#include <vector>

#ifdef TRAINSCOPE_QUICKSTART

namespace {

using namespace trainscope::testing;
const char* kFashion = "/usr/share/datasets/fashion-mnist/train-images-idx3-ubyte.gz";

std::vector<std::string> rows(const fs::path& db, const std::string& sql) {
  sqlite3* h = nullptr;
  EXPECT_EQ(sqlite3_open_v2(db.c_str(), &h, SQLITE_OPEN_READONLY, nullptr), SQLITE_OK);
  sqlite3_stmt* st = nullptr;
  EXPECT_EQ(sqlite3_prepare_v2(h, sql.c_str(), -1, &st, nullptr), SQLITE_OK) << sql;
  std::vector<std::string> out;
  while (st && sqlite3_step(st) == SQLITE_ROW) {
    std::string row;
    for (int c = 0; c < sqlite3_column_count(st); ++c) {
      auto* t = sqlite3_column_text(st, c);
      row += (c ? "|" : "") + std::string(t ? reinterpret_cast<const char*>(t) : "NULL");
    }
    out.push_back(row);
  }
  sqlite3_finalize(st);
  sqlite3_close(h);
  return out;
}

// The only run directory under `runs`.
fs::path only_run(const fs::path& runs) {
  std::vector<fs::path> found;
  for (const auto& e : fs::directory_iterator(runs)) found.push_back(e.path());
  EXPECT_EQ(found.size(), 1u) << runs;
  return found.empty() ? fs::path() : found.front();
}

// config.toml's key = value lines, without the comments that say where a value came from, the
// run's name, and ui.dashboard (a server the CLI starts beside the run; the test turns it off).
std::vector<std::string> settings(const fs::path& run) {
  std::istringstream in(file_text(run / "config.toml"));
  std::vector<std::string> out;
  std::string line;
  while (std::getline(in, line)) {
    if (line.empty() || line[0] == '#') continue;
    line = line.substr(0, line.find("  #"));
    if (line.rfind("name = ", 0) == 0 || line.rfind("dashboard = ", 0) == 0) continue;
    out.push_back(line);
  }
  return out;
}

// The output line that starts with `prefix`, up to its first " (" (timings follow).
std::string line_of(const std::string& out, const std::string& prefix) {
  const size_t at = out.find("\n" + prefix);
  if (at == std::string::npos) return "";
  const std::string line = out.substr(at + 1, out.find('\n', at + 1) - at - 1);
  return line.substr(0, line.find(" ("));
}

}  // namespace

TEST(Quickstart, TrainsExactlyAsTheCliOnTheSameSettings) {
  if (!fs::exists(kFashion)) GTEST_SKIP() << "dataset-fashion-mnist is not installed";
  const fs::path dir = fs::temp_directory_path() / ("ts_quickstart_" + std::to_string(getpid()));
  fs::remove_all(dir);
  fs::create_directories(dir / "cli");
  fs::create_directories(dir / "lib");
  const ShellResult cli =
      sh("cd '" + (dir / "cli").string() + "' && '" TRAINSCOPE_CLI
         "' train --epochs 1 --set data.limit=600 --set data.test_limit=600 --no-dashboard 2>&1");
  ASSERT_EQ(cli.status, 0) << cli.out;
  const ShellResult lib = sh("cd '" + (dir / "lib").string() +
                             "' && '" TRAINSCOPE_QUICKSTART "' --limit 600 --epochs 1 2>&1");
  ASSERT_EQ(lib.status, 0) << lib.out;
  const fs::path a = only_run(dir / "cli" / "runs"), b = only_run(dir / "lib" / "runs");
  ASSERT_FALSE(a.empty() || b.empty());

  // The same resolved settings, batch size included, and the same choices printed.
  EXPECT_EQ(settings(a), settings(b));
  const std::string batch = line_of(cli.out, "batch size ");
  EXPECT_NE(batch, "") << cli.out;
  EXPECT_EQ(batch, line_of(lib.out, "batch size ")) << lib.out;
  EXPECT_NE(line_of(lib.out, "pre-flight checks"), "") << lib.out;
  EXPECT_EQ(line_of(cli.out, "pre-flight checks"), line_of(lib.out, "pre-flight checks"));
  // What the run says its model saw.
  const std::string meta =
      "select key, value from meta where key like 'data.%' or key like 'model.%' order by key";
  EXPECT_EQ(rows(a / "run.sqlite", meta), rows(b / "run.sqlite", meta));
  EXPECT_NE(rows(a / "run.sqlite", meta).size(), 0u);
  // Every loss and accuracy, per step and per epoch, and the findings.
  const std::string metrics =
      "select step, epoch, split, tag, value from metrics where tag in ('loss', 'accuracy', "
      "'grad_norm') order by rowid";
  const auto metrics_a = rows(a / "run.sqlite", metrics);
  EXPECT_GT(metrics_a.size(), 3u);
  EXPECT_EQ(metrics_a, rows(b / "run.sqlite", metrics));
  const std::string findings = "select kind, severity, step from findings order by rowid";
  EXPECT_EQ(rows(a / "run.sqlite", findings), rows(b / "run.sqlite", findings));

  // The weights, bit for bit: both exported through the same command.
  for (const auto& [run, out] : {std::pair{a, dir / "a.pt"}, std::pair{b, dir / "b.pt"}}) {
    const ShellResult r = sh("'" TRAINSCOPE_CLI "' export '" + run.string() + "' --out '" +
                             out.string() + "' 2>&1");
    ASSERT_EQ(r.status, 0) << r.out;
  }
  const std::string wa = file_text(dir / "a.pt"), wb = file_text(dir / "b.pt");
  EXPECT_GT(wa.size(), 100000u);
  EXPECT_TRUE(wa == wb) << "the library's weights differ from the CLI's";
  fs::remove_all(dir);
}

#endif  // TRAINSCOPE_QUICKSTART
