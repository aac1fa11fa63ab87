// Checkpoints on a disk that fills up and in a directory that turns read-only, for real: the run
// directory lives on a small tmpfs (or a read-only bind mount) inside a private mount namespace
// (`unshare -rm`, no root needed where user namespaces are enabled). A failed save is named
// with its file and reason, the checkpoints already written stay intact, checkpoint.on_error
// decides whether the fit stops or goes on, and the stopped run resumes once there is space.
#include <trainscope/track/checkpoint_file.h>

#include <gtest/gtest.h>

#include "process.h"
#include <sqlite3.h>
#include <sys/wait.h>
#include <unistd.h>

#include <array>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <string>

namespace fs = std::filesystem;
namespace ts = trainscope;

namespace {

const char* kFashion = "/usr/share/datasets/fashion-mnist/train-images-idx3-ubyte.gz";

using Result = trainscope::testing::ShellResult;
using trainscope::testing::sh;

std::string meta(const fs::path& db, const std::string& key) {
  sqlite3* h = nullptr;
  sqlite3_open_v2(db.c_str(), &h, SQLITE_OPEN_READONLY, nullptr);
  sqlite3_stmt* st = nullptr;
  sqlite3_prepare_v2(h, "SELECT value FROM meta WHERE key = ?1", -1, &st, nullptr);
  sqlite3_bind_text(st, 1, key.c_str(), -1, SQLITE_TRANSIENT);
  std::string v = sqlite3_step(st) == SQLITE_ROW
                      ? reinterpret_cast<const char*>(sqlite3_column_text(st, 0))
                      : "(none)";
  sqlite3_finalize(st);
  sqlite3_close(h);
  return v;
}

// An MLP whose checkpoint is about 4.9 MB (1.6 MB at fit start, before Adam has state): a 9 MB
// disk holds the first two, not a third one's temporary beside them, so epoch 2's save fails.
std::string train(const std::string& runs, const std::string& name, const std::string& extra) {
  return std::string("'") + TRAINSCOPE_CLI + "' train --model mlp --set 'model.hidden=[512]' " +
         "--set data.limit=4000 --epochs 3 --batch-size 64 --progress plain --no-test " +
         "--no-dashboard --runs-dir " + runs + " --name " + name + " " + extra;
}

class CheckpointFailure : public ::testing::Test {
 protected:
  void SetUp() override {
    if (!fs::exists(kFashion)) GTEST_SKIP() << "dataset-fashion-mnist is not installed";
    if (sh("unshare -rm true").status != 0)
      GTEST_SKIP() << "no private mount namespaces here (unshare -rm); nothing to mount a small "
                      "disk on";
    dir_ = fs::temp_directory_path() /
           ("ts_ckfail_" + std::to_string(::getpid()) + "_" +
            ::testing::UnitTest::GetInstance()->current_test_info()->name());
    fs::remove_all(dir_);
    fs::create_directories(dir_ / "runs");
  }
  void TearDown() override {
    if (!dir_.empty()) fs::remove_all(dir_);
  }
  // Runs `script` in a private mount namespace; the tmpfs it mounts vanishes with it, so the
  // script copies what the test inspects to dir_/after.
  Result in_namespace(const std::string& script) {
    std::ofstream(dir_ / "script.sh") << "set -u\ncd '" << dir_.string() << "'\n" << script;
    return sh("unshare -rm sh '" + (dir_ / "script.sh").string() + "'");
  }
  fs::path dir_;
};

// Saves run inline here: with background saves the run store (on the same full disk) may hit
// the full disk first, which is reported too but is another test.
TEST_F(CheckpointFailure, FullDiskStopsTheFitKeepsTheCheckpointAndTheRunResumes) {
  Result r =
      in_namespace("mount -t tmpfs -o size=9m tmpfs runs\n" +
                   train("runs", "full", "--set checkpoint.background=false") +
                   "\necho \"exit=$?\"\n" + "cp -a runs/full after-failure\n" +
                   "mount -o remount,size=256m runs\n"
                   "'" +
                   TRAINSCOPE_CLI +
                   "' resume full --runs-dir runs --no-test --no-dashboard --progress plain\n"
                   "echo \"resume exit=$?\"\n"
                   "cp -a runs/full after-resume\n");
  const std::string& out = r.out;
  EXPECT_NE(out.find("trainscope: saving a checkpoint failed: cannot write checkpoint "
                     "runs/full/checkpoints/last.ckpt: No space left on device after "),
            std::string::npos)
      << out;
  EXPECT_NE(out.find("the fit stops at the end of this epoch (checkpoint.on_error = \"stop\")"),
            std::string::npos)
      << out;
  EXPECT_NE(out.find("exit=1"), std::string::npos) << out;
  const fs::path failed = dir_ / "after-failure";
  EXPECT_EQ(meta(failed / "run.sqlite", "stop_reason"), "checkpoint_failed");
  EXPECT_EQ(meta(failed / "run.sqlite", "epochs"), "2") << "stopped at the end of epoch 2";
  // Epoch 1's checkpoint is intact, and no temporary is left behind.
  ts::track::CheckpointInfo info;
  EXPECT_NO_THROW(ts::track::read_checkpoint_payload(failed / "checkpoints" / "last.ckpt", &info));
  EXPECT_EQ(info.epoch, 1);
  EXPECT_TRUE(info.epoch_complete);
  for (const auto& e : fs::directory_iterator(failed / "checkpoints"))
    EXPECT_EQ(e.path().filename().string().find(".tmp-"), std::string::npos) << e.path();
  // With space again, the run resumes from it and finishes.
  EXPECT_NE(out.find("resuming from last.ckpt: after epoch 1 (step 57)"), std::string::npos) << out;
  EXPECT_NE(out.find("epoch 3/3"), std::string::npos) << out;
  EXPECT_NE(out.find("resume exit=0"), std::string::npos) << out;
  EXPECT_EQ(meta(dir_ / "after-resume" / "run.sqlite", "status"), "finished");
}

TEST_F(CheckpointFailure, FullDiskWithOnErrorContinueTrainsOnWithoutSaving) {
  Result r = in_namespace("mount -t tmpfs -o size=9m tmpfs runs\n" +
                          train("runs", "cont",
                                "--set checkpoint.background=false --set "
                                "checkpoint.on_error=continue") +
                          "\necho \"exit=$?\"\ncp -a runs/cont after\n");
  EXPECT_NE(r.out.find("training goes on without checkpoints (checkpoint.on_error = "
                       "\"continue\")"),
            std::string::npos)
      << r.out;
  EXPECT_EQ(r.out.find("saving a checkpoint failed"), r.out.rfind("saving a checkpoint failed"))
      << "reported once: " << r.out;
  EXPECT_NE(r.out.find("epoch 3/3"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("exit=0"), std::string::npos) << r.out;
  const fs::path after = dir_ / "after";
  EXPECT_EQ(meta(after / "run.sqlite", "status"), "finished");
  EXPECT_NE(meta(after / "run.sqlite", "checkpoint_error").find("No space left on device"),
            std::string::npos);
  ts::track::CheckpointInfo info;
  EXPECT_NO_THROW(ts::track::read_checkpoint_payload(after / "checkpoints" / "last.ckpt", &info));
  EXPECT_EQ(info.epoch, 1) << "the checkpoint written before the disk filled is intact";
}

// Data parallel: only rank 0 saves, so only rank 0 sees the full disk; the job stops as one (no
// rank is left waiting in a collective) and the launcher returns.
TEST_F(CheckpointFailure, AFullDiskOnRankZeroStopsTheWholeDataParallelJob) {
  Result r = in_namespace("mount -t tmpfs -o size=9m tmpfs runs\n" +
                          train("runs", "dp",
                                "--set checkpoint.background=false --set "
                                "data.augment=[] --nproc 2") +
                          "\necho \"exit=$?\"\n");
  EXPECT_NE(r.out.find("saving a checkpoint failed"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("exit=1"), std::string::npos) << r.out;
}

// The checkpoints directory becomes read-only while the fit runs (a bind mount remounted ro):
// background saves fail with EROFS, the fit stops, what was written stays.
TEST_F(CheckpointFailure, ReadOnlyDirectoryMidFitStopsWithTheReason) {
  Result r = in_namespace(
      train("runs", "ro", "--set data.limit=20000 --set checkpoint.every_steps=40") + " &\n" +
      "pid=$!\n"
      "while [ ! -f runs/ro/checkpoints/last.ckpt ]; do sleep 0.01; done\n"
      "mount --bind runs/ro/checkpoints runs/ro/checkpoints\n"
      "mount -o remount,bind,ro runs/ro/checkpoints\n"
      "wait $pid; echo \"exit=$?\"\n");
  EXPECT_NE(r.out.find("saving a checkpoint failed: cannot create checkpoint "
                       "runs/ro/checkpoints/.last.ckpt.tmp-"),
            std::string::npos)
      << r.out;
  EXPECT_NE(r.out.find("Read-only file system"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("exit=1"), std::string::npos) << r.out;
  const fs::path run = dir_ / "runs" / "ro";
  EXPECT_EQ(meta(run / "run.sqlite", "stop_reason"), "checkpoint_failed");
  EXPECT_NO_THROW(ts::track::read_checkpoint_payload(run / "checkpoints" / "last.ckpt"));
  EXPECT_EQ(sh("'" + std::string(TRAINSCOPE_CLI) + "' resume ro --runs-dir '" +
               (dir_ / "runs").string() + "' --no-test --no-dashboard --progress off")
                .status,
            0)
      << "writable again (outside the namespace), the run resumes";
}

}  // namespace
