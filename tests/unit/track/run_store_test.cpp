#include <gtest/gtest.h>
#include <sqlite3.h>
#include <trainscope/error.h>
#include <trainscope/track/run_store.h>
#include <unistd.h>

#include "../scratch_dir.h"

#include <cmath>
#include <cstdio>
#include <ctime>
#include <filesystem>
#include <limits>
#include <random>
#include <string>
#include <vector>

namespace trainscope::track {
namespace {

namespace fs = std::filesystem;

class RunStoreTest : public testing::ScratchDirTest {
 protected:
  void SetUp() override {
    ScratchDirTest::SetUp();
    file_ = dir_ / "run.sqlite";
  }
  fs::path file_;
};

MetricPoint point(int64_t step, const std::string& split, const std::string& tag, double value) {
  return MetricPoint{step, /*epoch=*/1 + step / 10, split, tag, value, /*wall_time=*/1000.0 + step};
}

std::vector<int64_t> steps_of(const std::vector<MetricPoint>& points) {
  std::vector<int64_t> steps;
  for (const MetricPoint& p : points) steps.push_back(p.step);
  return steps;
}

TEST_F(RunStoreTest, MetaRoundTripsAndOverwrites) {
  RunStore store(file_);
  EXPECT_EQ(store.meta("schema_version"), "1");
  EXPECT_EQ(store.meta("status"), std::nullopt);
  store.set_meta("status", "running");
  store.set_meta("name", "mnist 'quoted' \"run\"; DROP TABLE meta; --");
  store.set_meta("status", "finished");
  EXPECT_EQ(store.meta("status"), "finished");
  EXPECT_EQ(store.meta("name"), "mnist 'quoted' \"run\"; DROP TABLE meta; --");
  EXPECT_EQ(store.meta(""), std::nullopt);
}

TEST_F(RunStoreTest, SettingsRoundTripAndReplaceByKey) {
  RunStore store(file_);
  store.put_settings({{"train.lr", "0.001", "default", "Adam's usual step size"},
                      {"train.batch_size", "64", "config file", "set by the user"}});
  store.put_settings({{"train.lr", "0.01", "--set", "set by the user"}});
  const std::vector<SettingRecord> settings = store.settings();
  ASSERT_EQ(settings.size(), 2u);
  // Ordered by key.
  EXPECT_EQ(settings[0].key, "train.batch_size");
  EXPECT_EQ(settings[0].value, "64");
  EXPECT_EQ(settings[0].source, "config file");
  EXPECT_EQ(settings[0].reason, "set by the user");
  EXPECT_EQ(settings[1].key, "train.lr");
  EXPECT_EQ(settings[1].value, "0.01");
  EXPECT_EQ(settings[1].source, "--set");
  EXPECT_EQ(settings[1].reason, "set by the user");
}

TEST_F(RunStoreTest, MetricsFilterBySplitAndTagAndOrderByStep) {
  RunStore store(file_);
  store.add_metric(point(3, "train", "loss", 0.3));
  store.add_metric(point(1, "train", "loss", 0.9));
  store.add_metric(point(2, "val", "loss", 0.8));
  store.add_metric(point(2, "train", "accuracy", 0.5));
  store.add_metric(point(2, "train", "loss", 0.6));

  // Reads see unflushed writes of the same store.
  const std::vector<MetricPoint> train_loss = store.metrics("train", "loss");
  EXPECT_EQ(steps_of(train_loss), (std::vector<int64_t>{1, 2, 3}));
  EXPECT_DOUBLE_EQ(train_loss[0].value, 0.9);
  EXPECT_DOUBLE_EQ(train_loss[1].value, 0.6);
  EXPECT_DOUBLE_EQ(train_loss[2].value, 0.3);
  EXPECT_EQ(train_loss[2].epoch, 1);
  EXPECT_EQ(train_loss[2].split, "train");
  EXPECT_EQ(train_loss[2].tag, "loss");
  EXPECT_DOUBLE_EQ(train_loss[2].wall_time, 1003.0);

  EXPECT_EQ(steps_of(store.metrics("train")), (std::vector<int64_t>{1, 2, 2, 3}));
  EXPECT_EQ(steps_of(store.metrics("", "loss")), (std::vector<int64_t>{1, 2, 2, 3}));
  EXPECT_EQ(store.metrics().size(), 5u);
  EXPECT_EQ(store.metrics("val", "accuracy").size(), 0u);
  // Within a step, points keep the order in which they were added.
  const std::vector<MetricPoint> step2 = store.metrics("", "loss");
  EXPECT_EQ(step2[1].split, "val");
  EXPECT_EQ(step2[2].split, "train");
}

TEST_F(RunStoreTest, MetricsKeepNanAndInfinity) {
  const double inf = std::numeric_limits<double>::infinity();
  {
    RunStore store(file_);
    store.add_metric(point(1, "train", "loss", std::numeric_limits<double>::quiet_NaN()));
    store.add_metric(point(2, "train", "loss", inf));
    store.add_metric(point(3, "train", "loss", -inf));
    store.add_metric(point(4, "train", "loss", -0.0));
    store.add_metric(point(5, "train", "loss", std::numeric_limits<double>::denorm_min()));
  }
  RunStore store(file_, RunStore::Mode::kReadOnly);
  const std::vector<MetricPoint> points = store.metrics("train", "loss");
  ASSERT_EQ(points.size(), 5u);
  EXPECT_TRUE(std::isnan(points[0].value));
  EXPECT_EQ(points[1].value, inf);
  EXPECT_EQ(points[2].value, -inf);
  EXPECT_EQ(points[3].value, 0.0);
  EXPECT_EQ(points[4].value, std::numeric_limits<double>::denorm_min());
}

TEST_F(RunStoreTest, ResultsRoundTripAndOverwrite) {
  RunStore store(file_);
  EXPECT_EQ(store.result("test", "confusion_matrix"), std::nullopt);
  store.put_result("test", "confusion_matrix", "[[1,0],[0,1]]");
  store.put_result("test", "confusion_matrix", "[[5,1],[2,7]]");
  store.put_result("val", "confusion_matrix", "[[3]]");
  EXPECT_EQ(store.result("test", "confusion_matrix"), "[[5,1],[2,7]]");
  EXPECT_EQ(store.result("val", "confusion_matrix"), "[[3]]");
  EXPECT_EQ(store.result("train", "confusion_matrix"), std::nullopt);
}

TEST_F(RunStoreTest, FindingsRoundTripInInsertionOrder) {
  RunStore store(file_);
  store.add_finding({"loss_nan", "error", 120, 3, "loss became NaN at step 120",
                     R"({"last_finite": 2.31})", "lower train.lr", 1700000000.5});
  store.add_finding({"overfitting", "warning", 400, 8, "val_loss rises while train_loss falls",
                     "{}", "add regularization", std::numeric_limits<double>::quiet_NaN()});
  const std::vector<FindingRecord> findings = store.findings();
  ASSERT_EQ(findings.size(), 2u);
  EXPECT_EQ(findings[0].kind, "loss_nan");
  EXPECT_EQ(findings[0].severity, "error");
  EXPECT_EQ(findings[0].step, 120);
  EXPECT_EQ(findings[0].epoch, 3);
  EXPECT_EQ(findings[0].message, "loss became NaN at step 120");
  EXPECT_EQ(findings[0].evidence_json, R"({"last_finite": 2.31})");
  EXPECT_EQ(findings[0].remedy, "lower train.lr");
  EXPECT_DOUBLE_EQ(findings[0].wall_time, 1700000000.5);
  EXPECT_EQ(findings[1].kind, "overfitting");
  EXPECT_TRUE(std::isnan(findings[1].wall_time));
}

TEST_F(RunStoreTest, CheckpointsRoundTripInInsertionOrder) {
  RunStore store(file_);
  store.add_checkpoint({"checkpoints/best.pt", "best", 4, 800, "val_loss", 0.412, 1.5});
  store.add_checkpoint({"checkpoints/last.pt", "last", 5, 1000, "val_loss",
                        std::numeric_limits<double>::quiet_NaN(), 2.5});
  const std::vector<CheckpointRecord> checkpoints = store.checkpoints();
  ASSERT_EQ(checkpoints.size(), 2u);
  EXPECT_EQ(checkpoints[0].path, "checkpoints/best.pt");
  EXPECT_EQ(checkpoints[0].kind, "best");
  EXPECT_EQ(checkpoints[0].epoch, 4);
  EXPECT_EQ(checkpoints[0].step, 800);
  EXPECT_EQ(checkpoints[0].monitor, "val_loss");
  EXPECT_DOUBLE_EQ(checkpoints[0].value, 0.412);
  EXPECT_DOUBLE_EQ(checkpoints[0].wall_time, 1.5);
  EXPECT_EQ(checkpoints[1].path, "checkpoints/last.pt");
  EXPECT_TRUE(std::isnan(checkpoints[1].value));
}

TEST_F(RunStoreTest, FlushesAutomaticallyEveryKFlushEveryPoints) {
  RunStore writer(file_);
  const int64_t total = static_cast<int64_t>(RunStore::kFlushEvery) + 3;
  for (int64_t step = 0; step < total; ++step) writer.add_metric(point(step, "train", "loss", 1.0));

  RunStore reader(file_, RunStore::Mode::kReadOnly);
  EXPECT_EQ(reader.metrics().size(), RunStore::kFlushEvery);
  writer.flush();
  EXPECT_EQ(reader.metrics().size(), static_cast<size_t>(total));
  writer.flush();  // Nothing pending: writes nothing twice.
  EXPECT_EQ(reader.metrics().size(), static_cast<size_t>(total));
}

TEST_F(RunStoreTest, EverythingPersistsAcrossReopen) {
  {
    RunStore store(file_);
    store.set_meta("status", "finished");
    store.put_settings({{"train.lr", "0.001", "default", "why"}});
    store.put_result("test", "accuracy", "0.97");
    store.add_finding({"plateau", "info", 10, 1, "m", "{}", "r", 1.0});
    store.add_checkpoint({"checkpoints/last.pt", "last", 1, 10, "val_loss", 0.5, 1.0});
    // Left pending: the destructor must commit them.
    store.add_metric(point(1, "train", "loss", 0.5));
    store.add_metric(point(2, "train", "loss", 0.4));
  }
  for (RunStore::Mode mode : {RunStore::Mode::kReadOnly, RunStore::Mode::kReadWrite}) {
    RunStore store(file_, mode);
    EXPECT_EQ(store.meta("status"), "finished");
    EXPECT_EQ(store.meta("schema_version"), "1");
    EXPECT_EQ(store.settings().size(), 1u);
    EXPECT_EQ(store.result("test", "accuracy"), "0.97");
    EXPECT_EQ(store.findings().size(), 1u);
    EXPECT_EQ(store.checkpoints().size(), 1u);
    EXPECT_EQ(steps_of(store.metrics("train", "loss")), (std::vector<int64_t>{1, 2}));
  }
}

TEST_F(RunStoreTest, ReadOnlyOnMissingFileThrowsNamingItAndCreatesNothing) {
  const fs::path missing = dir_ / "missing.sqlite";
  try {
    RunStore store(missing, RunStore::Mode::kReadOnly);
    FAIL() << "opening a missing file read-only did not throw";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find(missing.string()), std::string::npos) << e.what();
  }
  EXPECT_FALSE(fs::exists(missing));
}

TEST_F(RunStoreTest, ReadWriteInMissingDirectoryThrowsNamingTheFile) {
  const fs::path file = dir_ / "no_such_dir" / "run.sqlite";
  try {
    RunStore store(file);
    FAIL() << "opening in a missing directory did not throw";
  } catch (const Error& e) {
    const std::string message = e.what();
    EXPECT_NE(message.find(file.string()), std::string::npos) << message;
    EXPECT_NE(message.find("cannot open"), std::string::npos) << message;
  }
}

TEST_F(RunStoreTest, FileThatIsNotADatabaseThrowsNamingIt) {
  std::FILE* out = std::fopen(file_.c_str(), "wb");
  ASSERT_NE(out, nullptr);
  const std::string junk(4096, 'x');
  std::fwrite(junk.data(), 1, junk.size(), out);
  std::fclose(out);
  for (RunStore::Mode mode : {RunStore::Mode::kReadOnly, RunStore::Mode::kReadWrite}) {
    try {
      RunStore store(file_, mode);
      FAIL() << "opening a non-database did not throw";
    } catch (const Error& e) {
      EXPECT_NE(std::string(e.what()).find(file_.string()), std::string::npos) << e.what();
    }
  }
}

TEST_F(RunStoreTest, UnknownSchemaVersionThrows) {
  RunStore(file_).set_meta("schema_version", "2");
  try {
    RunStore store(file_, RunStore::Mode::kReadOnly);
    FAIL() << "opening a schema_version 2 store did not throw";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("schema version 2"), std::string::npos) << e.what();
  }
}

TEST_F(RunStoreTest, UsesWriteAheadLogging) {
  RunStore store(file_);
  store.add_metric(point(1, "train", "loss", 0.5));
  store.flush();
  EXPECT_TRUE(fs::exists(file_.string() + "-wal"));

  sqlite3* db = nullptr;
  ASSERT_EQ(sqlite3_open_v2(file_.c_str(), &db, SQLITE_OPEN_READONLY, nullptr), SQLITE_OK);
  sqlite3_stmt* stmt = nullptr;
  ASSERT_EQ(sqlite3_prepare_v2(db, "PRAGMA journal_mode", -1, &stmt, nullptr), SQLITE_OK);
  ASSERT_EQ(sqlite3_step(stmt), SQLITE_ROW);
  EXPECT_STREQ(reinterpret_cast<const char*>(sqlite3_column_text(stmt, 0)), "wal");
  sqlite3_finalize(stmt);
  sqlite3_close(db);
}

TEST_F(RunStoreTest, ReadOnlyStoreRejectsWrites) {
  RunStore(file_).set_meta("status", "running");
  RunStore store(file_, RunStore::Mode::kReadOnly);
  EXPECT_THROW(store.add_metric(point(1, "train", "loss", 0.5)), Error);
  EXPECT_THROW(store.set_meta("status", "finished"), Error);
  EXPECT_THROW(store.put_settings({{"k", "v", "s", "r"}}), Error);
  EXPECT_THROW(store.put_result("test", "accuracy", "1"), Error);
  EXPECT_THROW(store.add_finding({}), Error);
  EXPECT_THROW(store.add_checkpoint({}), Error);
  try {
    store.add_metric(point(1, "train", "loss", 0.5));
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find(file_.string()), std::string::npos) << e.what();
  }
  EXPECT_EQ(store.metrics().size(), 0u);
  EXPECT_EQ(store.meta("status"), "running");
}

TEST_F(RunStoreTest, MoveTransfersTheConnectionAndPendingPoints) {
  RunStore first(file_);
  first.add_metric(point(1, "train", "loss", 0.5));
  RunStore second(std::move(first));
  EXPECT_EQ(second.file(), file_);
  second.add_metric(point(2, "train", "loss", 0.4));

  RunStore third(dir_ / "other.sqlite");
  third.add_metric(point(7, "val", "loss", 0.1));
  third = std::move(second);  // Commits other.sqlite's pending point before closing it.
  EXPECT_EQ(third.file(), file_);
  EXPECT_EQ(steps_of(third.metrics()), (std::vector<int64_t>{1, 2}));

  RunStore other(dir_ / "other.sqlite", RunStore::Mode::kReadOnly);
  EXPECT_EQ(steps_of(other.metrics()), (std::vector<int64_t>{7}));
}

TEST(WallTimeNowTest, IsSecondsSinceTheUnixEpoch) {
  const double now = wall_time_now();
  EXPECT_NEAR(now, static_cast<double>(std::time(nullptr)), 2.0);
}

}  // namespace
}  // namespace trainscope::track
