#pragma once
// Child processes for the CLI's end-to-end tests: start the trainscope binary, kill it at a
// chosen moment (a time, or the creation of a file), wait for it.
#include <gtest/gtest.h>

#include <fcntl.h>
#include <poll.h>
#include <spawn.h>
#include <sys/inotify.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <csignal>
#include <filesystem>
#include <fstream>
#include <functional>
#include <string>
#include <thread>
#include <vector>

extern char** environ;

namespace trainscope::testing {

namespace fs = std::filesystem;
using Clock = std::chrono::steady_clock;

// Starts the CLI with `args`, its stdout and stderr appended to `log`, with `env` added to this
// process's environment, in a process group of its own when `own_group` (so that a signal can
// reach it and every process it starts).
inline pid_t spawn(const std::vector<std::string>& args, const fs::path& log,
                   const std::vector<std::string>& env = {}, bool own_group = false) {
  std::vector<std::string> all = {TRAINSCOPE_CLI};
  all.insert(all.end(), args.begin(), args.end());
  std::vector<char*> argv;
  for (auto& a : all) argv.push_back(a.data());
  argv.push_back(nullptr);
  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  posix_spawn_file_actions_addopen(&actions, 1, log.c_str(), O_WRONLY | O_CREAT | O_APPEND, 0644);
  posix_spawn_file_actions_adddup2(&actions, 1, 2);
  std::vector<std::string> env_strings(env.begin(), env.end());
  for (char** e = environ; *e; ++e) env_strings.push_back(*e);
  std::vector<char*> envp;
  for (auto& e : env_strings) envp.push_back(e.data());
  envp.push_back(nullptr);
  posix_spawnattr_t attr;
  posix_spawnattr_init(&attr);
  if (own_group) {
    posix_spawnattr_setflags(&attr, POSIX_SPAWN_SETPGROUP);
    posix_spawnattr_setpgroup(&attr, 0);
  }
  pid_t pid = -1;
  const int rc = posix_spawn(&pid, argv[0], &actions, &attr, argv.data(), envp.data());
  posix_spawn_file_actions_destroy(&actions);
  posix_spawnattr_destroy(&attr);
  EXPECT_EQ(rc, 0) << "cannot start " << argv[0];
  return pid;
}

// Exit status, or -signal when killed.
inline int wait_for(pid_t pid) {
  int status = 0;
  waitpid(pid, &status, 0);
  return WIFEXITED(status) ? WEXITSTATUS(status) : -WTERMSIG(status);
}

inline bool alive(pid_t pid) {
  int status = 0;
  return waitpid(pid, &status, WNOHANG) == 0;
}

// Kills `pid` with SIGKILL; true when it was still running (the kill landed mid-fit).
inline bool kill_now(pid_t pid) {
  const bool was_alive = alive(pid);
  ::kill(pid, SIGKILL);
  wait_for(pid);
  return was_alive;
}

inline bool wait_until(const std::function<bool()>& ready, pid_t pid, double seconds) {
  const auto end = Clock::now() + std::chrono::duration<double>(seconds);
  while (Clock::now() < end) {
    if (ready()) return true;
    if (!alive(pid)) return false;
    std::this_thread::sleep_for(std::chrono::milliseconds(2));
  }
  return false;
}

// Waits for a file whose name contains `marker` to be created in `dir`, then kills `pid`: the
// kill lands while that file is being written. Returns whether the kill landed mid-fit.
inline bool kill_on_create(pid_t pid, const fs::path& dir, const std::string& marker, int nth) {
  if (!wait_until([&] { return fs::exists(dir); }, pid, 60)) return kill_now(pid);
  const int fd = inotify_init1(IN_NONBLOCK | IN_CLOEXEC);
  const int wd = inotify_add_watch(fd, dir.c_str(), IN_CREATE);
  EXPECT_GE(wd, 0);
  int seen = 0;
  alignas(inotify_event) char buf[4096];
  const auto end = Clock::now() + std::chrono::seconds(60);
  while (Clock::now() < end && alive(pid)) {
    pollfd p{fd, POLLIN, 0};
    if (poll(&p, 1, 5) <= 0) continue;
    const ssize_t n = read(fd, buf, sizeof buf);
    for (ssize_t off = 0; off < n;) {
      auto* e = reinterpret_cast<inotify_event*>(buf + off);
      if (e->len > 0 && std::string(e->name).find(marker) != std::string::npos && ++seen >= nth) {
        const bool landed = kill_now(pid);
        close(fd);
        return landed;
      }
      off += static_cast<ssize_t>(sizeof(inotify_event) + e->len);
    }
  }
  close(fd);
  return kill_now(pid);
}

// A file's whole content ("" when it cannot be read): logs, configs, /proc entries.
inline std::string file_text(const fs::path& file) {
  std::ifstream in(file, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(in), {});
}

// Runs a shell command; its exit status and its stdout and stderr together.
struct ShellResult {
  int status;
  std::string out;
};
inline ShellResult sh(const std::string& command) {
  ShellResult r{0, ""};
  FILE* p = popen((command + " 2>&1").c_str(), "r");
  char buf[4096];
  size_t n;
  while ((n = fread(buf, 1, sizeof buf, p)) > 0) r.out.append(buf, n);
  const int status = pclose(p);
  r.status = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  return r;
}

// The processes `pid` started (Linux's /proc/PID/task/PID/children), in start order.
inline std::vector<pid_t> children_of(pid_t pid) {
  std::ifstream in("/proc/" + std::to_string(pid) + "/task/" + std::to_string(pid) + "/children");
  std::vector<pid_t> out;
  for (pid_t c; in >> c;) out.push_back(c);
  return out;
}

}  // namespace trainscope::testing
