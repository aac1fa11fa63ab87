// The crash test: `trainscope train` is killed with SIGKILL at random moments (some while a
// checkpoint is being written, some while its links are made, some twice), `trainscope resume`
// finishes each run, and every run must end bit-identical to one that was never interrupted:
// the same best and last weights, the same metrics rows (no duplicates, no gaps), findings and
// checkpoint records.
#include <trainscope/callbacks/checkpoint.h>
#include <trainscope/models/zoo.h>

#include <gtest/gtest.h>
#include <sqlite3.h>

#include "process.h"

#include <chrono>
#include <filesystem>
#include <random>
#include <set>
#include <string>
#include <thread>
#include <vector>

namespace fs = std::filesystem;
namespace ts = trainscope;

namespace {

using namespace trainscope::testing;

// A small fit with many mid-epoch saves: 3 epochs of 85 steps, a checkpoint every 10 steps.
std::vector<std::string> train_args(const fs::path& runs, const std::string& name,
                                    bool background) {
  return {"train",
          "--model",
          "mlp",
          "--set",
          "model.hidden=[128]",
          "--set",
          "model.dropout=0.2",  // the global RNG matters: its state must resume too
          "--set",
          "data.limit=3000",
          "--epochs",
          "3",
          "--batch-size",
          "32",
          "--set",
          "checkpoint.every_steps=10",
          "--set",
          std::string("checkpoint.background=") + (background ? "true" : "false"),
          "--runs-dir",
          runs.string(),
          "--name",
          name,
          "--progress",
          "off",
          "--no-dashboard",
          "--no-test"};
}

std::vector<std::string> rows(const fs::path& db, const std::string& sql) {
  sqlite3* h = nullptr;
  EXPECT_EQ(sqlite3_open_v2(db.c_str(), &h, SQLITE_OPEN_READONLY, nullptr), SQLITE_OK);
  sqlite3_stmt* st = nullptr;
  EXPECT_EQ(sqlite3_prepare_v2(h, sql.c_str(), -1, &st, nullptr), SQLITE_OK) << sql;
  std::vector<std::string> out;
  while (sqlite3_step(st) == SQLITE_ROW) {
    std::string row;
    for (int c = 0; c < sqlite3_column_count(st); ++c) {
      // Values as SQLite's exact text of the double, so equal rows are bit-equal values.
      if (sqlite3_column_type(st, c) == SQLITE_FLOAT) {
        char num[40];
        std::snprintf(num, sizeof num, "%a", sqlite3_column_double(st, c));
        row += num;
      } else {
        const auto* t = sqlite3_column_text(st, c);
        row += t ? reinterpret_cast<const char*>(t) : "NULL";
      }
      row += "|";
    }
    out.push_back(row);
  }
  sqlite3_finalize(st);
  sqlite3_close(h);
  return out;
}

// What must be equal between a resumed run and the uninterrupted one: everything but wall times
// and the per-epoch timings.
struct RunRecord {
  std::vector<std::string> metrics, findings, checkpoints;
  std::string status;
};

RunRecord record(const fs::path& run) {
  const fs::path db = run / "run.sqlite";
  RunRecord r;
  r.metrics = rows(db,
                   "SELECT step, epoch, split, tag, value FROM metrics WHERE tag NOT IN "
                   "('epoch_seconds', 'samples_per_s', 'data_wait_fraction') AND split != "
                   "'system' "
                   "ORDER BY step, split, tag, epoch, value");
  r.findings = rows(db, "SELECT kind, severity, step, epoch, message FROM findings ORDER BY id");
  r.checkpoints = rows(db,
                       "SELECT DISTINCT path, kind, epoch, step FROM checkpoints ORDER BY step, "
                       "path");
  auto status = rows(db, "SELECT value FROM meta WHERE key = 'status'");
  r.status = status.empty() ? "" : status.front();
  return r;
}

std::vector<torch::Tensor> weights(const fs::path& file) {
  ts::models::MlpOptions o;
  o.hidden = {128};
  o.dropout = 0.2;
  auto model = ts::models::mlp(o);
  ts::callbacks::load_weights(model.module(), file);
  std::vector<torch::Tensor> out = model.snapshot();
  return out;
}

void expect_same_weights(const fs::path& a, const fs::path& b, const std::string& what) {
  auto wa = weights(a), wb = weights(b);
  ASSERT_EQ(wa.size(), wb.size());
  for (size_t i = 0; i < wa.size(); ++i)
    EXPECT_TRUE(torch::equal(wa[i], wb[i])) << what << ": tensor " << i << " differs";
}

class ResumeCrash : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = fs::temp_directory_path() / ("ts_crash_" + std::to_string(::getpid()));
    fs::remove_all(dir_);
    fs::create_directories(dir_);
  }
  void TearDown() override {
    if (!HasFailure()) fs::remove_all(dir_);
  }
  fs::path dir_;
};

TEST_F(ResumeCrash, SigkillAtRandomMomentsThenResumeIsBitIdentical) {
  const fs::path runs = dir_ / "runs";
  const fs::path log = dir_ / "log.txt";
  // The uninterrupted reference, timed from its run directory's config.toml (written just before
  // the fit starts) to its exit, so that random kills fall inside a fit.
  const pid_t ref = spawn(train_args(runs, "reference", true), log);
  ASSERT_TRUE(wait_until([&] { return fs::exists(runs / "reference" / "config.toml"); }, ref, 60));
  const auto t0 = Clock::now();
  ASSERT_EQ(wait_for(ref), 0);
  const double fit_seconds = std::chrono::duration<double>(Clock::now() - t0).count();
  const RunRecord reference = record(runs / "reference");
  ASSERT_EQ(reference.status, "finished|");
  ASSERT_GT(reference.metrics.size(), 255u);  // an lr row per step at least

  struct Trial {
    std::string how;
    std::string marker;  // kill when a file with this in its name is created
    int nth;             // ... the nth such file
    bool background = true;
    bool twice = false;  // kill the resume too
  };
  std::vector<Trial> trials;
  for (int i = 0; i < 8; ++i) trials.push_back({"random moment", "", 0});
  for (int i = 0; i < 6; ++i)  // the temporary file of last.ckpt: mid-write
    trials.push_back({"writing last.ckpt", ".last.ckpt.tmp-", 1 + 5 * i});
  for (int i = 0; i < 3; ++i)  // between last.ckpt and its links (best, top-k, previous)
    trials.push_back({"linking best.ckpt", ".best.ckpt.tmp-link", 1 + i});
  for (int i = 0; i < 3; ++i)
    trials.push_back({"inline save", ".last.ckpt.tmp-", 3 + 7 * i, false});
  for (int i = 0; i < 4; ++i) trials.push_back({"killed twice", "", 0, true, true});

  std::mt19937_64 rng(20261201);
  std::uniform_real_distribution<double> moment(0.0, 1.0);
  int landed = 0;
  for (size_t i = 0; i < trials.size(); ++i) {
    const Trial& t = trials[i];
    const std::string name = "trial-" + std::to_string(i);
    SCOPED_TRACE(name + " (" + t.how + ")");
    const fs::path run = runs / name;
    pid_t pid = spawn(train_args(runs, name, t.background), log);
    bool hit = false;
    if (!t.marker.empty()) {
      hit = kill_on_create(pid, run / "checkpoints", t.marker, t.nth);
    } else {
      // After the run directory exists (before it, there is no run to resume).
      ASSERT_TRUE(wait_until([&] { return fs::exists(run / "config.toml"); }, pid, 60));
      std::this_thread::sleep_for(std::chrono::duration<double>(moment(rng) * 0.9 * fit_seconds));
      hit = kill_now(pid);
    }
    landed += hit;
    if (t.twice) {
      // The resume dies too, while writing its second checkpoint.
      pid = spawn({"resume", name, "--runs-dir", runs.string(), "--no-test", "--no-dashboard",
                   "--progress", "off"},
                  log);
      landed += kill_on_create(pid, run / "checkpoints", ".last.ckpt.tmp-", 2);
    }
    ASSERT_EQ(wait_for(spawn({"resume", name, "--runs-dir", runs.string(), "--no-test",
                              "--no-dashboard", "--progress", "off"},
                             log)),
              0)
        << "resume failed; see " << log;
    const RunRecord resumed = record(run);
    const auto from = rows(run / "run.sqlite",
                           "SELECT value FROM meta WHERE key IN ('resumes', 'resumed_from') "
                           "ORDER BY key");
    std::printf("  %-8s %-18s %-12s resumes: %s last from: %s\n", name.c_str(), t.how.c_str(),
                hit ? "kill mid-fit" : "kill late", from.size() > 1 ? from[1].c_str() : "0",
                from.empty() ? "-" : from[0].c_str());
    EXPECT_EQ(resumed.status, "finished|");
    EXPECT_EQ(resumed.metrics, reference.metrics) << "metrics differ from the uninterrupted run";
    EXPECT_EQ(resumed.findings, reference.findings);
    EXPECT_EQ(resumed.checkpoints, reference.checkpoints);
    for (const char* file : {"best.ckpt", "last.ckpt"})
      expect_same_weights(run / "checkpoints" / file, runs / "reference" / "checkpoints" / file,
                          file);
    if (HasFailure()) break;
  }
  // Most kills must land while the fit runs (a random moment may fall after the end).
  EXPECT_GE(landed, 20) << "too few kills landed mid-fit";
}

}  // namespace
