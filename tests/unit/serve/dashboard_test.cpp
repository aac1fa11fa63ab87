// The dashboard's read-only API over a runs directory: listing, series with min/max downsampling,
// findings, CSV, live changes, and the safety rules (loopback, token, paths, methods, sizes).
#include <trainscope/serve/dashboard.h>
#include <trainscope/track/annotations.h>
#include <trainscope/track/checkpoint_file.h>
#include <trainscope/track/run_store.h>
#include <trainscope/track/tensorboard.h>
#include <trainscope/error.h>

#include "serve/run_reader.h"

#include <gtest/gtest.h>
#include <httplib.h>
#include <nlohmann/json.hpp>

#include <unistd.h>

namespace ts = trainscope;
namespace fs = std::filesystem;
using nlohmann::json;

namespace {

constexpr const char* kHostileName = "<script>alert(1)</script>";
constexpr const char* kHostileDir = "<img src=x onerror=alert(1)>";

std::string percent_encode(const std::string& s) {
  std::string out;
  for (unsigned char c : s) {
    if (std::isalnum(c) || c == '-' || c == '_' || c == '.') {
      out += static_cast<char>(c);
    } else {
      char buf[4];
      std::snprintf(buf, sizeof buf, "%%%02X", c);
      out += buf;
    }
  }
  return out;
}

class DashboardApi : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    runs_ = fs::temp_directory_path() / ("trainscope-serve-" + std::to_string(::getpid()));
    fs::remove_all(runs_);
    fs::create_directories(runs_ / "alpha");
    fs::create_directories(runs_ / kHostileDir);
    fs::create_directories(runs_ / "not-a-run");
    {
      ts::track::RunStore store(runs_ / "alpha" / "run.sqlite");
      store.set_meta("name", "alpha");
      store.set_meta("status", "finished");
      store.set_meta("stop_reason", "patience");
      store.set_meta("started_at", "1700000000");
      store.set_meta("ended_at", "1700000100");
      store.set_meta("epochs", "3");
      store.set_meta("best_val_loss", "0.5");
      for (int64_t step = 1; step <= 10000; ++step) {
        const double v = step == 5003 ? 100.0 : step == 7001 ? -50.0 : 1.0 / step;
        store.add_metric({step, 1 + step / 4000, "train", "step_loss", v, 1700000000.0 + step});
      }
      for (int64_t epoch = 1; epoch <= 3; ++epoch) {
        store.add_metric({epoch * 3000, epoch, "val", "loss", 1.0 / epoch, 1700000000.0 + epoch});
        store.add_metric(
            {epoch * 3000, epoch, "val", "accuracy", 0.5 + 0.1 * epoch, 1700000000.0 + epoch});
      }
      store.add_finding({"overfitting", "warning", 6000, 2, "val loss rises", R"({"gap": 0.12})",
                         "add dropout", 1.0});
      store.put_result("test", "confusion_matrix", "[[5,1],[2,7]]");
      store.put_settings({{"train.lr", "0.001", "default", "the Adam rule of thumb"},
                          {"run.sweep", "\"lr-grid\"", "sweep", "trial 2"},
                          {"run.sweep_trial", "\"train.lr=0.1\"", "sweep", ""}});
      // On disk: best.ckpt at step 6000, and previous.ckpt (never recorded). Recorded but gone:
      // a rotated epoch file. Recorded, then replaced by a newer save: last.ckpt at step 3000.
      fs::create_directories(runs_ / "alpha" / "checkpoints");
      auto write = [&](const char* name, int64_t epoch, int64_t step) {
        ts::track::CheckpointInfo info;
        info.kind = "last";
        info.epoch = epoch;
        info.step = step;
        info.epoch_complete = true;
        info.monitor = "val_loss";
        info.value = 0.5;
        ts::track::write_checkpoint_file(runs_ / "alpha" / "checkpoints" / name, info, "payload");
      };
      write("best.ckpt", 2, 6000);
      write("last.ckpt", 3, 9000);
      write("previous.ckpt", 2, 6000);
      store.add_checkpoint(
          {"checkpoints/epoch-0001-val_loss-1.0000.ckpt", "epoch", 1, 3000, "val_loss", 1.0, 0.5});
      store.add_checkpoint({"checkpoints/last.ckpt", "last", 1, 3000, "val_loss", 1.0, 0.5});
      store.add_checkpoint({"checkpoints/best.ckpt", "best", 2, 6000, "val_loss", 0.5, 1.0});
    }
    {
      ts::track::RunStore store(runs_ / kHostileDir / "run.sqlite");
      store.set_meta("name", kHostileName);
      store.set_meta("status", "running");
    }
    ts::serve::DashboardOptions o;
    o.runs_dir = runs_;
    o.port = 0;
    dashboard_ = new ts::serve::Dashboard(o);
    dashboard_->start();
  }
  static void TearDownTestSuite() {
    delete dashboard_;
    fs::remove_all(runs_);
  }

  static httplib::Result get(const std::string& path, httplib::Headers headers = {}) {
    httplib::Client client("127.0.0.1", dashboard_->port());
    return client.Get(path, headers);
  }
  static json get_json(const std::string& path) {
    auto r = get(path);
    EXPECT_TRUE(r) << path;
    if (!r) return {};
    EXPECT_EQ(r->status, 200) << path << ": " << r->body;
    EXPECT_NE(r->get_header_value("Content-Type").find("application/json"), std::string::npos);
    return json::parse(r->body);
  }

  static fs::path runs_;
  static ts::serve::Dashboard* dashboard_;
};
fs::path DashboardApi::runs_;
ts::serve::Dashboard* DashboardApi::dashboard_ = nullptr;

}  // namespace

TEST_F(DashboardApi, ListsRunsWithStatusBestMetricAndDuration) {
  json list = get_json("/api/runs");
  ASSERT_EQ(list["runs"].size(), 2u);  // "not-a-run" has no run.sqlite
  json alpha;
  for (auto& r : list["runs"])
    if (r["name"] == "alpha") alpha = r;
  ASSERT_FALSE(alpha.is_null());
  EXPECT_EQ(alpha["status"], "finished");
  EXPECT_EQ(alpha["stop_reason"], "patience");
  EXPECT_EQ(alpha["epochs"], 3);
  EXPECT_DOUBLE_EQ(alpha["duration"].get<double>(), 100.0);
  EXPECT_EQ(alpha["best_val_metric"]["tag"], "accuracy");
  EXPECT_NEAR(alpha["best_val_metric"]["value"].get<double>(), 0.8, 1e-12);
  EXPECT_EQ(alpha["findings"]["warning"], 1);
  EXPECT_EQ(alpha["sweep"], "lr-grid") << "the runs list groups a sweep's trials";
  EXPECT_EQ(alpha["sweep_trial"], "train.lr=0.1");
}

TEST_F(DashboardApi, DetailHasTagsSettingsResultsCheckpoints) {
  json d = get_json("/api/runs/alpha");
  ASSERT_EQ(d["settings"].size(), 3u);
  EXPECT_EQ(d["settings"][2]["key"], "train.lr");  // in key order
  EXPECT_EQ(d["results"]["test"]["confusion_matrix"][1][1], 7);
  // The files on disk, each once: a rotated file is gone, a replaced record is stale, and
  // previous.ckpt comes from its header.
  std::vector<std::string> files;
  for (auto& c : d["checkpoints"])
    files.push_back(c["path"].get<std::string>() + "@" + std::to_string(c["step"].get<int64_t>()));
  EXPECT_EQ(files, (std::vector<std::string>{"checkpoints/best.ckpt@6000",
                                             "checkpoints/previous.ckpt@6000"}));
  EXPECT_GT(d["checkpoints"][0]["bytes"].get<int64_t>(), 0);
  bool found = false;
  for (auto& t : d["tags"])
    if (t["split"] == "train" && t["tag"] == "step_loss") {
      found = true;
      EXPECT_EQ(t["count"], 10000);
      EXPECT_EQ(t["last_step"], 10000);
    }
  EXPECT_TRUE(found);
}

TEST_F(DashboardApi, SeriesIsCappedAndKeepsExtremes) {
  json s = get_json("/api/runs/alpha/series?split=train&tag=step_loss&points=200");
  EXPECT_EQ(s["count"], 10000);
  EXPECT_LE(s["step"].size(), 200u);
  EXPECT_EQ(s["step"].size(), s["value"].size());
  auto values = s["value"].get<std::vector<double>>();
  EXPECT_DOUBLE_EQ(*std::max_element(values.begin(), values.end()), 100.0);  // the spike survives
  EXPECT_DOUBLE_EQ(*std::min_element(values.begin(), values.end()), -50.0);
  EXPECT_EQ(s["step"].front(), 1);
  EXPECT_EQ(s["step"].back(), 10000);
  auto steps = s["step"].get<std::vector<int64_t>>();
  EXPECT_TRUE(std::is_sorted(steps.begin(), steps.end()));

  json zoom =
      get_json("/api/runs/alpha/series?split=train&tag=step_loss&points=5000&from=100&to=199");
  EXPECT_EQ(zoom["step"].size(), 100u);  // a zoomed range fits: every point
  EXPECT_EQ(zoom["step"].front(), 100);

  json all = get_json("/api/runs/alpha/series?split=val&tag=loss");
  EXPECT_EQ(all["step"], json({3000, 6000, 9000}));
  json none = get_json("/api/runs/alpha/series?split=val&tag=nope");
  EXPECT_EQ(none["count"], 0);

  EXPECT_EQ(get("/api/runs/alpha/series?split=train&tag=step_loss&points=abc")->status, 400);
  EXPECT_EQ(get("/api/runs/alpha/series?split=train")->status, 400);
}

TEST_F(DashboardApi, DownsamplingNeverExceedsTheCap) {
  std::vector<int64_t> steps(100000);
  std::vector<double> values(100000);
  for (size_t i = 0; i < steps.size(); ++i) {
    steps[i] = static_cast<int64_t>(i);
    values[i] = std::sin(i * 0.01) + (i % 997 == 0 ? 10.0 : 0.0);
  }
  values[500] = std::nan("");
  for (size_t cap : {10u, 100u, 999u, 4000u}) {
    auto picks = ts::serve::downsample_min_max(steps, values, cap, INT64_MIN, INT64_MAX, true);
    EXPECT_LE(picks.size(), cap);
    EXPECT_TRUE(std::is_sorted(picks.begin(), picks.end()));
    EXPECT_EQ(picks.front(), 0u);
    EXPECT_EQ(picks.back(), steps.size() - 1);
  }
  auto picks = ts::serve::downsample_min_max(steps, values, 4000, INT64_MIN, INT64_MAX, true);
  EXPECT_TRUE(std::find(picks.begin(), picks.end(), 500u) != picks.end()) << "a NaN is kept";
  EXPECT_TRUE(std::find(picks.begin(), picks.end(), 997u * 50) != picks.end()) << "a spike is kept";
}

TEST_F(DashboardApi, FindingsCarryEvidenceAndRemedy) {
  json f = get_json("/api/runs/alpha/findings");
  ASSERT_EQ(f.size(), 1u);
  EXPECT_EQ(f[0]["kind"], "overfitting");
  EXPECT_DOUBLE_EQ(f[0]["evidence"]["gap"].get<double>(), 0.12);
  EXPECT_EQ(f[0]["remedy"], "add dropout");
}

TEST_F(DashboardApi, CsvDownloadHasEveryPoint) {
  auto r = get("/api/runs/alpha/csv?split=train&tag=step_loss");
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 200);
  EXPECT_NE(r->get_header_value("Content-Type").find("text/csv"), std::string::npos);
  EXPECT_NE(r->get_header_value("Content-Disposition")
                .find("attachment; filename=\"alpha-train-step_loss.csv\""),
            std::string::npos);
  EXPECT_EQ(std::count(r->body.begin(), r->body.end(), '\n'), 10001);
  EXPECT_EQ(r->body.rfind("step,epoch,value,wall_time\n1,1,1,", 0), 0u) << r->body.substr(0, 80);
  EXPECT_EQ(get("/api/runs/alpha/csv?split=train&tag=missing")->status, 404);
}

TEST_F(DashboardApi, SeesNewPointsAndFindingsOfALiveRun) {
  json before = get_json("/api/runs/alpha/version");
  {
    ts::track::RunStore writer(runs_ / "alpha" / "run.sqlite");
    writer.add_metric({10001, 3, "train", "step_loss", 0.5, 1700010001.0});
    writer.flush();
    writer.add_finding(
        {"exploding_gradients", "error", 10001, 3, "grad norm 1e6", "{}", "clip at 1.0", 2.0});
  }
  json after = get_json("/api/runs/alpha/version");
  EXPECT_GT(after["metrics"].get<int64_t>(), before["metrics"].get<int64_t>());
  EXPECT_GT(after["findings"].get<int64_t>(), before["findings"].get<int64_t>());
  json s = get_json("/api/runs/alpha/series?split=train&tag=step_loss&points=20000");
  EXPECT_EQ(s["count"], 10001);
  EXPECT_EQ(s["step"].back(), 10001);
  EXPECT_EQ(get_json("/api/runs/alpha/findings").size(), 2u);
}

TEST_F(DashboardApi, HostileNamesComeBackAsPlainJsonStrings) {
  json list = get_json("/api/runs");
  bool found = false;
  for (auto& r : list["runs"])
    if (r["name"] == kHostileDir) {
      found = true;
      EXPECT_EQ(r["display_name"], kHostileName);
    }
  EXPECT_TRUE(found);
  httplib::Client client("127.0.0.1", dashboard_->port());
  auto r = client.Get("/api/runs/" + percent_encode(kHostileDir));
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 200) << r->body;
  EXPECT_NE(r->get_header_value("Content-Security-Policy").find("script-src 'self'"),
            std::string::npos);
  EXPECT_EQ(r->get_header_value("X-Content-Type-Options"), "nosniff");
}

TEST_F(DashboardApi, PathsCannotLeaveTheRunsDirectory) {
  for (const char* path :
       {"/api/runs/..", "/api/runs/../series?tag=x", "/api/runs/%2e%2e", "/api/runs/..%2F..%2Fetc",
        "/api/runs/..%2falpha", "/api/runs/not-a-run", "/api/runs/missing/findings",
        "/assets/../../etc/passwd", "/assets/%2e%2e/%2e%2e/etc/passwd", "/etc/passwd"}) {
    auto r = get(path);
    ASSERT_TRUE(r) << path;
    EXPECT_EQ(r->status, 404) << path << ": " << r->body;
    EXPECT_EQ(r->body.find("root:"), std::string::npos);
  }
  // A symbolic link inside the runs directory that leads out of it is not a run.
  fs::create_directory_symlink(fs::temp_directory_path(), runs_ / "escape");
  EXPECT_EQ(get("/api/runs/escape")->status, 404);
  fs::remove(runs_ / "escape");
}

TEST_F(DashboardApi, ReadOnlyAndBoundedRequests) {
  httplib::Client client("127.0.0.1", dashboard_->port());
  EXPECT_EQ(client.Post("/api/runs", "{}", "application/json")->status, 405);
  EXPECT_EQ(client.Delete("/api/runs/alpha")->status, 405);
  EXPECT_EQ(client.Put("/api/runs/alpha", "x", "text/plain")->status, 405);
  EXPECT_EQ(client.Put("/api/runs/alpha/series", "{}", "application/json")->status, 405);
  EXPECT_EQ(client.Delete("/api/runs/alpha/annotations")->status, 405);
  // A body past the bound is refused before any handler sees it.
  auto big = client.Post("/api/runs", std::string(128 * 1024, 'x'), "text/plain");
  ASSERT_TRUE(big);
  EXPECT_TRUE(big->status == 413 || big->status == 405) << big->status;
  // Long URIs are refused by the parser.
  auto long_uri = get("/api/runs/" + std::string(20000, 'a'));
  EXPECT_TRUE(!long_uri || long_uri->status == 414 || long_uri->status == 400 ||
              long_uri->status == 404);
}

TEST_F(DashboardApi, LoopbackServerRefusesForeignHostHeaders) {
  EXPECT_EQ(get("/api/runs", {{"Host", "attacker.example:80"}})->status, 403);
  EXPECT_EQ(get("/api/runs", {{"Host", "localhost:1234"}})->status, 200);
}

TEST_F(DashboardApi, ServesTheEmbeddedFrontEnd) {
  auto index = get("/");
  ASSERT_TRUE(index);
  EXPECT_EQ(index->status, 200);
  EXPECT_NE(index->body.find("assets/app.js"), std::string::npos);
  for (const char* asset : {"/assets/app.js", "/assets/style.css", "/assets/vendor/uPlot.esm.js",
                            "/assets/vendor/uPlot.min.css"}) {
    auto r = get(asset);
    ASSERT_TRUE(r) << asset;
    EXPECT_EQ(r->status, 200) << asset;
    EXPECT_GT(r->body.size(), 100u) << asset;
  }
  EXPECT_EQ(get("/assets/nope.js")->status, 404);
}

// What a runs table needs in one request: every setting, the last value of each scalar series
// (not the per-layer ones), and the user's tags and note.
TEST_F(DashboardApi, RunsListCarriesSettingsFinalValuesAndAnnotations) {
  const json runs = get_json("/api/runs")["runs"];
  const auto alpha =
      std::find_if(runs.begin(), runs.end(), [](const json& r) { return r["name"] == "alpha"; });
  ASSERT_NE(alpha, runs.end());
  EXPECT_EQ((*alpha)["settings"]["train.lr"], "0.001");
  EXPECT_EQ((*alpha)["settings"]["run.sweep"], "\"lr-grid\"");
  EXPECT_DOUBLE_EQ((*alpha)["final"]["val/loss"].get<double>(), 1.0 / 3);
  EXPECT_DOUBLE_EQ((*alpha)["final"]["val/accuracy"].get<double>(), 0.8);
  EXPECT_TRUE((*alpha)["final"]["train/step_loss"].is_number());
  for (const auto& [key, value] : (*alpha)["final"].items())
    EXPECT_EQ(std::count(key.begin(), key.end(), '/'), 1) << key << ": no per-layer series";
  EXPECT_TRUE((*alpha)["annotations"]["tags"].is_array());
  EXPECT_TRUE((*alpha)["annotations"]["note"].is_string());
}

TEST_F(DashboardApi, SeriesCarriesEachPointsEpochAndWallTime) {
  const json s = get_json("/api/runs/alpha/series?split=val&tag=loss");
  EXPECT_EQ(s["step"], json({3000, 6000, 9000}));
  EXPECT_EQ(s["epoch"], json({1, 2, 3}));
  EXPECT_EQ(s["wall_time"], json({1700000001.0, 1700000002.0, 1700000003.0}));
  const json big = get_json("/api/runs/alpha/series?split=train&tag=step_loss&points=100");
  ASSERT_EQ(big["epoch"].size(), big["step"].size());
  ASSERT_EQ(big["wall_time"].size(), big["step"].size());
  for (size_t i = 0; i < big["step"].size(); ++i) {
    const int64_t step = big["step"][i];
    EXPECT_EQ(big["epoch"][i], 1 + step / 4000);
    EXPECT_DOUBLE_EQ(big["wall_time"][i].get<double>(), 1700000000.0 + step);
  }
}

TEST_F(DashboardApi, HistogramsComeFromTheRunsEventFiles) {
  EXPECT_EQ(get_json("/api/runs/alpha/histograms")["histograms"], json::array());
  const fs::path dir = runs_ / kHostileDir;
  {
    ts::track::EventWriter events(dir);
    events.add_histogram("weights/fc.weight", ts::track::make_histogram({0, 1, 2, 3}, 3), 7, 9.0);
  }
  const json h = get_json("/api/runs/" + percent_encode(kHostileDir) + "/histograms")["histograms"];
  ASSERT_EQ(h.size(), 1u);
  EXPECT_EQ(h[0]["tag"], "weights/fc.weight");
  ASSERT_EQ(h[0]["items"].size(), 1u);
  EXPECT_EQ(h[0]["items"][0]["step"], 7);
  EXPECT_EQ(h[0]["items"][0]["min"], 0.0);
  EXPECT_EQ(h[0]["items"][0]["max"], 3.0);
  EXPECT_EQ(h[0]["items"][0]["counts"], json({2.0, 1.0, 1.0}));
  EXPECT_EQ(h[0]["items"][0]["limits"], json({1.0, 2.0, 3.0}));
  for (const auto& f : fs::directory_iterator(dir))
    if (f.path().filename().string().rfind("events.", 0) == 0) fs::remove(f.path());
}

// Tags and notes are the one write: JSON only, from this server's own page, stored in the run's
// store; bad input is refused with what was wrong, and nothing is written.
TEST_F(DashboardApi, AnnotationsAreStoredThroughTheApiOnly) {
  httplib::Client client("127.0.0.1", dashboard_->port());
  const std::string path = "/api/runs/alpha/annotations";
  auto ok = client.Put(path, R"({"tags": ["baseline", "lr 1e-3"], "note": "the <b>first</b> try"})",
                       "application/json");
  ASSERT_TRUE(ok);
  ASSERT_EQ(ok->status, 200) << ok->body;
  EXPECT_EQ(json::parse(ok->body)["tags"], json({"baseline", "lr 1e-3"}));
  const json detail = get_json("/api/runs/alpha");
  EXPECT_EQ(detail["annotations"]["tags"], json({"baseline", "lr 1e-3"}));
  EXPECT_EQ(detail["annotations"]["note"], "the <b>first</b> try");
  {
    ts::track::StoreReader reader(runs_ / "alpha" / "run.sqlite");
    EXPECT_EQ(ts::track::annotations_from_meta(reader.meta()).tags,
              (std::vector<std::string>{"baseline", "lr 1e-3"}));
  }

  auto refused = [&](const std::string& body, const std::string& type, int status,
                     const std::string& says, httplib::Headers headers = {}) {
    auto r = client.Put(path, headers, body, type.c_str());
    ASSERT_TRUE(r);
    EXPECT_EQ(r->status, status) << body;
    EXPECT_NE(r->body.find(says), std::string::npos) << r->body;
  };
  refused(R"({"tags": ["a,b"]})", "application/json", 400, "tag 1 'a,b' holds a comma");
  refused(R"({"tags": ["x", "x"]})", "application/json", 400, "tag 2 'x' is given twice");
  refused(R"({"tags": [" x"]})", "application/json", 400, "starts or ends with a space");
  refused(R"({"tags": [3]})", "application/json", 400, "tags must be strings");
  refused(R"({"note": 3})", "application/json", 400, "expected {");
  refused("not json", "application/json", 400, "expected {");
  refused(json({{"note", std::string(10001, 'n')}}).dump(), "application/json", 400,
          "the note has 10001 bytes");
  json many = {{"tags", json::array()}};
  for (int i = 0; i < 33; ++i)
    many["tags"].push_back(std::string(1, static_cast<char>('a' + i % 26)) + std::to_string(i));
  refused(many.dump(), "application/json", 400, "at most 32 tags");
  refused(R"({"tags": []})", "text/plain", 415, "Content-Type: application/json");
  refused(R"({"tags": []})", "application/json", 403, "another site",
          {{"Origin", "http://evil.example"}});
  auto unknown = client.Put("/api/runs/nope/annotations", "{}", "application/json");
  EXPECT_EQ(unknown->status, 404);
  EXPECT_EQ(get_json("/api/runs/alpha")["annotations"]["tags"], json({"baseline", "lr 1e-3"}))
      << "a refused write changes nothing";
  ASSERT_EQ(client.Put(path, R"({"tags": [], "note": ""})", "application/json")->status, 200);
  EXPECT_EQ(get_json("/api/runs/alpha")["annotations"]["tags"], json::array());
}

TEST(Dashboard, NonLoopbackHostNeedsAToken) {
  ts::serve::DashboardOptions o;
  o.host = "0.0.0.0";
  EXPECT_THROW(ts::serve::Dashboard{o}, ts::Error);
  o.token = "bad token";
  EXPECT_THROW(ts::serve::Dashboard{o}, ts::Error);
  EXPECT_TRUE(ts::serve::is_loopback_host("127.0.0.1"));
  EXPECT_TRUE(ts::serve::is_loopback_host("127.1.2.3:80"));
  EXPECT_TRUE(ts::serve::is_loopback_host("[::1]:6150"));
  EXPECT_TRUE(ts::serve::is_loopback_host("localhost"));
  EXPECT_FALSE(ts::serve::is_loopback_host("0.0.0.0"));
  EXPECT_FALSE(ts::serve::is_loopback_host("192.168.1.2"));
  EXPECT_FALSE(ts::serve::is_loopback_host("localhost.evil.com"));
}

TEST(Dashboard, TokenIsRequiredByEveryRequest) {
  const fs::path runs =
      fs::temp_directory_path() / ("trainscope-token-" + std::to_string(::getpid()));
  fs::create_directories(runs);
  ts::serve::DashboardOptions o;
  o.runs_dir = runs;
  o.port = 0;
  o.token = "s3cret-token";
  ts::serve::Dashboard dashboard(o);
  dashboard.start();
  EXPECT_NE(dashboard.url().find("?token=s3cret-token"), std::string::npos);
  httplib::Client client("127.0.0.1", dashboard.port());
  EXPECT_EQ(client.Get("/api/runs")->status, 401);
  EXPECT_EQ(client.Get("/")->status, 401);
  EXPECT_EQ(client.Get("/api/runs", {{"Authorization", "Bearer wrong"}})->status, 401);
  EXPECT_EQ(client.Get("/api/runs", {{"Authorization", "Bearer s3cret-token"}})->status, 200);
  auto page = client.Get("/?token=s3cret-token");
  EXPECT_EQ(page->status, 200);
  EXPECT_NE(page->get_header_value("Set-Cookie").find("HttpOnly"), std::string::npos);
  EXPECT_EQ(client.Get("/api/runs", {{"Cookie", "trainscope_token=s3cret-token"}})->status, 200);
  dashboard.stop();
  fs::remove_all(runs);
}

TEST(Dashboard, StartsAndStopsRepeatedly) {
  const fs::path runs =
      fs::temp_directory_path() / ("trainscope-restart-" + std::to_string(::getpid()));
  fs::create_directories(runs);
  for (int i = 0; i < 5; ++i) {
    ts::serve::DashboardOptions o;
    o.runs_dir = runs;
    o.port = 0;
    ts::serve::Dashboard dashboard(o);
    dashboard.start();
    EXPECT_GT(dashboard.port(), 0);
  }  // destructor stops and joins
  fs::remove_all(runs);
}
