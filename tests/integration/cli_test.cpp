// The CLI as a user runs it: errors exit 2 with one clear line; a one-epoch run on a small
// Fashion-MNIST subset leaves a complete run directory.
#include <trainscope/track/checkpoint_file.h>
#include <trainscope/track/run_store.h>

#include <gtest/gtest.h>
#include <sqlite3.h>
#include <sys/wait.h>

#include <array>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <map>
#include <string>

namespace fs = std::filesystem;

namespace {

const char* kFashion = "/usr/share/datasets/fashion-mnist/train-images-idx3-ubyte.gz";

struct Result {
  int status;
  std::string out;  // stdout and stderr together
};

class CliTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = fs::temp_directory_path() /
           ("ts_cli_test_" + std::to_string(::getpid()) + "_" +
            ::testing::UnitTest::GetInstance()->current_test_info()->name());
    fs::remove_all(dir_);
    fs::create_directories(dir_);
  }
  void TearDown() override { fs::remove_all(dir_); }

  Result run(const std::string& args) {
    std::string cmd = "cd '" + dir_.string() + "' && '" TRAINSCOPE_CLI "' " + args + " 2>&1";
    Result r{0, ""};
    FILE* p = popen(cmd.c_str(), "r");
    std::array<char, 4096> buf{};
    size_t n;
    while ((n = fread(buf.data(), 1, buf.size(), p)) > 0) r.out.append(buf.data(), n);
    int status = pclose(p);
    r.status = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
    return r;
  }

  // One query, first column of each row as text.
  static std::vector<std::string> query(const fs::path& db, const std::string& sql) {
    sqlite3* h = nullptr;
    EXPECT_EQ(sqlite3_open_v2(db.c_str(), &h, SQLITE_OPEN_READONLY, nullptr), SQLITE_OK);
    sqlite3_stmt* st = nullptr;
    EXPECT_EQ(sqlite3_prepare_v2(h, sql.c_str(), -1, &st, nullptr), SQLITE_OK) << sql;
    std::vector<std::string> rows;
    while (sqlite3_step(st) == SQLITE_ROW) {
      auto* t = sqlite3_column_text(st, 0);
      rows.push_back(t ? reinterpret_cast<const char*>(t) : "NULL");
    }
    sqlite3_finalize(st);
    sqlite3_close(h);
    return rows;
  }

  void expect_user_error(const std::string& args, const std::string& message) {
    Result r = run(args);
    EXPECT_EQ(r.status, 2) << args << "\n" << r.out;
    EXPECT_NE(r.out.find(message), std::string::npos) << args << "\n" << r.out;
    EXPECT_FALSE(fs::exists(dir_ / "runs"))
        << args << ": an error before training must not leave a run";
  }

  fs::path dir_;
};

}  // namespace

TEST_F(CliTest, HelpListsEveryOptionWithItsDefault) {
  Result top = run("--help");
  EXPECT_EQ(top.status, 0);
  EXPECT_NE(top.out.find("train"), std::string::npos);
  EXPECT_NE(top.out.find("test"), std::string::npos);
  Result train = run("train --help");
  EXPECT_EQ(train.status, 0);
  for (const char* text :
       {"--epochs", "(default 50)", "--lr", "(default 0.001)", "train.patience = 5", "--batch-size",
        "(default \"auto\")", "data.val_fraction = 0.1", "--config"})
    EXPECT_NE(train.out.find(text), std::string::npos) << text;
  EXPECT_EQ(run("test --help").status, 0);
}

TEST_F(CliTest, UserMistakesExitTwoWithOneClearLine) {
  expect_user_error("train --bogus", "trainscope: error:");
  expect_user_error("frobnicate", "trainscope: error:");
  expect_user_error("train --model resnet9000",
                    "model.name = \"resnet9000\" is not known; expected cnn, mlp, resnet or "
                    "torchscript:PATH");
  expect_user_error("train --lr -0.1", "--lr: train.lr = -0.1 is out of range");
  expect_user_error(
      "train --batch-size 0",
      "train.batch_size = \"0\" is out of range; expected auto or a positive integer");
  expect_user_error("train --set train.lrr=1",
                    "unknown setting 'train.lrr'; did you mean 'train.lr'?");
  expect_user_error("train --set train.patience=big", "expected an integer, got 'big'");
  expect_user_error("train --data idx:" + (dir_ / "nowhere").string(),
                    (dir_ / "nowhere" / "train-images-idx3-ubyte.gz").string() + " does not exist");
  expect_user_error("train --set data.dir=" + (dir_ / "nowhere").string(), "does not exist");
  expect_user_error("test no-such-run", "no run named 'no-such-run'");
  expect_user_error("train --set train.loss=mse --set data.limit=500",
                    "train.loss = mse does not fit train.task = classification; expected "
                    "cross_entropy");
  expect_user_error("train --set train.task=regression --set data.limit=500",
                    "train.task = regression (--set) needs numeric targets, but");
  expect_user_error("train --set 'train.metrics=[\"r2\"]' --set data.limit=500",
                    "train.metrics: \"r2\" does not fit train.task = classification");
  expect_user_error("train --set train.class_weights=1,x",
                    "expected balanced, or weights >= 0 separated by commas");

  // A malformed IDX header names the file.
  fs::create_directories(dir_ / "bad");
  for (const char* f : {"train-images-idx3-ubyte", "train-labels-idx1-ubyte",
                        "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"})
    std::ofstream(dir_ / "bad" / f, std::ios::binary)
        << std::string("\x01\x02\x08\x01\x00\x00\x00\x01", 8);
  expect_user_error("train --data idx:" + (dir_ / "bad").string(),
                    (dir_ / "bad" / "train-images-idx3-ubyte").string() + ": not an IDX file");

  // A config file error names the file and line.
  std::ofstream(dir_ / "c.toml") << "[train]\nlr = 0.01\nepochs = 3\n";
  expect_user_error("train --config c.toml", "c.toml:3: unknown setting 'train.epochs'");
  // Every error is a single line.
  Result r = run("train --lr -1");
  EXPECT_EQ(std::count(r.out.begin(), r.out.end(), '\n'), 1) << r.out;
}

TEST_F(CliTest, OneEpochRunLeavesACompleteRunDirectory) {
  if (!fs::exists(kFashion)) GTEST_SKIP() << "dataset-fashion-mnist is not installed";
  Result r = run(
      "train --epochs 1 --name smoke --batch-size 128 --progress plain --set data.limit=2000 --set "
      "data.test_limit=500 --set 'train.metrics=[\"f1_macro\"]' --set train.log_every=5");
  ASSERT_EQ(r.status, 0) << r.out;
  // What the user sees: settings with reasons, process configuration, an epoch line, the test
  // report and where the run went.
  for (const char* text :
       {"train.lr = 0.001", "the Adam rule of thumb", "intra-op threads:", "epoch 1/1  train loss",
        "fit stopped: max_epochs=1 reached", "confusion matrix", "Ankle boot",
        "test accuracy:", "run written to runs/smoke"})
    EXPECT_NE(r.out.find(text), std::string::npos) << text << "\n" << r.out;

  const fs::path run_dir = dir_ / "runs" / "smoke";
  const fs::path db = run_dir / "run.sqlite";
  ASSERT_TRUE(fs::exists(db));
  EXPECT_TRUE(fs::exists(run_dir / "config.toml"));
  for (const char* f : {"last.ckpt", "previous.ckpt", "best.ckpt", "epoch-0001-val_loss-"}) {
    bool found = false;
    for (const auto& e : fs::directory_iterator(run_dir / "checkpoints"))
      found |= e.path().filename().string().rfind(f, 0) == 0;
    EXPECT_TRUE(found) << f;
  }

  EXPECT_EQ(query(db, "SELECT value FROM meta WHERE key='status'"),
            std::vector<std::string>{"finished"});
  EXPECT_EQ(query(db, "SELECT value FROM meta WHERE key='stop_reason'"),
            std::vector<std::string>{"max_epochs"});
  EXPECT_EQ(query(db, "SELECT value FROM meta WHERE key='best_epoch'"),
            std::vector<std::string>{"1"});
  // Epoch metrics of both splits, once each.
  EXPECT_EQ(
      query(db,
            "SELECT split || '/' || tag FROM metrics WHERE epoch=1 AND tag IN ('loss','accuracy') "
            "AND split IN ('train','val') ORDER BY split, tag"),
      (std::vector<std::string>{"train/accuracy", "train/loss", "val/accuracy", "val/loss"}));
  // The metric asked for (train.metrics), for every split, on the console too.
  EXPECT_EQ(query(db, "SELECT split FROM metrics WHERE tag='f1_macro' ORDER BY split"),
            (std::vector<std::string>{"test", "train", "val"}));
  EXPECT_NE(r.out.find(" f1_macro 0."), std::string::npos) << r.out;
  // Where the run comes from: the command as typed (the temporary directory is no git work tree).
  const auto command = query(db, "SELECT value FROM meta WHERE key='command'");
  ASSERT_EQ(command.size(), 1u);
  EXPECT_NE(command[0].find("train --epochs 1 --name smoke --batch-size 128"), std::string::npos)
      << command[0];
  EXPECT_NE(command[0].find("'train.metrics=[\"f1_macro\"]'"), std::string::npos)
      << "quoted for a shell: " << command[0];
  EXPECT_EQ(query(db, "SELECT COUNT(*) FROM meta WHERE key='host' AND value != ''"),
            std::vector<std::string>{"1"});
  EXPECT_TRUE(query(db, "SELECT value FROM meta WHERE key='git.commit'").empty());
  // System metrics at each logging step (log_every 5 of 15 steps): memory, and CPU over the
  // interval since the last one (or the fit's start).
  EXPECT_EQ(query(db,
                  "SELECT COUNT(*) || ' ' || (MIN(value) > 10) FROM metrics WHERE "
                  "split='system' AND tag='rss_mib'"),
            std::vector<std::string>{"3 1"});
  EXPECT_EQ(query(db,
                  "SELECT COUNT(*) || ' ' || (MIN(value) > 0) FROM metrics WHERE "
                  "split='system' AND tag='cpu_percent'"),
            std::vector<std::string>{"3 1"});
  // 1800 training examples -> 15 steps; the lr every step.
  EXPECT_EQ(query(db,
                  "SELECT COUNT(*) || ' ' || MIN(step) || ' ' || MAX(step) || ' ' || "
                  "MAX(value) FROM metrics WHERE split='train' AND tag='lr'"),
            std::vector<std::string>{"15 1 15 0.001"});
  // Test results: metrics, a 10x10 confusion matrix summing to the test examples, per-class rows.
  auto acc = query(db, "SELECT value FROM metrics WHERE split='test' AND tag='accuracy'");
  ASSERT_EQ(acc.size(), 1u);
  EXPECT_GT(std::stod(acc[0]), 0.5);
  EXPECT_EQ(query(db,
                  "SELECT json_array_length(json) FROM results WHERE split='test' AND "
                  "name='confusion_matrix'"),
            std::vector<std::string>{"10"});
  EXPECT_EQ(query(db,
                  "SELECT SUM(value) FROM (SELECT value FROM results, json_tree(results.json) "
                  "WHERE name='confusion_matrix' AND type='integer')"),
            std::vector<std::string>{"500"});
  EXPECT_EQ(query(db, "SELECT json_array_length(json) FROM results WHERE name='per_class'"),
            std::vector<std::string>{"10"});
  // The most confidently wrong test images, as PNGs for the dashboard, most confident first.
  auto wrong = query(
      db, "SELECT json_array_length(json) FROM results WHERE split='test' AND name='mistakes'");
  ASSERT_EQ(wrong.size(), 1u);
  EXPECT_EQ(wrong[0], "16");
  EXPECT_EQ(
      query(
          db,
          "SELECT substr(json_extract(json, '$[0].png'), 1, 8) FROM results WHERE name='mistakes'"),
      std::vector<std::string>{"iVBORw0K"})
      << "base64 of the PNG signature";
  EXPECT_EQ(
      query(
          db,
          "SELECT json_extract(json, '$[0].confidence') >= json_extract(json, '$[15].confidence') "
          "FROM results WHERE name='mistakes'"),
      std::vector<std::string>{"1"});
  // Resolved settings with their sources and reasons.
  EXPECT_EQ(query(db, "SELECT value || ' ' || source FROM settings WHERE key='train.max_epochs'"),
            std::vector<std::string>{"1 --epochs"});
  EXPECT_EQ(query(db, "SELECT reason FROM settings WHERE key='train.lr'"),
            std::vector<std::string>{"the Adam rule of thumb"});
  // The initial state (step 0) and epoch 1's: last.ckpt twice, then best and the top-1 epoch.
  EXPECT_EQ(query(db, "SELECT kind || ':' || epoch || ':' || step FROM checkpoints ORDER BY id"),
            (std::vector<std::string>{"last:0:0", "last:1:15", "epoch:1:15", "best:1:15"}));

  // `trainscope test RUN` evaluates the best weights and gives the same accuracy.
  Result t = run("test smoke");
  ASSERT_EQ(t.status, 0) << t.out;
  EXPECT_NE(t.out.find("test accuracy:"), std::string::npos);
  auto again =
      query(db, "SELECT value FROM metrics WHERE split='test' AND tag='accuracy' ORDER BY rowid");
  ASSERT_EQ(again.size(), 2u);
  EXPECT_EQ(again[0], again[1]);

  // `trainscope diagnose RUN` reports the run's outcome and findings from the store.
  Result d = run("diagnose smoke");
  ASSERT_EQ(d.status, 0) << d.out;
  EXPECT_NE(d.out.find("run smoke: finished (max_epochs=1 reached); 1 epochs, best epoch 1"),
            std::string::npos)
      << d.out;
  EXPECT_EQ(run("diagnose nothing-here").status, 2);

  // config.toml is reusable as --config and reproduces the run's settings.
  Result again_run =
      run("train --config runs/smoke/config.toml --name smoke2 --progress off --no-test");
  ASSERT_EQ(again_run.status, 0) << again_run.out;
  EXPECT_EQ(query(run_dir.parent_path() / "smoke2" / "run.sqlite",
                  "SELECT value FROM metrics WHERE split='val' AND tag='loss'"),
            query(db, "SELECT value FROM metrics WHERE split='val' AND tag='loss'"))
      << "same config, same seed: same validation loss";
}

TEST_F(CliTest, CheckRunsThePreflightChecksAlone) {
  if (!fs::exists(kFashion)) GTEST_SKIP() << "dataset-fashion-mnist is not installed";
  Result ok = run("check --only preflight --set data.limit=1000");
  EXPECT_EQ(ok.status, 0) << ok.out;
  EXPECT_NE(ok.out.find("pre-flight checks"), std::string::npos) << ok.out;
  EXPECT_NE(ok.out.find("all pass"), std::string::npos) << ok.out;
  EXPECT_EQ(ok.out.find("data checks"), std::string::npos) << ok.out;
  EXPECT_FALSE(fs::exists(dir_ / "runs")) << "the pre-flight checks write no run";
  EXPECT_EQ(run("check --set train.lr=-1").status, 2);
  EXPECT_EQ(run("check --only everything").status, 2);
}

TEST_F(CliTest, CheckRunsTheDataChecksIntoARunAndAReport) {
  if (!fs::exists(kFashion)) GTEST_SKIP() << "dataset-fashion-mnist is not installed";
  Result r = run("check --set data.limit=2000 --set data.test_limit=500 --name dc --out dc.json");
  ASSERT_EQ(r.status, 0) << r.out;
  EXPECT_NE(r.out.find("pre-flight checks"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("data checks on fashion-mnist (1800 train, 200 val, 500 test"),
            std::string::npos)
      << r.out;
  EXPECT_NE(r.out.find("label suspects: "), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("info data_label_suspects (data check)"), std::string::npos) << r.out;
  std::ifstream in(dir_ / "dc.json");
  ASSERT_TRUE(in.good());
  std::string json((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  EXPECT_NE(json.find("\"label_suspects\""), std::string::npos);
  EXPECT_NE(json.find("\"duplicates\""), std::string::npos);
  // The run holds the findings and the gallery the dashboard shows.
  const auto db = dir_ / "runs" / "dc" / "run.sqlite";
  ASSERT_TRUE(fs::exists(db)) << r.out;
  EXPECT_EQ(query(db, "SELECT COUNT(*) FROM findings WHERE kind='data_label_suspects'"),
            std::vector<std::string>{"1"});
  EXPECT_EQ(query(db, "SELECT COUNT(*) FROM results WHERE split='data_check'"),
            std::vector<std::string>{"1"});
  // The check.* settings reach the data checks: no label suspects, a stricter near copy.
  Result quiet =
      run("check --only data --set data.limit=2000 --set data.test_limit=500 --name dc2 --out "
          "dc2.json --set check.label_noise=false --set check.near_correlation=0.9999");
  ASSERT_EQ(quiet.status, 0) << quiet.out;
  std::ifstream in2(dir_ / "dc2.json");
  const std::string json2((std::istreambuf_iterator<char>(in2)), std::istreambuf_iterator<char>());
  EXPECT_NE(json2.find("\"label_noise_checked\": false"), std::string::npos)
      << json2.substr(0, 400);
  EXPECT_EQ(run("check --only data --set check.near_correlation=1.5 --name bad").status, 2);
  // Reading the data fails as a bad input: exit 2, nothing written.
  EXPECT_EQ(run("check --only data --data csv:missing.csv --name bad").status, 2);
  EXPECT_FALSE(fs::exists(dir_ / "runs" / "bad"));
}

// diagnose --verify replays a run with and without each remedy on paired seeds: a remedy that
// helps (a diverging SGD run, lr 10x lower and clipping) and one that cannot change anything
// (clipping at a norm no gradient of a healthy run reaches, planted as a finding) are told
// apart, every replay is a run of its own, and the report is kept as verify.json.
TEST_F(CliTest, DiagnoseVerifyMeasuresWhetherEachRemedyHelps) {
  if (!fs::exists(kFashion)) GTEST_SKIP() << "dataset-fashion-mnist is not installed";
  const std::string fit =
      " --model mlp --epochs 2 --set train.optimizer=sgd --batch-size 64 --no-test "
      "--no-dashboard --progress plain --set data.limit=1000";
  ASSERT_EQ(run("train --name div --lr 2" + fit).status, 0);
  ASSERT_EQ(run("train --name ok --lr 0.05" + fit).status, 0);
  ASSERT_EQ(query(dir_ / "runs" / "div" / "run.sqlite",
                  "SELECT COUNT(*) FROM findings WHERE kind='non_finite'"),
            std::vector<std::string>{"1"});
  trainscope::track::RunStore(dir_ / "runs" / "ok" / "run.sqlite")
      .add_finding({"planted", "warning", 10, 1, "a planted finding", "{}",
                    "clip at a norm no gradient reaches ({train.grad_clip=1000000})", 0.0});
  trainscope::track::RunStore(dir_ / "runs" / "ok" / "run.sqlite")
      .add_finding({"planted_harm", "warning", 10, 1, "a planted finding", "{}",
                    "an lr that makes SGD diverge ({train.lr=20})", 0.0});
  trainscope::track::RunStore(dir_ / "runs" / "ok" / "run.sqlite")
      .add_finding({"planted_alt", "warning", 10, 1, "a planted finding", "{}",
                    "clip far away ({train.grad_clip=1000000}) or diverge ({train.lr=20})", 0.0});

  Result v = run("diagnose div --verify --seeds 2 --only non_finite");
  ASSERT_EQ(v.status, 0) << v.out;
  EXPECT_NE(v.out.find("remedies of run div verified by replay, with and without each remedy, on "
                       "seeds 0 1"),
            std::string::npos)
      << v.out;
  // Diverged in its first epoch: no checkpoint before the finding, so the replays start afresh.
  EXPECT_NE(v.out.find("2 epochs from the start (a finding before the first epoch's end)"),
            std::string::npos)
      << v.out;
  EXPECT_NE(v.out.find("non_finite (epoch 1): train.lr = 0.2, train.grad_clip = 1"),
            std::string::npos)
      << v.out;
  EXPECT_NE(v.out.find("): helped"), std::string::npos) << v.out;
  Result n = run("diagnose ok --verify --seeds 2 --only planted");
  ASSERT_EQ(n.status, 0) << n.out;
  EXPECT_NE(n.out.find("planted (epoch 1): train.grad_clip = 1000000"), std::string::npos) << n.out;
  EXPECT_NE(n.out.find("effect 0 +- 0; val_accuracy"), std::string::npos) << n.out;
  EXPECT_NE(n.out.find("): no clear effect"), std::string::npos) << n.out;
  // Two seeds per arm, each a run of its own beside the original.
  for (const std::string arm : {"div-verify-2ep-2seeds-base", "div-verify-2ep-2seeds-non_finite",
                                "ok-verify-2ep-2seeds-base", "ok-verify-2ep-2seeds-planted"})
    for (const char* seed : {"-001", "-002"})
      EXPECT_TRUE(fs::exists(dir_ / "runs" / (arm + seed) / "run.sqlite")) << arm << seed;
  std::ifstream in(dir_ / "runs" / "ok" / "verify.json");
  std::string json((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  EXPECT_NE(json.find("\"verdict\": \"no clear effect\""), std::string::npos) << json;
  EXPECT_NE(json.find("\"loss_effect\": 0.0"), std::string::npos) << json;
  Result h = run("diagnose ok --verify --seeds 2 --only planted_harm");
  ASSERT_EQ(h.status, 0) << h.out;
  EXPECT_NE(h.out.find("): hurt (with the remedy 2 of 2 replays diverged"), std::string::npos)
      << h.out;
  // verify.json keeps the earlier call's check (same budget and seeds) beside this one.
  std::ifstream in_h(dir_ / "runs" / "ok" / "verify.json");
  const std::string both((std::istreambuf_iterator<char>(in_h)), std::istreambuf_iterator<char>());
  EXPECT_NE(both.find("\"kind\": \"planted\""), std::string::npos) << both;
  EXPECT_NE(both.find("\"kind\": \"planted_harm\""), std::string::npos) << both;
  EXPECT_NE(h.out.find("(with 1 check of an earlier call on the same seeds)"), std::string::npos)
      << h.out;
  // A remedy offering alternatives ("... or ...") is replayed once per alternative.
  Result alt = run("diagnose ok --verify --seeds 2 --only planted_alt");
  ASSERT_EQ(alt.status, 0) << alt.out;
  EXPECT_NE(alt.out.find("planted_alt, alternative 1 (epoch 1): train.grad_clip = 1000000"),
            std::string::npos)
      << alt.out;
  EXPECT_NE(alt.out.find("planted_alt, alternative 2 (epoch 1): train.lr = 20"), std::string::npos)
      << alt.out;
  EXPECT_TRUE(fs::exists(dir_ / "runs" / "ok-verify-2ep-2seeds-planted_alt-alt1-001"));
  EXPECT_TRUE(fs::exists(dir_ / "runs" / "ok-verify-2ep-2seeds-planted_alt-alt2-002"));
  // Again: the finished replays are reused, not run twice.
  Result again = run("diagnose div --verify --seeds 2 --only non_finite");
  ASSERT_EQ(again.status, 0) << again.out;
  EXPECT_EQ(again.out.find("  replay "), std::string::npos) << again.out;
  EXPECT_NE(again.out.find("): helped"), std::string::npos) << again.out;
  // Mistakes: a finding the run does not have, --seeds without --verify.
  Result missing = run("diagnose div --verify --only overfitting");
  EXPECT_EQ(missing.status, 2);
  EXPECT_NE(missing.out.find("run div has no finding 'overfitting'; it found: "), std::string::npos)
      << missing.out;
  EXPECT_EQ(run("diagnose div --seeds 2").status, 2);
}

// A finding after the first epoch is verified from the checkpoint before it: each replay is a
// fork of the run (its store's history up to the fork, linked to the original), the fork at the
// run's own seed and budget ends exactly where the original did, the next seed continues on
// another stream, and a remedy a checkpoint cannot take (the model) replays from the start.
TEST_F(CliTest, DiagnoseVerifyForksFromTheCheckpointBeforeTheFinding) {
  if (!fs::exists(kFashion)) GTEST_SKIP() << "dataset-fashion-mnist is not installed";
  ASSERT_EQ(run("train --name late --model mlp --epochs 3 --set train.optimizer=sgd --lr 0.05 "
                "--batch-size 64 --no-test --no-dashboard --progress plain --set data.limit=1000 "
                "--set checkpoint.keep_top_k=3")
                .status,
            0);
  const fs::path late = dir_ / "runs" / "late";
  trainscope::track::RunStore(late / "run.sqlite")
      .add_finding({"planted", "warning", 40, 3, "a planted finding", "{}",
                    "clip at a norm no gradient reaches ({train.grad_clip=1000000})", 0.0});
  trainscope::track::RunStore(late / "run.sqlite")
      .add_finding({"planted_model", "warning", 40, 3, "a planted finding", "{}",
                    "a wider model ({model.hidden=[64]})", 0.0});
  trainscope::track::RunStore(late / "run.sqlite")
      .add_finding({"planted_early", "warning", 20, 2, "a planted finding", "{}",
                    "a lower lr ({train.lr=0.01})", 0.0});
  Result v = run("diagnose late --verify --seeds 2 --epochs 1");
  ASSERT_EQ(v.status, 0) << v.out;
  EXPECT_NE(v.out.find("1 epoch from epoch 2 (forked from checkpoints/epoch-0002-"),
            std::string::npos)
      << v.out;
  EXPECT_NE(v.out.find("planted (epoch 3): train.grad_clip = 1000000 "
                       "(late-verify-from2-1ep-2seeds-planted)"),
            std::string::npos)
      << v.out;
  EXPECT_NE(v.out.find("effect 0 +- 0; val_accuracy"), std::string::npos) << v.out;
  // Each finding forks from the checkpoint before it: the one of epoch 2 from epoch 1.
  EXPECT_NE(v.out.find("1 epoch from epoch 1 (forked from checkpoints/epoch-0001-"),
            std::string::npos)
      << v.out;
  EXPECT_NE(v.out.find("planted_early (epoch 2): train.lr = 0.01 "
                       "(late-verify-from1-1ep-2seeds-planted_early)"),
            std::string::npos)
      << v.out;
  EXPECT_NE(v.out.find("1 epoch from the start (a checkpoint cannot take model.hidden"),
            std::string::npos)
      << v.out;
  EXPECT_TRUE(fs::exists(dir_ / "runs" / "late-verify-1ep-2seeds-planted_model-002"));
  // "Or more epochs" (too few steps, found in epoch 1): the remedy arm trains one more epoch
  // than the one-epoch baseline from the start.
  EXPECT_NE(v.out.find("(1 more epoch than the baseline, whose replay ends at epoch 1)"),
            std::string::npos)
      << v.out;
  EXPECT_EQ(query(dir_ / "runs" / "late-verify-1ep-2seeds-too_few_steps-alt2-001" / "run.sqlite",
                  "SELECT MAX(epoch) FROM metrics WHERE split='val'"),
            std::vector<std::string>{"2"});
  // The fork at the run's seed: its history up to epoch 2 is the original's, and its epoch 3
  // (the same settings, the run's budget) is the original's epoch 3 exactly.
  const fs::path fork = dir_ / "runs" / "late-verify-from2-1ep-2seeds-base-001";
  const auto val = [](const fs::path& run, int epoch) {
    return query(run / "run.sqlite",
                 "SELECT printf('%.17g', value) FROM metrics WHERE split='val' "
                 "AND tag='loss' AND epoch=" +
                     std::to_string(epoch));
  };
  for (int epoch : {1, 2, 3}) {
    ASSERT_EQ(val(late, epoch).size(), 1u) << epoch;
    EXPECT_EQ(val(fork, epoch), val(late, epoch)) << "epoch " << epoch;
  }
  EXPECT_NE(val(dir_ / "runs" / "late-verify-from2-1ep-2seeds-base-002", 3), val(late, 3))
      << "the second seed continues on another stream";
  EXPECT_EQ(val(dir_ / "runs" / "late-verify-from2-1ep-2seeds-base-002", 2), val(late, 2));
  EXPECT_EQ(query(fork / "run.sqlite",
                  "SELECT value FROM meta WHERE key IN ('forked_from', 'forked_epoch', 'name') "
                  "ORDER BY key"),
            (std::vector<std::string>{"2", "late", "late-verify-from2-1ep-2seeds-base-001"}));
  EXPECT_EQ(query(fork / "run.sqlite", "SELECT value FROM meta WHERE key='status'"),
            std::vector<std::string>{"finished"});
  // The forks share the original's checkpoint files (hard links) and never write into them: each
  // still verifies and holds its epoch.
  for (const auto& e : fs::directory_iterator(late / "checkpoints")) {
    trainscope::track::CheckpointInfo info;
    EXPECT_NO_THROW(trainscope::track::read_checkpoint_payload(e.path(), &info)) << e.path();
    if (e.path().filename().string().rfind("epoch-0002", 0) == 0) EXPECT_EQ(info.epoch, 2);
  }
  // The original keeps the checks for the dashboard.
  const auto kept =
      query(late / "run.sqlite",
            "SELECT json_extract(c.value, '$.from_epoch') || ' ' || "
            "json_extract(c.value, '$.verdict') FROM results, json_each(results.json, "
            "'$.checks') AS c WHERE split='verify' AND name='remedies' AND "
            "json_extract(c.value, '$.kind') LIKE 'planted%' ORDER BY 1");
  ASSERT_EQ(kept.size(), 3u);
  EXPECT_EQ(kept[0].substr(0, 2), "0 ");  // the wider model, from the start: any verdict
  EXPECT_EQ(kept[1].substr(0, 2), "1 ");  // a lower lr from epoch 1: any verdict
  EXPECT_EQ(kept[2], "2 no clear effect");
}

TEST_F(CliTest, TuneLrStoresTheCurveAndPlotsIt) {
  if (!fs::exists(kFashion)) GTEST_SKIP() << "dataset-fashion-mnist is not installed";
  Result r = run("tune lr --set data.limit=3000 --set run.name=lr --set model.name=mlp");
  ASSERT_EQ(r.status, 0) << r.out;
  EXPECT_NE(r.out.find("suggested lr: "), std::string::npos) << r.out;
  EXPECT_TRUE(fs::exists(dir_ / "runs" / "lr" / "lr_find.png"));
  const auto db = dir_ / "runs" / "lr" / "run.sqlite";
  auto n = query(db, "SELECT COUNT(*) FROM metrics WHERE tag='lr_find/smoothed_loss'");
  ASSERT_EQ(n.size(), 1u);
  EXPECT_GE(std::stoi(n[0]), 20);
  EXPECT_EQ(
      query(db, "SELECT json_extract(json, '$.confident') FROM results WHERE name='lr_suggestion'")
          .size(),
      1u);
}

// Reproducible by default: the same command, batch "auto" included, gives the same batch size, the
// same weights bit for bit and the same findings.
TEST_F(CliTest, TheSameCommandTwiceGivesTheSameBatchWeightsAndFindings) {
  if (!fs::exists(kFashion)) GTEST_SKIP() << "dataset-fashion-mnist is not installed";
  std::vector<std::string> weights, findings, batch;
  for (const char* name : {"again-a", "again-b"}) {
    Result r = run(std::string("train --epochs 2 --name ") + name +
                   " --progress plain --no-test --no-dashboard --set data.limit=1500");
    ASSERT_EQ(r.status, 0) << r.out;
    const auto out = dir_ / name;
    fs::create_directories(out);
    Result e = run(std::string("export ") + name + " --weights last --out " +
                   (out / "weights.pt").string());
    ASSERT_EQ(e.status, 0) << e.out;
    std::ifstream file(out / "weights.pt", std::ios::binary);
    weights.emplace_back((std::istreambuf_iterator<char>(file)), std::istreambuf_iterator<char>());
    const auto db = dir_ / "runs" / name / "run.sqlite";
    std::string all;
    for (const auto& row : query(db, "SELECT kind || ' ' || step || ' ' || message FROM findings"))
      all += row + "\n";
    findings.push_back(all);
    batch.push_back(query(db, "SELECT value FROM settings WHERE key='train.batch_size'").at(0));
  }
  EXPECT_EQ(batch[0], batch[1]);
  ASSERT_FALSE(weights[0].empty());
  EXPECT_TRUE(weights[0] == weights[1]) << "the exported weights differ";
  EXPECT_EQ(findings[0], findings[1]);
}

TEST_F(CliTest, BatchSizeAutoIsSearchedRecordedAndReusable) {
  if (!fs::exists(kFashion)) GTEST_SKIP() << "dataset-fashion-mnist is not installed";
  Result r =
      run("train --epochs 1 --name auto --progress plain --no-test --no-dashboard --set "
          "data.limit=2000");
  ASSERT_EQ(r.status, 0) << r.out;
  EXPECT_NE(r.out.find("batch size "), std::string::npos) << r.out;
  const auto db = dir_ / "runs" / "auto" / "run.sqlite";
  auto chosen =
      query(db, "SELECT value || ' ' || source FROM settings WHERE key='train.batch_size'");
  ASSERT_EQ(chosen.size(), 1u);
  EXPECT_NE(chosen[0].find(" CPU batch rule"), std::string::npos) << chosen[0];
  EXPECT_EQ(
      query(db, "SELECT json_extract(json, '$.batch_size') FROM results WHERE name='batch_size'")
          .size(),
      1u);
  // config.toml holds the number, so a rerun does not search again.
  std::ifstream toml(dir_ / "runs" / "auto" / "config.toml");
  std::string text((std::istreambuf_iterator<char>(toml)), std::istreambuf_iterator<char>());
  EXPECT_EQ(text.find("batch_size = \"auto\""), std::string::npos) << text;
}
