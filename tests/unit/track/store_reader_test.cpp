// StoreReader against stores a RunStore wrote: what each query returns, in which order, while
// the writer is still open, and how it fails.
#include <gtest/gtest.h>
#include <trainscope/error.h>
#include <trainscope/track/run_store.h>
#include <trainscope/track/store_reader.h>
#include <unistd.h>

#include "../scratch_dir.h"

#include <cmath>
#include <filesystem>
#include <fstream>
#include <limits>
#include <random>
#include <string>
#include <vector>

namespace trainscope::track {
namespace {

namespace fs = std::filesystem;

class StoreReaderTest : public testing::ScratchDirTest {
 protected:
  void SetUp() override {
    ScratchDirTest::SetUp();
    file_ = dir_ / "run.sqlite";
  }
  fs::path file_;
};

struct Row {
  int64_t rowid, step;
  std::string split, tag;
  double value;
};

std::vector<Row> collect(const std::function<size_t(const MetricVisitor&)>& query) {
  std::vector<Row> rows;
  const size_t n = query([&](const MetricRowView& r) {
    rows.push_back({r.rowid, r.step, std::string(r.split), std::string(r.tag), r.value});
  });
  EXPECT_EQ(n, rows.size());
  return rows;
}

TEST_F(StoreReaderTest, MetricsAfterAReadOnlyTheNewRowsInInsertionOrder) {
  RunStore store(file_);
  store.add_metric({20, 1, "train", "loss", 0.5, 1.0});
  store.add_metric({10, 1, "train", "loss", 0.9, 2.0});
  store.add_metric({10, 1, "val", "loss", 0.8, 3.0});
  store.flush();
  StoreReader reader(file_);  // the writer stays open (WAL)
  auto first = collect([&](auto& v) { return reader.metrics_after(0, v); });
  ASSERT_EQ(first.size(), 3u);
  EXPECT_EQ(first[0].step, 20) << "insertion order, not step order";
  EXPECT_EQ(first[2].split, "val");
  store.add_metric({30, 2, "train", "loss", 0.4, 4.0});
  store.flush();
  auto next = collect([&](auto& v) { return reader.metrics_after(first.back().rowid, v); });
  ASSERT_EQ(next.size(), 1u);
  EXPECT_EQ(next[0].step, 30);
  EXPECT_TRUE(collect([&](auto& v) { return reader.metrics_after(next[0].rowid, v); }).empty());
}

TEST_F(StoreReaderTest, MetricsOfOneSeriesOrderByStepAndKeepNan) {
  RunStore store(file_);
  store.add_metric({20, 1, "train", "loss", 0.5, 1.0});
  store.add_metric({10, 1, "train", "loss", std::numeric_limits<double>::quiet_NaN(), 2.0});
  store.add_metric({10, 1, "train", "accuracy", 0.7, 3.0});
  store.add_metric({5, 1, "", "", 1.0, 4.0});
  store.flush();
  StoreReader reader(file_);
  auto loss = collect([&](auto& v) { return reader.metrics_of("train", "loss", v); });
  ASSERT_EQ(loss.size(), 2u);
  EXPECT_EQ(loss[0].step, 10);
  EXPECT_TRUE(std::isnan(loss[0].value));
  EXPECT_EQ(loss[1].step, 20);
  auto empty = collect([&](auto& v) { return reader.metrics_of("", "", v); });
  ASSERT_EQ(empty.size(), 1u) << "an empty split and tag match only empty ones";
  EXPECT_EQ(empty[0].step, 5);
  EXPECT_EQ(reader.max_value("train", "loss"), std::optional<double>(0.5)) << "NaN is skipped";
  EXPECT_EQ(reader.min_value("train", "loss"), std::optional<double>(0.5));
  EXPECT_EQ(reader.max_value("val", "loss"), std::nullopt);
  EXPECT_EQ(reader.last_wall_time(), std::optional<double>(4.0));
}

TEST_F(StoreReaderTest, VersionMovesWithEachKindOfWrite) {
  RunStore store(file_);
  StoreReader reader(file_);
  StoreVersion v0 = reader.version();
  EXPECT_EQ(v0.last_metric, 0);
  EXPECT_EQ(v0.last_finding, 0);
  EXPECT_EQ(v0.checkpoints, 0);
  EXPECT_EQ(v0.results, 0);
  EXPECT_EQ(v0.status, std::nullopt);
  store.add_metric({1, 1, "train", "loss", 1.0, 1.0});
  store.flush();
  store.add_finding({"overfitting", "warning", 1, 1, "m", "{}", "r", 1.0});
  store.add_checkpoint({"checkpoints/last.ckpt", "last", 1, 1, "val_loss", 0.5, 1.0});
  store.put_result("test", "metrics", "{}");
  store.set_meta("status", "running");
  StoreVersion v1 = reader.version();
  EXPECT_GT(v1.last_metric, 0);
  EXPECT_GT(v1.last_finding, 0);
  EXPECT_EQ(v1.checkpoints, 1);
  EXPECT_EQ(v1.results, 1);
  EXPECT_EQ(v1.status, std::optional<std::string>("running"));
}

TEST_F(StoreReaderTest, MetaSettingsResultsFindingsAndCheckpointsReadBack) {
  RunStore store(file_);
  store.set_meta("name", "cnn-1");
  store.set_meta("best_epoch", "7");
  store.put_settings({{"train.lr", "0.001", "default", "the Adam rule of thumb"},
                      {"data.limit", "0", "default", "all of it"}});
  store.put_result("val", "metrics", R"({"loss": 0.3})");
  store.put_result("test", "metrics", R"({"loss": 0.4})");
  store.add_finding(
      {"overfitting", "warning", 400, 8, "val rises", "{}", "dropout ({model.dropout=0.3})", 10.0});
  store.add_finding({"non_finite", "error", 500, 9, "NaN", "{}", "lower it", 11.0});
  store.add_finding({"dying_relu", "warning", 600, 9, "dead", "{}", "leaky", 12.0});
  store.add_checkpoint({"checkpoints/best.ckpt", "best", 4, 800, "val_loss", 0.41, 1.5});
  store.add_checkpoint({"checkpoints/last.ckpt", "last", 5, 1000, "val_loss",
                        std::numeric_limits<double>::quiet_NaN(), 2.5});
  StoreReader reader(file_);
  const auto meta = reader.meta();
  EXPECT_EQ(meta.at("name"), "cnn-1");
  EXPECT_EQ(meta.at("best_epoch"), "7");
  const auto settings = reader.settings();
  ASSERT_EQ(settings.size(), 2u);
  EXPECT_EQ(settings[0].key, "data.limit") << "ordered by key";
  EXPECT_EQ(settings[1].reason, "the Adam rule of thumb");
  const auto results = reader.results();
  ASSERT_EQ(results.size(), 2u);
  EXPECT_EQ(results[0].split, "test") << "ordered by split";
  EXPECT_EQ(results[1].json, R"({"loss": 0.3})");
  const auto findings = reader.findings();
  ASSERT_EQ(findings.size(), 3u);
  EXPECT_LT(findings[0].id, findings[1].id);
  EXPECT_EQ(findings[0].finding.remedy, "dropout ({model.dropout=0.3})") << "kept as written";
  EXPECT_EQ(findings[1].finding.step, 500);
  const auto counts = reader.finding_counts();
  EXPECT_EQ(counts.at("warning"), 2);
  EXPECT_EQ(counts.at("error"), 1);
  const auto checkpoints = reader.checkpoints();
  ASSERT_EQ(checkpoints.size(), 2u);
  EXPECT_EQ(checkpoints[0].kind, "best");
  EXPECT_DOUBLE_EQ(checkpoints[0].value, 0.41);
  EXPECT_TRUE(std::isnan(checkpoints[1].value));
}

TEST_F(StoreReaderTest, MissingFileOrNotAStoreIsAnErrorNamingItAndNothingIsCreated) {
  try {
    StoreReader reader(file_);
    FAIL() << "expected an error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find(file_.string()), std::string::npos) << e.what();
  }
  EXPECT_FALSE(fs::exists(file_));
  std::ofstream(file_) << "not a database, just text that is long enough to be read as a header";
  try {
    StoreReader reader(file_);
    FAIL() << "expected an error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find(file_.string()), std::string::npos) << e.what();
  }
}

}  // namespace
}  // namespace trainscope::track
