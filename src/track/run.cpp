#include <trainscope/error.h>
#include <trainscope/track/run.h>

#include <fcntl.h>
#include <sys/file.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <ctime>
#include <fstream>
#include <random>

namespace trainscope::track {

std::filesystem::path sweep_dir(const std::filesystem::path& runs_dir, const std::string& sweep) {
  return runs_dir / (sweep + ".sweep");
}

FileLock::FileLock(const std::filesystem::path& file, Wait wait) {
  fd_ = ::open(file.c_str(), O_CREAT | O_RDWR | O_CLOEXEC, 0644);
  if (fd_ < 0) throw Error("cannot open " + file.string() + ": " + std::strerror(errno));
  const int op = wait == Wait::kTry ? LOCK_EX | LOCK_NB : LOCK_EX;
  int r = 0;
  while ((r = ::flock(fd_, op)) != 0 && errno == EINTR) {
  }
  held_ = r == 0;
}

FileLock::~FileLock() { ::close(fd_); }

namespace fs = std::filesystem;

namespace {

void fsync_path(const fs::path& path, int flags) {
  int fd = ::open(path.c_str(), flags);
  if (fd < 0) throw Error("cannot open " + path.string() + " to sync it: " + std::strerror(errno));
  int rc = ::fsync(fd);
  int err = errno;
  ::close(fd);
  // Some filesystems cannot fsync directories (EINVAL); the rename is then as durable as they
  // allow.
  if (rc != 0 && !(err == EINVAL && (flags & O_DIRECTORY)))
    throw Error("cannot sync " + path.string() + " to disk: " + std::strerror(err));
}

}  // namespace

std::shared_ptr<Run> Run::create(const fs::path& runs_dir, const std::string& name) {
  std::error_code ec;
  fs::create_directories(runs_dir, ec);
  if (ec) throw Error("cannot create runs directory " + runs_dir.string() + ": " + ec.message());
  fs::path dir = runs_dir / name;
  // create_directory reports whether it made the directory, so two processes never share one.
  for (int i = 2; !fs::create_directory(dir, ec); ++i) {
    if (ec) throw Error("cannot create run directory " + dir.string() + ": " + ec.message());
    dir = runs_dir / (name + "-" + std::to_string(i));
  }
  fs::create_directory(dir / "checkpoints", ec);
  if (ec) throw Error("cannot create " + (dir / "checkpoints").string() + ": " + ec.message());
  return std::shared_ptr<Run>(new Run(dir, RunStore(dir / "run.sqlite")));
}

std::shared_ptr<Run> Run::open(const fs::path& dir) {
  if (!fs::exists(dir / "run.sqlite"))
    throw Error("no run at " + dir.string() +
                " (it has no run.sqlite); give a run directory such as runs/cnn-20261128-101500");
  return std::shared_ptr<Run>(new Run(dir, RunStore(dir / "run.sqlite")));
}

void write_atomically(const fs::path& file, const std::function<void(const fs::path& tmp)>& write) {
  static thread_local std::mt19937_64 rng{std::random_device{}()};
  std::string tmp_name = ".";  // built step by step: GCC 12 misreads the one-line concatenation
  tmp_name += file.filename().string();
  tmp_name += ".tmp-" + std::to_string(rng() % 1000000);
  const fs::path tmp = file.parent_path() / tmp_name;
  try {
    write(tmp);
    fsync_path(tmp, O_RDONLY);
    std::error_code ec;
    fs::rename(tmp, file, ec);
    if (ec)
      throw Error("cannot rename " + tmp.string() + " to " + file.string() + ": " + ec.message());
    fsync_path(file.parent_path().empty() ? "." : file.parent_path(), O_RDONLY | O_DIRECTORY);
  } catch (const std::exception& e) {
    std::error_code ignored;
    fs::remove(tmp, ignored);
    if (dynamic_cast<const Error*>(&e)) throw;
    throw Error("cannot write " + file.string() + ": " + e.what());
  }
}

void write_text_atomically(const fs::path& file, const std::string& text) {
  write_atomically(file, [&](const fs::path& tmp) {
    std::ofstream out(tmp, std::ios::binary | std::ios::trunc);
    out << text;
    out.flush();
    if (!out) throw Error("cannot write " + tmp.string() + ": " + std::strerror(errno));
  });
}

void link_atomically(const fs::path& source, const fs::path& target) {
  std::string tmp_name = ".";  // step by step, as in write_atomically (GCC 12's false warning)
  tmp_name += target.filename().string();
  tmp_name += ".tmp-link";
  const fs::path tmp = target.parent_path() / tmp_name;
  std::error_code ec;
  fs::remove(tmp, ec);
  if (::link(source.c_str(), tmp.c_str()) != 0) {
    const int err = errno;
    // No hard links here (FAT, some network and FUSE file systems): copy instead.
    if (err != EPERM && err != EXDEV && err != EMLINK && err != ENOTSUP && err != EOPNOTSUPP)
      throw Error("cannot link " + target.string() + " to " + source.string() + ": " +
                  std::strerror(err));
    try {
      write_atomically(tmp, [&](const fs::path& copy) {
        fs::copy_file(source, copy, fs::copy_options::overwrite_existing);
      });
    } catch (const std::exception& e) {
      throw Error("cannot copy " + source.string() + " to " + target.string() + ": " + e.what());
    }
  }
  fs::rename(tmp, target, ec);
  if (ec) {
    const std::string reason = ec.message();
    fs::remove(tmp, ec);
    throw Error("cannot rename " + tmp.string() + " to " + target.string() + ": " + reason);
  }
}

std::string timestamped_name(const std::string& prefix) {
  std::time_t t = std::time(nullptr);
  std::tm tm{};
  localtime_r(&t, &tm);
  char buf[32];
  std::strftime(buf, sizeof buf, "%Y%m%d-%H%M%S", &tm);
  return prefix + "-" + buf;
}

}  // namespace trainscope::track
