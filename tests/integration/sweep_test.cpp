// Sweeps: the plan (grid order, random draws, what a parameter may say), trials run in this
// process through the library, and `trainscope sweep` killed in the middle and started again:
// every trial ends finished once, none lost, none run twice.
#include <trainscope/error.h>
#include <trainscope/session/settings.h>
#include <trainscope/session/sweep.h>
#include <trainscope/track/run_store.h>

#include <gtest/gtest.h>

#include "process.h"

#include <set>

namespace fs = std::filesystem;
namespace ts = trainscope;
using namespace trainscope::testing;

namespace {

const char* kFashion = "/usr/share/datasets/fashion-mnist/train-images-idx3-ubyte.gz";

std::string error_of(const std::function<void()>& f) {
  try {
    f();
  } catch (const ts::ConfigError& e) {
    return e.what();
  }
  return "no error";
}

std::string meta(const fs::path& run, const std::string& key) {
  ts::track::RunStore store(run / "run.sqlite", ts::track::RunStore::Mode::kReadOnly);
  return store.meta(key).value_or("");
}

class Sweep : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = fs::temp_directory_path() /
           ("ts_sweep_" + std::to_string(::getpid()) + "_" +
            ::testing::UnitTest::GetInstance()->current_test_info()->name());
    fs::remove_all(dir_);
    fs::create_directories(dir_);
  }
  void TearDown() override {
    if (!HasFailure()) fs::remove_all(dir_);
  }
  // A small fit: an MLP on 1,000 images for 2 epochs, a few seconds.
  ts::Config base() const {
    ts::Config c = ts::default_config();
    for (const char* s :
         {"model.name=mlp", "model.hidden=[32]", "data.limit=1000", "train.max_epochs=2",
          "train.batch_size=50", "ui.progress=off", "ui.dashboard=false"})
      c.set_from_string(s, "test");
    c.set_from_string("run.dir=" + (dir_ / "runs").string(), "test");
    return c;
  }
  fs::path dir_;
};

TEST_F(Sweep, PlansAGridInOrderAndRandomDrawsBySeed) {
  const ts::Config c = base();
  ts::SweepOptions o;
  o.name = "grid";
  o.parameters = {ts::parse_sweep_parameter("train.lr=[0.001, 0.0003]", c),
                  ts::parse_sweep_parameter("model.hidden=[[64], [128, 64], [32]]", c)};
  const auto trials = ts::plan_sweep(o, c);
  ASSERT_EQ(trials.size(), 6u);
  EXPECT_EQ(trials[0].run_name, "grid-001");
  EXPECT_EQ(trials[0].settings_text(), "train.lr=0.001 model.hidden=[64]");
  EXPECT_EQ(trials[1].settings_text(), "train.lr=0.001 model.hidden=[128, 64]");
  EXPECT_EQ(trials[5].settings_text(), "train.lr=0.0003 model.hidden=[32]");

  ts::SweepOptions r;
  r.name = "random";
  r.method = ts::SweepMethod::kRandom;
  r.trials = 20;
  r.seed = 3;
  r.parameters = {ts::parse_sweep_parameter("train.lr=loguniform(1e-4, 1e-2)", c),
                  ts::parse_sweep_parameter("train.seed=int(1, 4)", c),
                  ts::parse_sweep_parameter("train.optimizer=[adam, sgd]", c)};
  const auto a = ts::plan_sweep(r, c), b = ts::plan_sweep(r, c);
  ASSERT_EQ(a.size(), 20u);
  std::set<std::string> seeds, optimizers;
  for (size_t i = 0; i < a.size(); ++i) {
    EXPECT_EQ(a[i].settings_text(), b[i].settings_text()) << "the same seed, the same draws";
    const double lr = std::stod(a[i].settings[0].second);
    EXPECT_GE(lr, 1e-4);
    EXPECT_LE(lr, 1e-2);
    seeds.insert(a[i].settings[1].second);
    optimizers.insert(a[i].settings[2].second);
  }
  EXPECT_EQ(seeds, (std::set<std::string>{"1", "2", "3", "4"}));
  EXPECT_EQ(optimizers.size(), 2u);
  r.seed = 4;
  EXPECT_NE(ts::plan_sweep(r, c)[0].settings_text(), a[0].settings_text());
}

TEST_F(Sweep, NamesWhatIsWrongWithAParameterOrAPlan) {
  const ts::Config c = base();
  EXPECT_NE(error_of([&] {
              ts::parse_sweep_parameter("train.lrr=[0.1]", c);
            }).find("did you mean 'train.lr'"),
            std::string::npos);
  EXPECT_NE(
      error_of([&] {
        ts::parse_sweep_parameter("train.lr=[0.001, -1]", c);
      }).find("sweep parameter 'train.lr=[0.001, -1]': sweep: train.lr = -1.0 is out of range"),
      std::string::npos)
      << error_of([&] { ts::parse_sweep_parameter("train.lr=[0.001, -1]", c); });
  EXPECT_NE(error_of([&] {
              ts::parse_sweep_parameter("train.lr=loguniform(0, 1)", c);
            }).find("loguniform needs positive ends"),
            std::string::npos);
  EXPECT_NE(error_of([&] { ts::parse_sweep_parameter("train.lr", c); }).find("expected KEY=["),
            std::string::npos);
  EXPECT_NE(error_of([&] {
              ts::parse_sweep_parameter("run.name=[a, b]", c);
            }).find("names or shows the runs"),
            std::string::npos);
  ts::SweepOptions o;
  o.name = "g";
  o.parameters = {ts::parse_sweep_parameter("train.lr=uniform(0.001, 0.01)", c)};
  EXPECT_NE(error_of([&] { ts::plan_sweep(o, c); }).find("ranges need --method random"),
            std::string::npos);
  o.method = ts::SweepMethod::kRandom;
  EXPECT_NE(error_of([&] { ts::plan_sweep(o, c); }).find("needs --trials N"), std::string::npos);
  o.trials = 2;
  o.name = "a/b";
  EXPECT_NE(error_of([&] { ts::plan_sweep(o, c); }).find("is not a run name"), std::string::npos);

  // The same name with another plan is refused; the same plan is accepted again.
  o.name = "same";
  ts::Sweep first(c, o);
  ts::Sweep again(c, o);
  EXPECT_EQ(again.trials().size(), 2u);
  o.seed = 9;
  EXPECT_NE(error_of([&] { ts::Sweep(c, o); }).find("was started with another plan"),
            std::string::npos);
}

// Four trials through the library, one after another; the runs say which sweep they belong to,
// each trial's config file trains it, and running the sweep again runs nothing.
TEST_F(Sweep, RunsEachTrialOnceInProcess) {
  if (!fs::exists(kFashion)) GTEST_SKIP() << "dataset-fashion-mnist is not installed";
  ts::Config c = base();
  // Early stopping ends every trial after its first epoch: a fit that ended on its own is done.
  c.set_from_string("stopping.threshold=50", "test");
  ts::SweepOptions o;
  o.name = "lib";
  o.parameters = {ts::parse_sweep_parameter("train.lr=[0.001, 0.003]", c),
                  ts::parse_sweep_parameter("train.seed=[1, 2]", c)};
  ts::Sweep sweep(c, o);
  const ts::SweepResult r = sweep.run(ts::in_process_trials());
  EXPECT_EQ(r.ran, 4);
  EXPECT_FALSE(r.interrupted);
  for (const auto& t : r.trials) {
    EXPECT_EQ(t.status, "finished") << t.run_name;
    EXPECT_EQ(t.stop_reason, "stopping_threshold") << t.run_name;
    ASSERT_TRUE(t.test_accuracy) << t.run_name;
    EXPECT_GT(*t.test_accuracy, 0.3) << t.run_name;
    EXPECT_EQ(t.monitor, "val_loss");
    ts::Config run = ts::default_config();
    run.merge_file(sweep.run_dir(t) / "config.toml");
    EXPECT_EQ(run.get_string("run.sweep"), "lib");
    EXPECT_NE(file_text(sweep.run_dir(t) / "config.toml")
                  .find("lr = " + t.settings[0].second + "  # from sweep"),
              std::string::npos);
  }
  EXPECT_NE(r.summary.find("sweep lib: 4 of 4 trials finished, best first"), std::string::npos)
      << r.summary;
  EXPECT_NE(r.summary.find("train.lr=0.003 train.seed=2"), std::string::npos) << r.summary;
  // The trial's file holds what it trains with.
  ts::Config from_file = ts::default_config();
  from_file.merge_file(sweep.write_trial_config(r.trials[3]));
  EXPECT_EQ(from_file.get_double("train.lr"), 0.003);
  EXPECT_EQ(from_file.get_int("train.seed"), 2);
  EXPECT_EQ(from_file.get_string("run.name"), "lib-004");

  ts::Sweep again(c, o);
  EXPECT_EQ(again.run(ts::in_process_trials()).ran, 0) << "a finished trial never runs twice";
}

// Successive halving: at the first rung (epoch 1) the trials with hopeless lrs rank behind the
// first trial and stop there; the first runs its whole budget. Pruned trials count as finished:
// the same sweep again runs nothing.
TEST_F(Sweep, SuccessiveHalvingStopsTrialsBehindTheOthers) {
  if (!fs::exists(kFashion)) GTEST_SKIP() << "dataset-fashion-mnist is not installed";
  ts::Config c = base();
  for (const char* s : {"train.max_epochs=3", "sweep.prune=halving", "sweep.prune_factor=2"})
    c.set_from_string(s, "test");
  ts::SweepOptions o;
  o.name = "asha";
  o.test = false;
  o.parameters = {ts::parse_sweep_parameter("train.lr=[0.003, 1e-7, 1e-8]", c)};
  ts::Sweep sweep(c, o);
  const ts::SweepResult r = sweep.run(ts::in_process_trials(/*test=*/false));
  ASSERT_EQ(r.trials.size(), 3u);
  EXPECT_EQ(r.trials[0].stop_reason, "max_epochs");
  EXPECT_EQ(meta(sweep.run_dir(r.trials[0]), "epochs"), "3");
  for (size_t i : {1, 2}) {
    EXPECT_EQ(r.trials[i].status, "finished") << r.trials[i].run_name;
    EXPECT_EQ(r.trials[i].stop_reason, "pruned") << r.trials[i].run_name;
    EXPECT_EQ(meta(sweep.run_dir(r.trials[i]), "epochs"), "1") << r.trials[i].run_name;
    EXPECT_NE(
        meta(sweep.run_dir(r.trials[i]), "stop_message").find("rung at epoch 1: best val_loss"),
        std::string::npos);
  }
  EXPECT_NE(r.summary.find("3 of 3 trials finished (2 pruned early)"), std::string::npos)
      << r.summary;
  const std::string rungs = file_text(dir_ / "runs" / "asha.sweep" / "rungs.tsv");
  for (const char* line : {"1\tasha-001\t", "1\tasha-002\t", "1\tasha-003\t", "2\tasha-001\t"})
    EXPECT_NE(rungs.find(line), std::string::npos) << line << " in\n" << rungs;
  ts::Sweep again(c, o);
  EXPECT_EQ(again.run(ts::in_process_trials(false)).ran, 0) << "a pruned trial is done";
}

// `trainscope sweep` killed (SIGKILL) while its second trial trains, then started again with the
// same command: the first trial is kept as it was, the second resumes from its checkpoint (or,
// killed before its first one, starts over), and all four finish once.
TEST_F(Sweep, KilledSweepGoesOnWhereItStopped) {
  if (!fs::exists(kFashion)) GTEST_SKIP() << "dataset-fashion-mnist is not installed";
  const fs::path runs = dir_ / "runs";
  const std::vector<std::string> args = {"sweep",
                                         "--name",
                                         "cli",
                                         "--sweep",
                                         "train.lr=[0.001, 0.003]",
                                         "--sweep",
                                         "train.seed=[1, 2]",
                                         "--model",
                                         "mlp",
                                         "--set",
                                         "data.limit=12000",
                                         "--epochs",
                                         "3",
                                         "--batch-size",
                                         "50",
                                         "--runs-dir",
                                         runs.string(),
                                         "--progress",
                                         "plain"};
  const pid_t first = spawn(args, dir_ / "log.txt");
  // The second trial has saved a checkpoint: well into its fit.
  ASSERT_TRUE(wait_until([&] { return fs::exists(runs / "cli-002" / "checkpoints" / "last.ckpt"); },
                         first, 240))
      << file_text(dir_ / "log.txt");
  ASSERT_TRUE(kill_now(first)) << "the sweep ended before the kill";
  const std::string started = meta(runs / "cli-001", "started_at");
  ASSERT_EQ(meta(runs / "cli-001", "status"), "finished");
  // The trial's own process stops too (it gets SIGTERM when the sweep dies) and saves.
  const auto deadline = Clock::now() + std::chrono::seconds(60);
  while (meta(runs / "cli-002", "status") == "running" && Clock::now() < deadline)
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  ASSERT_NE(meta(runs / "cli-002", "status"), "running") << "the trial outlived the sweep";
  EXPECT_FALSE(fs::exists(runs / "cli-003")) << "the kill landed in trial 2";

  const pid_t second = spawn(args, dir_ / "log2.txt");
  ASSERT_EQ(wait_for(second), 0) << file_text(dir_ / "log2.txt");
  const std::string out = file_text(dir_ / "log2.txt");
  EXPECT_NE(out.find("sweep cli: 4 trials (grid), 1 done before"), std::string::npos) << out;
  EXPECT_EQ(out.find("train cli-001"), std::string::npos) << "trial 1 ran again:\n" << out;
  EXPECT_NE(out.find("resume cli-002"), std::string::npos) << out;
  EXPECT_NE(out.find("sweep cli: 4 of 4 trials finished"), std::string::npos) << out;
  EXPECT_EQ(meta(runs / "cli-001", "started_at"), started);
  EXPECT_EQ(meta(runs / "cli-002", "resumes"), "1");
  for (const char* run : {"cli-001", "cli-002", "cli-003", "cli-004"}) {
    EXPECT_EQ(meta(runs / run, "status"), "finished") << run;
    ts::track::RunStore store(runs / run / "run.sqlite", ts::track::RunStore::Mode::kReadOnly);
    EXPECT_TRUE(store.result("test", "metrics").has_value()) << run;
  }
  size_t entries = 0;
  for (const auto& e : fs::directory_iterator(runs)) entries += e.path().filename() != "cli.sweep";
  EXPECT_EQ(entries, 4u) << "no trial ran twice under another name";

  // A third start finds nothing to do.
  ASSERT_EQ(wait_for(spawn(args, dir_ / "log3.txt")), 0);
  EXPECT_NE(file_text(dir_ / "log3.txt").find("4 done before"), std::string::npos);
  EXPECT_EQ(file_text(dir_ / "log3.txt").find("== trial"), std::string::npos);
}

}  // namespace
