// Data-parallel training over Gloo on loopback, end to end through the CLI: two ranks train to the
// weights of one process with the same global batch and data order (with `--nproc 2` and as a
// torchrun-style job from environment variables); a rank that dies makes the others stop with its
// name instead of hanging; Ctrl-C stops every rank at the same batch and the job resumes at the
// same world size, to the weights of the uninterrupted job.
#include <trainscope/callbacks/checkpoint.h>
#include <trainscope/dist/process_group.h>
#include <trainscope/track/checkpoint_file.h>
#include <trainscope/track/run_store.h>
#include <trainscope/models/zoo.h>

#include <gtest/gtest.h>

#include <fstream>

#include "process.h"

namespace fs = std::filesystem;
namespace ts = trainscope;
using namespace trainscope::testing;

namespace {

const char* kFashion = "/usr/share/datasets/fashion-mnist/train-images-idx3-ubyte.gz";

// An MLP without dropout, no augmentation: what the ranks compute depends only on the data they
// see. 3,600 training examples, global batch 64: 57 steps an epoch.
std::vector<std::string> fit_args(const fs::path& runs, const std::string& name,
                                  const std::string& epochs = "2") {
  return {"train", "--model", "mlp", "--set", "data.limit=4000", "--set", "data.augment=[]",
          "--epochs", epochs, "--batch-size", "64", "--name", name, "--runs-dir", runs.string(),
          "--progress", "plain", "--no-dashboard", "--no-test", "--set", "dist.timeout=20",
          // The ranks' sum is compared with one process's at float32's resolution: bf16 (the
          // default where the CPU has it) rounds each rank's half batch on its own.
          "--set", "train.precision=fp32"};
}

std::vector<torch::Tensor> weights(const fs::path& checkpoint) {
  auto model = ts::models::mlp();
  ts::callbacks::load_weights(model.module(), checkpoint);
  return model.snapshot();
}

double max_difference(const fs::path& a, const fs::path& b) {
  auto wa = weights(a), wb = weights(b);
  double worst = 0;
  for (size_t i = 0; i < wa.size(); ++i)
    worst = std::max(worst, (wa[i] - wb[i]).abs().max().item<double>());
  std::printf("  max |difference| %s vs %s: %.3g\n",
              a.parent_path().parent_path().filename().c_str(),
              b.parent_path().parent_path().filename().c_str(), worst);
  return worst;
}

class DataParallel : public ::testing::Test {
 protected:
  void SetUp() override {
    if (!fs::exists(kFashion)) GTEST_SKIP() << "dataset-fashion-mnist is not installed";
    const auto backends = ts::dist::available_backends();
    if (std::find(backends.begin(), backends.end(), "gloo") == backends.end())
      GTEST_SKIP() << "this LibTorch has no Gloo";
    dir_ = fs::temp_directory_path() /
           ("ts_dp_" + std::to_string(::getpid()) + "_" +
            ::testing::UnitTest::GetInstance()->current_test_info()->name());
    fs::remove_all(dir_);
    fs::create_directories(dir_);
  }
  void TearDown() override {
    if (!dir_.empty() && !HasFailure()) fs::remove_all(dir_);
  }
  std::string log_text(const std::string& name = "log.txt") const { return file_text(dir_ / name); }
  fs::path runs() const { return dir_ / "runs"; }
  fs::path ckpt(const std::string& run, const char* file = "last.ckpt") const {
    return runs() / run / "checkpoints" / file;
  }
  // A torchrun-style job: rank `r` of 2, from environment variables only.
  pid_t rank(int r, int port, const std::vector<std::string>& args, const std::string& log) {
    return spawn(args, dir_ / log,
                 {"RANK=" + std::to_string(r), "WORLD_SIZE=2", "MASTER_ADDR=127.0.0.1",
                  "MASTER_PORT=" + std::to_string(port)});
  }
  fs::path dir_;
};

int port_for_test(int offset) { return 20000 + (::getpid() % 20000) + offset; }

TEST_F(DataParallel, TwoRanksTrainToTheWeightsOfOneProcess) {
  // Metrics that are not means over examples: the job's are computed from the ranks' summed
  // state, so they are the single process's, not an average of two halves'.
  const std::vector<std::string> metrics = {"--set", "train.metrics=[\"f1_macro\", \"auroc\"]"};
  auto one = fit_args(runs(), "one");
  one.insert(one.end(), metrics.begin(), metrics.end());
  ASSERT_EQ(wait_for(spawn(one, dir_ / "log.txt")), 0) << log_text();
  auto two = fit_args(runs(), "two");
  two.insert(two.end(), metrics.begin(), metrics.end());
  two.push_back("--nproc");
  two.push_back("2");
  ASSERT_EQ(wait_for(spawn(two, dir_ / "log.txt")), 0) << log_text();
  EXPECT_NE(log_text().find("data parallel: 2 ranks over gloo, global batch 64 = 2 x 32"),
            std::string::npos)
      << log_text();
  // The same averaged gradients, summed in another order: float noise, not another model. Adam
  // divides by sqrt(v), which magnifies that noise where gradients are nearly zero; SGD, linear in
  // the gradients, keeps it at float32's resolution.
  EXPECT_LT(max_difference(ckpt("one"), ckpt("two")), 1e-4);
  EXPECT_GT(max_difference(ckpt("one", "previous.ckpt"), ckpt("one")), 1e-3) << "it trained";
  for (const char* tag : {"f1_macro", "auroc", "accuracy"}) {
    const std::string sql = "select value from metrics where split = 'train' and tag = '" +
                            std::string(tag) + "' and epoch = 2";
    const auto a = sh("sqlite3 '" + (runs() / "one/run.sqlite").string() + "' \"" + sql + "\"");
    const auto b = sh("sqlite3 '" + (runs() / "two/run.sqlite").string() + "' \"" + sql + "\"");
    ASSERT_FALSE(a.out.empty()) << tag;
    EXPECT_NEAR(std::stod(a.out), std::stod(b.out), 1e-6) << tag;
  }
  for (const char* name : {"sgd-one", "sgd-two"}) {
    auto a = fit_args(runs(), name);
    a.insert(a.end(), {"--set", "train.optimizer=sgd", "--lr", "0.05"});
    if (std::string(name) == "sgd-two") a.insert(a.end(), {"--nproc", "2"});
    ASSERT_EQ(wait_for(spawn(a, dir_ / "log.txt")), 0) << log_text();
  }
  EXPECT_LT(max_difference(ckpt("sgd-one"), ckpt("sgd-two")), 1e-6);

  // The same job started by a torchrun-like launcher: just the environment.
  const int port = port_for_test(1);
  pid_t r1 = rank(1, port, fit_args(runs(), "env"), "rank1.txt");
  pid_t r0 = rank(0, port, fit_args(runs(), "env"), "rank0.txt");
  ASSERT_EQ(wait_for(r0), 0) << log_text("rank0.txt");
  ASSERT_EQ(wait_for(r1), 0) << log_text("rank1.txt");
  EXPECT_LT(max_difference(ckpt("one"), ckpt("env")), 1e-4);
  EXPECT_EQ(log_text("rank1.txt").find("epoch 1/2"), std::string::npos) << "rank 0 alone reports";
}

// Nothing hangs: each survivor ends by itself (the waits below end when it exits), with the dead
// rank's name.
TEST_F(DataParallel, ARankThatDiesStopsTheOthersWithItsName) {
  auto longer = [&](const std::string& name) { return fit_args(runs(), name, "50"); };
  for (int dead : {1, 0}) {
    SCOPED_TRACE("rank " + std::to_string(dead) + " dies");
    const int port = port_for_test(2 + dead);
    const std::string name = "dies" + std::to_string(dead);
    pid_t pids[2];
    pids[1] = rank(1, port, longer(name), name + "-1.txt");
    pids[0] = rank(0, port, longer(name), name + "-0.txt");
    ASSERT_TRUE(wait_until([&] { return fs::exists(ckpt(name)); }, pids[0], 60))
        << log_text(name + "-0.txt");
    std::this_thread::sleep_for(std::chrono::milliseconds(500));
    ASSERT_TRUE(kill_now(pids[dead])) << "the rank was still training";
    const int survivor = 1 - dead;
    EXPECT_EQ(wait_for(pids[survivor]), 1);
    const std::string said = log_text(name + "-" + std::to_string(survivor) + ".txt");
    const std::string expected = dead == 1 ? "rank 0 of 2 stops: rank 1 is gone"
                                           : "rank 1 of 2 stops: rank 0, which hosts the job's "
                                             "store at 127.0.0.1:" +
                                                 std::to_string(port) + ", is gone";
    EXPECT_NE(said.find(expected), std::string::npos) << said;
  }
  // Under --nproc the launcher sees the death first and stops the rest.
  auto launched = longer("launched");
  launched.insert(launched.end(), {"--nproc", "2"});
  const pid_t launcher = spawn(launched, dir_ / "launcher.txt");
  ASSERT_TRUE(wait_until([&] { return fs::exists(ckpt("launched")); }, launcher, 60))
      << log_text("launcher.txt");
  const auto ranks = children_of(launcher);
  ASSERT_EQ(ranks.size(), 2u);
  ::kill(ranks[1], SIGKILL);
  EXPECT_NE(wait_for(launcher), 0);
  EXPECT_NE(log_text("launcher.txt").find("trainscope: rank 1 was killed by signal 9"),
            std::string::npos)
      << log_text("launcher.txt");
}

TEST_F(DataParallel, CtrlCStopsEveryRankAtOneBatchAndTheJobResumes) {
  auto job = [&](const std::string& name) {
    auto a = fit_args(runs(), name, "3");
    a.insert(a.end(), {"--set", "data.limit=20000", "--nproc", "2"});
    return a;
  };
  ASSERT_EQ(wait_for(spawn(job("whole"), dir_ / "log.txt")), 0) << log_text();
  // Ctrl-C: the terminal signals the launcher's process group, and the launcher passes it on to
  // each rank once (a second SIGINT would kill a rank before it saves).
  const pid_t launcher = spawn(job("cut"), dir_ / "cut.txt", {}, /*own_group=*/true);
  ASSERT_TRUE(wait_until([&] { return fs::exists(ckpt("cut")); }, launcher, 60))
      << log_text("cut.txt");
  std::this_thread::sleep_for(std::chrono::milliseconds(1500));
  ::kill(-launcher, SIGINT);
  EXPECT_EQ(wait_for(launcher), 130) << log_text("cut.txt");
  EXPECT_NE(log_text("cut.txt").find("interrupted (a signal to the job) in epoch"),
            std::string::npos)
      << log_text("cut.txt");
  EXPECT_NE(log_text("cut.txt").find(
                "the state after the last batch is saved: trainscope resume cut --nproc 2\n"),
            std::string::npos)
      << log_text("cut.txt");
  const auto info = ts::track::read_checkpoint_info(ckpt("cut"));
  EXPECT_FALSE(info.epoch_complete) << "saved mid-epoch, at the batch every rank stopped after";
  // One process cannot take over two ranks' places: refused before the run is touched.
  EXPECT_EQ(wait_for(spawn({"resume", "cut", "--runs-dir", runs().string(), "--no-test",
                            "--no-dashboard", "--progress", "plain"},
                           dir_ / "alone.txt")),
            2);
  EXPECT_NE(log_text("alone.txt")
                .find("was taken by a job of 2 processes, this one has 1; resume "
                      "at the same world size (trainscope resume RUN --nproc 2"),
            std::string::npos)
      << log_text("alone.txt");
  ASSERT_EQ(wait_for(spawn({"resume", "cut", "--runs-dir", runs().string(), "--no-test",
                            "--no-dashboard", "--progress", "plain", "--nproc", "2"},
                           dir_ / "cut.txt")),
            0)
      << log_text("cut.txt");
  EXPECT_EQ(max_difference(ckpt("cut"), ckpt("whole")), 0.0)
      << "the resumed job ends where the uninterrupted one did";
}

// `kill LAUNCHER` (a scheduler's SIGTERM) reaches every rank: each saves the batch and stops.
TEST_F(DataParallel, ASignalToTheLauncherReachesEveryRank) {
  auto a = fit_args(runs(), "term", "3");
  a.insert(a.end(), {"--set", "data.limit=20000", "--nproc", "2"});
  const pid_t launcher = spawn(a, dir_ / "term.txt");
  ASSERT_TRUE(wait_until([&] { return fs::exists(ckpt("term")); }, launcher, 60))
      << log_text("term.txt");
  std::this_thread::sleep_for(std::chrono::milliseconds(1000));
  ::kill(launcher, SIGTERM);
  EXPECT_EQ(wait_for(launcher), 130) << log_text("term.txt");
  EXPECT_NE(log_text("term.txt").find("the state after the last batch is saved"), std::string::npos)
      << log_text("term.txt");
  EXPECT_FALSE(ts::track::read_checkpoint_info(ckpt("term")).epoch_complete);
}

// Ctrl-Z (SIGTSTP) suspends the launcher and every rank; SIGCONT (what `fg` sends) continues
// the job, which then ends as usual.
TEST_F(DataParallel, CtrlZSuspendsTheWholeJobAndFgContinuesIt) {
  auto a = fit_args(runs(), "suspend", "2");
  a.insert(a.end(), {"--set", "data.limit=20000", "--nproc", "2"});
  const pid_t launcher = spawn(a, dir_ / "suspend.txt", {}, /*own_group=*/true);
  ASSERT_TRUE(wait_until([&] { return fs::exists(ckpt("suspend")); }, launcher, 60))
      << log_text("suspend.txt");
  auto state = [](pid_t pid) {
    const std::string stat = file_text("/proc/" + std::to_string(pid) + "/stat");
    const size_t close = stat.rfind(')');
    return close == std::string::npos || close + 2 >= stat.size() ? '?' : stat[close + 2];
  };
  const auto ranks = children_of(launcher);
  ASSERT_EQ(ranks.size(), 2u);
  ::kill(launcher, SIGTSTP);
  auto all_stopped = [&] {
    return state(launcher) == 'T' && state(ranks[0]) == 'T' && state(ranks[1]) == 'T';
  };
  EXPECT_TRUE(wait_until(all_stopped, launcher, 10))
      << state(launcher) << state(ranks[0]) << state(ranks[1]);
  std::this_thread::sleep_for(std::chrono::milliseconds(500));
  EXPECT_TRUE(all_stopped()) << "still stopped";
  ::kill(launcher, SIGCONT);
  EXPECT_EQ(wait_for(launcher), 0) << log_text("suspend.txt");
  EXPECT_NE(log_text("suspend.txt").find("epoch 2/2"), std::string::npos)
      << log_text("suspend.txt");
}

// diagnose --verify on a job's run: its checkpoints cannot resume as one process, so the replays
// start from the beginning (in one process, at the job's global batch), and the report says why.
TEST_F(DataParallel, AJobsRemediesAreVerifiedFromTheStart) {
  auto job = fit_args(runs(), "job");
  job.insert(job.end(), {"--nproc", "2", "--set", "checkpoint.keep_top_k=2"});
  ASSERT_EQ(wait_for(spawn(job, dir_ / "log.txt")), 0) << log_text();
  ts::track::RunStore(runs() / "job" / "run.sqlite")
      .add_finding({"planted", "warning", 80, 2, "a planted finding", "{}",
                    "weight decay ({train.weight_decay=0.001})", 0.0});
  ASSERT_EQ(wait_for(spawn({"diagnose", "job", "--runs-dir", runs().string(), "--verify", "--seeds",
                            "1", "--epochs", "1", "--only", "planted"},
                           dir_ / "log.txt")),
            0)
      << log_text();
  EXPECT_NE(log_text().find("1 epoch from the start (the run's checkpoints belong to a job of 2 "
                            "processes, and a fork resumes as one)"),
            std::string::npos)
      << log_text();
  EXPECT_NE(log_text().find("planted (epoch 2): train.weight_decay = 0.001"), std::string::npos)
      << log_text();
}

TEST_F(DataParallel, SettingsThatCannotBeSharedAreUserErrors) {
  auto odd = fit_args(runs(), "odd");
  *(std::find(odd.begin(), odd.end(), "--batch-size") + 1) = "63";
  odd.insert(odd.end(), {"--nproc", "2"});
  EXPECT_NE(wait_for(spawn(odd, dir_ / "log.txt")), 0);
  EXPECT_NE(log_text().find("train.batch_size = 63 does not divide among 2 ranks"),
            std::string::npos)
      << log_text();
  auto remedy = fit_args(runs(), "remedy");
  remedy.insert(remedy.end(), {"--auto-remedy", "--nproc", "2"});
  EXPECT_NE(wait_for(spawn(remedy, dir_ / "log.txt")), 0);
  EXPECT_NE(log_text().find("--auto-remedy is not available in data-parallel runs"),
            std::string::npos);
  EXPECT_EQ(wait_for(spawn({"train", "--nproc", "zero"}, dir_ / "log.txt")), 2);
  EXPECT_NE(log_text().find("--nproc zero is not valid"), std::string::npos);
}

}  // namespace
