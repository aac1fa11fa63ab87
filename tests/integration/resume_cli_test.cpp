// `trainscope resume` and `trainscope export` as a user runs them: Ctrl-C (SIGINT) and SIGTERM
// save the state after the current batch and exit 130, resume finishes bit-identical to an
// uninterrupted run, --epochs extends a finished run, mistakes exit 2, and the exported weights
// load in Debian's python3-torch with the same outputs.
#include <trainscope/callbacks/checkpoint.h>
#include <trainscope/models/zoo.h>
#include <trainscope/track/checkpoint_file.h>

#include <gtest/gtest.h>
#include <sqlite3.h>

#include <fstream>

#include "process.h"

namespace fs = std::filesystem;
namespace ts = trainscope;
using namespace trainscope::testing;

namespace {

const char* kFashion = "/usr/share/datasets/fashion-mnist/train-images-idx3-ubyte.gz";

class ResumeCli : public ::testing::Test {
 protected:
  void SetUp() override {
    if (!fs::exists(kFashion)) GTEST_SKIP() << "dataset-fashion-mnist is not installed";
    dir_ = fs::temp_directory_path() /
           ("ts_resume_cli_" + std::to_string(::getpid()) + "_" +
            ::testing::UnitTest::GetInstance()->current_test_info()->name());
    fs::remove_all(dir_);
    fs::create_directories(dir_);
  }
  void TearDown() override {
    if (!dir_.empty() && !HasFailure()) fs::remove_all(dir_);
  }
  std::string log_text() const { return file_text(dir_ / "log.txt"); }
  std::vector<std::string> args(const std::string& cmd, const std::string& name,
                                std::vector<std::string> extra = {}) const {
    std::vector<std::string> a = {cmd};
    if (cmd == "train")
      a.insert(a.end(), {"--model", "mlp", "--set", "data.limit=20000", "--epochs", "2",
                         "--batch-size", "64", "--name", name, "--progress", "plain"});
    else
      a.push_back(name);
    a.insert(a.end(), {"--runs-dir", (dir_ / "runs").string(), "--no-test", "--no-dashboard"});
    a.insert(a.end(), extra.begin(), extra.end());
    return a;
  }
  int run(const std::vector<std::string>& a) { return wait_for(spawn(a, dir_ / "log.txt")); }
  fs::path dir_;
};

std::vector<torch::Tensor> weights(const fs::path& file) {
  auto model = ts::models::mlp();
  ts::callbacks::load_weights(model.module(), file);
  return model.snapshot();
}

bool same_weights(const fs::path& a, const fs::path& b) {
  auto wa = weights(a), wb = weights(b);
  for (size_t i = 0; i < wa.size(); ++i)
    if (!torch::equal(wa[i], wb[i])) return false;
  return wa.size() == wb.size();
}

TEST_F(ResumeCli, InterruptSavesTheBatchAndResumeContinuesExactly) {
  ASSERT_EQ(run(args("train", "reference")), 0) << log_text();
  for (const int signal : {SIGINT, SIGTERM}) {
    const std::string name = signal == SIGINT ? "sigint" : "sigterm";
    SCOPED_TRACE(name);
    const pid_t pid = spawn(args("train", name), dir_ / "log.txt");
    const fs::path run_dir = dir_ / "runs" / name;
    // Well into the first epoch: its start-of-fit checkpoint exists.
    ASSERT_TRUE(
        wait_until([&] { return fs::exists(run_dir / "checkpoints" / "last.ckpt"); }, pid, 60));
    std::this_thread::sleep_for(std::chrono::milliseconds(300));
    ::kill(pid, signal);
    EXPECT_EQ(wait_for(pid), 130) << log_text();
    const std::string out = log_text();
    EXPECT_NE(out.find(std::string("interrupted (") + (signal == SIGINT ? "SIGINT" : "SIGTERM") +
                       ") in epoch "),
              std::string::npos)
        << out;
    EXPECT_NE(out.find("the state after the last batch is saved: trainscope resume " + name),
              std::string::npos)
        << out;
    const auto info = ts::track::read_checkpoint_info(run_dir / "checkpoints" / "last.ckpt");
    EXPECT_FALSE(info.epoch_complete) << "saved mid-epoch, at the batch it stopped";
    EXPECT_GT(info.batches, 0);
    ASSERT_EQ(run(args("resume", name)), 0) << log_text();
    EXPECT_NE(log_text().find("resuming from last.ckpt: epoch " + std::to_string(info.epoch) +
                              ", batch " + std::to_string(info.batches) + " of 282"),
              std::string::npos)
        << log_text();
    for (const char* f : {"best.ckpt", "last.ckpt"})
      EXPECT_TRUE(same_weights(run_dir / "checkpoints" / f,
                               dir_ / "runs" / "reference" / "checkpoints" / f))
          << f;
  }
}

TEST_F(ResumeCli, EpochsExtendsAFinishedRunAndMistakesExit2) {
  ASSERT_EQ(run(args("train", "short")), 0) << log_text();
  ASSERT_EQ(run(args("resume", "short", {"--epochs", "3"})), 0) << log_text();
  const std::string out = log_text();
  EXPECT_NE(out.find("settings changed for the rest of the run"), std::string::npos) << out;
  EXPECT_NE(out.find("epoch 3/3"), std::string::npos) << out;
  const std::string text = file_text(dir_ / "runs" / "short" / "config.toml");
  EXPECT_NE(text.find("max_epochs = 3"), std::string::npos);

  EXPECT_EQ(run(args("resume", "nothing-here")), 2);
  EXPECT_NE(log_text().find("no run named 'nothing-here'"), std::string::npos);
  fs::create_directories(dir_ / "runs" / "early");
  { std::ofstream(dir_ / "runs" / "early" / "run.sqlite"); }
  EXPECT_EQ(run(args("resume", "early")), 2);
  EXPECT_NE(log_text().find("has no config.toml: it stopped before training began"),
            std::string::npos)
      << log_text();
  EXPECT_EQ(run(args("export", "short", {"--weights", "worst"})), 2);
}

// A fine-tuned run keeps its source's architecture: with the source run gone it still tests the
// same, resumes and exports; only a run with no checkpoint left needs the source's backbone.
TEST_F(ResumeCli, AFineTunedRunOutlivesItsSource) {
  ASSERT_EQ(run(args("train", "pre", {"--set", "data.classes=[0,1,2,3,4]"})), 0) << log_text();
  auto finetune = args("finetune", "ft",
                       {"--from", "pre", "--set", "data.classes=[5,6,7,8,9]", "--set",
                        "data.limit=2000", "--epochs", "2"});
  finetune[1] = "--name";  // args() puts the run name first for commands other than train
  finetune.insert(finetune.begin() + 2, "ft");
  ASSERT_EQ(run(finetune), 0) << log_text();
  const fs::path ft = dir_ / "runs" / "ft";
  ASSERT_TRUE(fs::exists(ft / "source" / "config.toml"));
  auto tested = [&] {
    EXPECT_EQ(run({"test", "ft", "--runs-dir", (dir_ / "runs").string()}), 0) << log_text();
    const std::string out = log_text();  // every command's output, appended
    const size_t at = out.rfind("\ntest: loss ");
    return at == std::string::npos ? std::string("none: ") + out
                                   : out.substr(at + 1, out.find('\n', at + 1) - at - 1);
  };
  const std::string before = tested();
  fs::rename(dir_ / "runs" / "pre", dir_ / "pre-gone");
  EXPECT_EQ(tested(), before);
  ASSERT_EQ(run(args("resume", "ft", {"--epochs", "3"})), 0) << log_text();
  EXPECT_NE(log_text().find("fine-tuning the architecture of pre as the run keeps it"),
            std::string::npos)
      << log_text();
  EXPECT_NE(log_text().find("epoch 3/3"), std::string::npos) << log_text();
  EXPECT_EQ(run({"export", "ft", "--runs-dir", (dir_ / "runs").string(), "--out",
                 (dir_ / "ft.pt").string()}),
            0)
      << log_text();
  // Without a checkpoint the pretrained backbone is nowhere. A run with history refuses to start
  // over; one without (killed before its first save) refuses to start from a random backbone.
  fs::remove_all(ft / "checkpoints");
  EXPECT_EQ(run(args("resume", "ft")), 2);
  EXPECT_NE(log_text().find("has no usable checkpoint in"), std::string::npos) << log_text();
  {
    sqlite3* db = nullptr;
    ASSERT_EQ(sqlite3_open((ft / "run.sqlite").c_str(), &db), SQLITE_OK);
    EXPECT_EQ(
        sqlite3_exec(db, "DELETE FROM metrics; DELETE FROM findings", nullptr, nullptr, nullptr),
        SQLITE_OK);
    sqlite3_close(db);
  }
  EXPECT_EQ(run(args("resume", "ft")), 2);
  EXPECT_NE(log_text().find("the fine-tuned run has no usable checkpoint, so its pretrained "
                            "backbone is lost"),
            std::string::npos)
      << log_text();
  EXPECT_FALSE(fs::exists(ft / "checkpoints" / "last.ckpt")) << "nothing was trained or saved";
}

// The lr of each step of epoch `epoch` in a run's store.
std::vector<double> lrs_of_epoch(const fs::path& run_dir, int epoch) {
  sqlite3* db = nullptr;
  std::vector<double> out;
  if (sqlite3_open((run_dir / "run.sqlite").c_str(), &db) != SQLITE_OK) return out;
  sqlite3_stmt* st = nullptr;
  const std::string sql =
      "SELECT value FROM metrics WHERE split = 'train' AND tag = 'lr' AND "
      "epoch = " +
      std::to_string(epoch) + " ORDER BY step, rowid";
  sqlite3_prepare_v2(db, sql.c_str(), -1, &st, nullptr);
  while (sqlite3_step(st) == SQLITE_ROW) out.push_back(sqlite3_column_double(st, 0));
  sqlite3_finalize(st);
  sqlite3_close(db);
  return out;
}

// `resume --set train.lr=...` changes the lr for the rest of the run, as it says: the restored
// optimizer and the schedule's base scale by the change, so a cosine schedule goes on from where
// it was at a tenth of the height. Before, the checkpoint's lr won and config.toml was wrong.
TEST_F(ResumeCli, SetTrainLrScalesTheRestOfTheRunScheduleIncluded) {
  ASSERT_EQ(run(args("train", "same", {"--set", "train.lr_schedule=cosine"})), 0) << log_text();
  fs::copy(dir_ / "runs" / "same", dir_ / "runs" / "lower", fs::copy_options::recursive);
  ASSERT_EQ(run(args("resume", "same", {"--epochs", "3"})), 0) << log_text();
  ASSERT_EQ(
      run(args("resume", "lower",
               {"--epochs", "3", "--set", "train.lr=0.0001", "--set", "train.weight_decay=0.01"})),
      0)
      << log_text();
  const auto same = lrs_of_epoch(dir_ / "runs" / "same", 3);
  const auto lower = lrs_of_epoch(dir_ / "runs" / "lower", 3);
  ASSERT_FALSE(same.empty());
  ASSERT_EQ(same.size(), lower.size());
  for (size_t i = 0; i < same.size(); ++i)
    EXPECT_NEAR(lower[i] / same[i], 0.1, 1e-9) << "step " << i << " of epoch 3";
  EXPECT_LT(same.back(), same.front()) << "the cosine schedule goes on falling";
}

// The exported state dict in Python: strict load into the same torch.nn architecture, same logits
// as the C++ model on the same inputs.
TEST_F(ResumeCli, ExportedWeightsLoadInPythonTorchWithTheSameOutputs) {
  if (std::system("/usr/bin/python3 -c 'import torch' >/dev/null 2>&1") != 0)
    GTEST_SKIP() << "python3-torch is not installed";
  ASSERT_EQ(run({"train", "--epochs", "1", "--batch-size", "128", "--set", "data.limit=1000",
                 "--name", "cnn", "--progress", "off", "--runs-dir", (dir_ / "runs").string(),
                 "--no-test", "--no-dashboard"}),
            0)
      << log_text();
  const fs::path out = dir_ / "cnn-state_dict.pt";
  ASSERT_EQ(run({"export", "cnn", "--runs-dir", (dir_ / "runs").string(), "--out", out.string()}),
            0)
      << log_text();
  EXPECT_NE(log_text().find("exported 18 tensors of cnn"), std::string::npos) << log_text();
  EXPECT_NE(log_text().find("in Python: model.load_state_dict(torch.load("), std::string::npos);
  // The C++ model's logits on a fixed batch, from the same checkpoint.
  auto model = ts::models::cnn();
  ts::callbacks::load_weights(model.module(), dir_ / "runs" / "cnn" / "checkpoints" / "best.ckpt");
  model.eval();
  torch::NoGradGuard no_grad;
  const auto x =
      torch::sin(torch::arange(8 * 28 * 28, torch::kFloat32) * 0.37).view({8, 1, 28, 28});
  const auto logits = model.forward(x);
  auto save = [](const torch::Tensor& t, const fs::path& file) {
    const auto bytes = torch::pickle_save(t);
    std::ofstream(file, std::ios::binary)
        .write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
  };
  save(x, dir_ / "inputs.pt");
  save(logits, dir_ / "outputs.pt");
  const std::string cmd =
      "/usr/bin/python3 '" TRAINSCOPE_SOURCE_DIR "/tests/interop/check_export.py' '" +
      out.string() + "' '" + (dir_ / "inputs.pt").string() + "' '" +
      (dir_ / "outputs.pt").string() + "' > '" + (dir_ / "py.txt").string() + "' 2>&1";
  const int status = std::system(cmd.c_str());
  const std::string said = file_text(dir_ / "py.txt");
  EXPECT_EQ(status, 0) << said;
  EXPECT_NE(said.find("ok: 18 tensors"), std::string::npos) << said;
}

}  // namespace
