// Checkpoint files: what they hold reads back; a truncated, corrupt, foreign or newer file is
// named with what is wrong; a write that fails leaves the previous file intact.
#include <trainscope/error.h>
#include <trainscope/track/checkpoint_file.h>
#include <trainscope/track/run.h>

#include <gtest/gtest.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include <csignal>
#include <filesystem>
#include <fstream>

namespace fs = std::filesystem;
namespace ts = trainscope;

namespace {

fs::path fresh_dir(const std::string& name) {
  const fs::path dir =
      fs::temp_directory_path() / ("ts_ckpt_" + std::to_string(::getpid()) + "_" + name);
  fs::remove_all(dir);
  fs::create_directories(dir);
  return dir;
}

std::string payload_of(size_t n, char seed) {
  std::string s(n, '\0');
  for (size_t i = 0; i < n; ++i) s[i] = static_cast<char>(seed + i * 31 + (i >> 7));
  return s;
}

ts::track::CheckpointInfo info_at(int64_t epoch, int64_t step) {
  ts::track::CheckpointInfo info;
  info.kind = "last";
  info.epoch = epoch;
  info.step = step;
  info.batches = 12;
  info.epoch_complete = true;
  info.monitor = "val_loss";
  info.value = 0.3121;
  info.metrics_mark = 77;
  info.findings_mark = 3;
  return info;
}

std::string read_all(const fs::path& file) {
  std::ifstream in(file, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(in), {});
}

void write_all(const fs::path& file, const std::string& bytes) {
  std::ofstream(file, std::ios::binary | std::ios::trunc) << bytes;
}

// The CheckpointError message of reading `file`'s payload; empty when it reads.
std::string payload_error(const fs::path& file) {
  try {
    ts::track::read_checkpoint_payload(file);
  } catch (const ts::CheckpointError& e) {
    return e.what();
  }
  return "";
}

}  // namespace

TEST(CheckpointFile, WhatIsWrittenReadsBack) {
  const fs::path dir = fresh_dir("roundtrip");
  const fs::path file = dir / "last.ckpt";
  const std::string payload = payload_of(100000, 3);
  ts::track::write_checkpoint_file(file, info_at(7, 700), payload);
  EXPECT_TRUE(ts::track::is_checkpoint_file(file));
  const auto info = ts::track::read_checkpoint_info(file);
  EXPECT_EQ(info.kind, "last");
  EXPECT_EQ(info.epoch, 7);
  EXPECT_EQ(info.step, 700);
  EXPECT_EQ(info.batches, 12);
  EXPECT_TRUE(info.epoch_complete);
  EXPECT_EQ(info.monitor, "val_loss");
  EXPECT_DOUBLE_EQ(info.value, 0.3121);
  EXPECT_EQ(info.metrics_mark, 77);
  EXPECT_EQ(info.findings_mark, 3);
  EXPECT_EQ(info.payload_bytes, payload.size());
  EXPECT_EQ(info.payload_crc, ts::track::crc32(payload.data(), payload.size()));
  ts::track::CheckpointInfo again;
  EXPECT_EQ(ts::track::read_checkpoint_payload(file, &again), payload);
  EXPECT_EQ(again.step, 700);
  // Nothing but the file itself is left in the directory.
  EXPECT_EQ(std::distance(fs::directory_iterator(dir), fs::directory_iterator()), 1);
  fs::remove_all(dir);
}

TEST(CheckpointFile, Crc32IsZlibsCheckValue) {
  EXPECT_EQ(ts::track::crc32("123456789", 9), 0xcbf43926u);
}

TEST(CheckpointFile, TruncatedAtAnyLengthIsNamedAsTruncated) {
  const fs::path dir = fresh_dir("truncated");
  const fs::path file = dir / "last.ckpt";
  ts::track::write_checkpoint_file(file, info_at(2, 20), payload_of(5000, 1));
  const std::string whole = read_all(file);
  for (size_t keep :
       {size_t{0}, size_t{5}, size_t{15}, size_t{30}, whole.size() / 2, whole.size() - 1}) {
    SCOPED_TRACE("kept " + std::to_string(keep) + " of " + std::to_string(whole.size()));
    write_all(file, whole.substr(0, keep));
    const std::string error = payload_error(file);
    EXPECT_NE(error.find(file.string()), std::string::npos) << error;
    EXPECT_NE(error.find("truncated"), std::string::npos) << error;
  }
  fs::remove_all(dir);
}

TEST(CheckpointFile, CorruptionIsCaughtByTheChecksums) {
  const fs::path dir = fresh_dir("corrupt");
  const fs::path file = dir / "last.ckpt";
  ts::track::write_checkpoint_file(file, info_at(2, 20), payload_of(5000, 1));
  const std::string whole = read_all(file);
  {
    std::string bad = whole;
    bad[bad.size() - 100] ^= 0x01;  // one bit of the payload
    write_all(file, bad);
    const std::string error = payload_error(file);
    EXPECT_NE(error.find("is corrupt: its payload fails the checksum"), std::string::npos) << error;
    EXPECT_NO_THROW(ts::track::read_checkpoint_info(file)) << "the header is still good";
  }
  {
    std::string bad = whole;
    bad[20] ^= 0x10;  // inside the JSON header
    write_all(file, bad);
    EXPECT_NE(payload_error(file).find("its header fails the checksum"), std::string::npos);
  }
  {
    write_all(file, whole + "extra");
    EXPECT_NE(payload_error(file).find("bytes follow its payload"), std::string::npos);
  }
  fs::remove_all(dir);
}

TEST(CheckpointFile, ForeignAndNewerFilesAreRefusedByName) {
  const fs::path dir = fresh_dir("foreign");
  const fs::path file = dir / "weights.pt";
  write_all(file, "PK\x03\x04 a zip file, such as torch.save writes");
  EXPECT_FALSE(ts::track::is_checkpoint_file(file));
  EXPECT_NE(payload_error(file).find(file.string() + " is not a trainscope checkpoint"),
            std::string::npos);
  ts::track::write_checkpoint_file(file, info_at(1, 1), "x");
  std::string newer = read_all(file);
  newer[7] = 9;
  write_all(file, newer);
  EXPECT_NE(payload_error(file).find("has format version 9; this trainscope reads version 1"),
            std::string::npos)
      << payload_error(file);
  EXPECT_NE(payload_error(dir / "missing.ckpt").find("cannot open checkpoint"), std::string::npos);
  fs::remove_all(dir);
}

// A real write failure: a child process whose file-size limit (RLIMIT_FSIZE) is below the
// checkpoint's size gets EFBIG from write(2), exactly as a full disk's ENOSPC would surface.
TEST(CheckpointFile, AFailedWriteLeavesThePreviousFileIntactAndNoTemporary) {
  const fs::path dir = fresh_dir("fails");
  const fs::path file = dir / "last.ckpt";
  const std::string old_payload = payload_of(20000, 5);
  ts::track::write_checkpoint_file(file, info_at(1, 10), old_payload);
  int pipe_fd[2];
  ASSERT_EQ(pipe(pipe_fd), 0);
  const pid_t child = fork();
  ASSERT_GE(child, 0);
  if (child == 0) {
    // No torch here: only POSIX, zlib and the writer.
    std::signal(SIGXFSZ, SIG_IGN);
    rlimit limit{1 << 20, 1 << 20};
    setrlimit(RLIMIT_FSIZE, &limit);
    std::string message = "no error";
    try {
      ts::track::write_checkpoint_file(file, info_at(2, 20), payload_of(4 << 20, 9));
    } catch (const ts::CheckpointError& e) {
      message = e.what();
    }
    (void)!write(pipe_fd[1], message.data(), message.size());
    _exit(0);
  }
  close(pipe_fd[1]);
  std::string message;
  char buf[512];
  for (ssize_t n; (n = read(pipe_fd[0], buf, sizeof buf)) > 0;) message.append(buf, n);
  close(pipe_fd[0]);
  int status = 0;
  waitpid(child, &status, 0);
  EXPECT_NE(message.find("cannot write checkpoint " + file.string() + ": File too large"),
            std::string::npos)
      << message;
  EXPECT_NE(message.find("of 4.2 MB"), std::string::npos) << "says how far it got: " << message;
  EXPECT_NE(message.find("the previous checkpoint, if any, is intact"), std::string::npos);
  ts::track::CheckpointInfo info;
  EXPECT_EQ(ts::track::read_checkpoint_payload(file, &info), old_payload);
  EXPECT_EQ(info.step, 10);
  EXPECT_EQ(std::distance(fs::directory_iterator(dir), fs::directory_iterator()), 1)
      << "the temporary file is removed";
  fs::remove_all(dir);
}

TEST(CheckpointFile, LinkAtomicallyReplacesTheTargetWithTheSameFile) {
  const fs::path dir = fresh_dir("link");
  write_all(dir / "last.ckpt", "new");
  write_all(dir / "best.ckpt", "old");
  ts::track::link_atomically(dir / "last.ckpt", dir / "best.ckpt");
  EXPECT_EQ(read_all(dir / "best.ckpt"), "new");
  EXPECT_TRUE(fs::equivalent(dir / "last.ckpt", dir / "best.ckpt"));
  // Replacing last.ckpt later leaves best.ckpt's contents alone.
  write_all(dir / "next", "newer");
  fs::rename(dir / "next", dir / "last.ckpt");
  EXPECT_EQ(read_all(dir / "best.ckpt"), "new");
  EXPECT_THROW(ts::track::link_atomically(dir / "absent", dir / "x"), ts::Error);
  fs::remove_all(dir);
}
