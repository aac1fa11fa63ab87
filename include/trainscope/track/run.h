#pragma once
// Run: one run directory and its store.
//   <runs_dir>/<name>/run.sqlite   the run store
//   <runs_dir>/<name>/config.toml  the resolved configuration, reusable with --config
//   <runs_dir>/<name>/checkpoints/ best and last weights

#include <trainscope/track/run_store.h>

#include <filesystem>
#include <functional>
#include <memory>
#include <string>

namespace trainscope::track {

// A sweep's folder beside its trials' runs: <runs_dir>/<sweep>.sweep (its plan, the rungs of
// successive halving, the trials' configs and logs).
std::filesystem::path sweep_dir(const std::filesystem::path& runs_dir, const std::string& sweep);

// An exclusive flock on `file` (created when missing) for the object's lifetime; the kernel
// releases it when the process ends, even on a kill. Not copyable or movable.
class FileLock {
 public:
  enum class Wait { kBlock, kTry };
  // kBlock waits for the lock; kTry gives up at once, and held() is false then. Throws Error
  // naming the file when it cannot be opened.
  explicit FileLock(const std::filesystem::path& file, Wait wait = Wait::kBlock);
  ~FileLock();
  FileLock(const FileLock&) = delete;
  FileLock& operator=(const FileLock&) = delete;
  bool held() const { return held_; }

 private:
  int fd_ = -1;
  bool held_ = false;
};

class Run {
 public:
  // Creates <runs_dir>/<name> (name-2, name-3, ... when taken) with checkpoints/ and run.sqlite.
  // Throws Error naming the directory when it cannot be created.
  static std::shared_ptr<Run> create(const std::filesystem::path& runs_dir,
                                     const std::string& name);
  // Opens an existing run directory for writing results. Throws Error when `dir` holds no
  // run.sqlite.
  static std::shared_ptr<Run> open(const std::filesystem::path& dir);

  const std::filesystem::path& dir() const { return dir_; }
  std::string name() const { return dir_.filename().string(); }
  std::filesystem::path checkpoints_dir() const { return dir_ / "checkpoints"; }
  RunStore& store() { return store_; }

 private:
  Run(std::filesystem::path dir, RunStore store) : dir_(std::move(dir)), store_(std::move(store)) {}
  std::filesystem::path dir_;
  RunStore store_;
};

// Writes `file` so that it is either absent/old or complete, never half-written: `write` fills a
// temporary file beside it, which is fsync'ed, renamed over `file`, and the directory fsync'ed.
// Throws Error naming `file` (and removes the temporary) when any step fails.
void write_atomically(const std::filesystem::path& file,
                      const std::function<void(const std::filesystem::path& tmp)>& write);
void write_text_atomically(const std::filesystem::path& file, const std::string& text);
// Makes `target` another name of `source` (a hard link, or a copy where the file system has none),
// atomically: `target` is its previous version or the new one, never missing or partial. Throws
// Error naming both files when it cannot.
void link_atomically(const std::filesystem::path& source, const std::filesystem::path& target);

// A default run name: <prefix>-<yyyymmdd>-<hhmmss> in local time.
std::string timestamped_name(const std::string& prefix);

}  // namespace trainscope::track
