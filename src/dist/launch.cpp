#include <trainscope/dist/launch.h>

#include <trainscope/error.h>

#include <fcntl.h>
#include <netinet/in.h>
#include <csignal>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <cstring>
#include <thread>
#include <vector>

extern char** environ;

namespace trainscope::dist {
namespace {

// A port nobody listens on now; rank 0 binds it for the job's store a moment later.
int free_port() {
  int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  addr.sin_port = 0;
  socklen_t len = sizeof addr;
  if (fd < 0 || ::bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0 ||
      ::getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len) != 0)
    throw Error(std::string("cannot find a free port for the job's rendezvous: ") +
                std::strerror(errno));
  const int port = ntohs(addr.sin_port);
  ::close(fd);
  return port;
}

std::string describe(int status) {
  if (WIFEXITED(status)) return "exited with status " + std::to_string(WEXITSTATUS(status));
  if (WIFSIGNALED(status)) {
    const int sig = WTERMSIG(status);
    return "was killed by signal " + std::to_string(sig) + " (" + strsignal(sig) + ")";
  }
  return "stopped";
}

int exit_code(int status) {
  if (WIFEXITED(status)) return WEXITSTATUS(status);
  return 128 + (WIFSIGNALED(status) ? WTERMSIG(status) : 0);
}

// The ranks run in process groups of their own, so that a signal reaches each of them once, from
// the launcher: Ctrl-C (which a terminal sends to the foreground group), kill PID, timeout or
// docker stop. A rank that gets SIGINT twice dies at once, as a single process does on a second
// Ctrl-C; were the ranks in the launcher's group, one Ctrl-C would reach them twice.
volatile std::sig_atomic_t g_interrupts = 0;    // SIGINTs received, each forwarded once
volatile std::sig_atomic_t g_terminations = 0;  // SIGTERMs
volatile std::sig_atomic_t g_suspend = 0;       // Ctrl-Z
// Plain C++ functions in the unnamed namespace: an extern "C" name would be exported and could be
// interposed by a program that defines the same name (the sweep command once did).
void forward_signal(int signal) {
  if (signal == SIGINT)
    g_interrupts = g_interrupts + 1;
  else
    g_terminations = g_terminations + 1;
}
void note_suspend(int) { g_suspend = 1; }

// Whether a stop would stop us: POSIX discards a terminal stop for an orphaned process group
// (nobody left to continue it), and so must we.
bool may_stop() {
  const pid_t parent = ::getppid();
  return ::getpgid(parent) != ::getpgrp() && ::getsid(parent) == ::getsid(0);
}

void signal_ranks(const std::vector<pid_t>& ranks, int signal) {
  for (pid_t p : ranks)
    if (p > 0) ::kill(p, signal);  // reaped ranks are -1: never signalled
}

}  // namespace

int take_nproc(std::vector<std::string>& argv) {
  for (size_t i = 0; i < argv.size(); ++i) {
    std::string value;
    size_t erase = 0;
    if (argv[i] == "--nproc" && i + 1 < argv.size())
      value = argv[i + 1], erase = 2;
    else if (argv[i].rfind("--nproc=", 0) == 0)
      value = argv[i].substr(8), erase = 1;
    if (erase == 0) continue;
    char* end = nullptr;
    const long n = std::strtol(value.c_str(), &end, 10);
    if (value.empty() || *end != '\0' || n < 1 || n > 1024)
      throw ConfigError("--nproc " + value +
                        " is not valid; expected a number of processes such "
                        "as 2");
    argv.erase(argv.begin() + static_cast<long>(i), argv.begin() + static_cast<long>(i + erase));
    return static_cast<int>(n);
  }
  return 0;
}

int launch_local(int nproc, const std::vector<std::string>& argv) {
  const int port = free_port();
  std::printf("data parallel: %d ranks on this machine (rendezvous 127.0.0.1:%d); rank 0 reports\n",
              nproc, port);
  std::fflush(stdout);
  struct sigaction forward {};
  forward.sa_handler = forward_signal;
  sigemptyset(&forward.sa_mask);
  sigaddset(&forward.sa_mask, SIGINT);
  sigaddset(&forward.sa_mask, SIGTERM);
  sigaction(SIGINT, &forward, nullptr);
  sigaction(SIGTERM, &forward, nullptr);
  // Ctrl-Z suspends the job, unless whoever started us ignores it.
  struct sigaction previous {};
  sigaction(SIGTSTP, nullptr, &previous);
  if (previous.sa_handler != SIG_IGN) {
    struct sigaction suspend {};
    suspend.sa_handler = note_suspend;
    sigemptyset(&suspend.sa_mask);
    sigaction(SIGTSTP, &suspend, nullptr);
  }
  const pid_t launcher = ::getpid();
  std::vector<pid_t> ranks;
  for (int r = 0; r < nproc; ++r) {
    auto job_variable = [](const std::string& kv) {
      for (const char* key : {"RANK=", "LOCAL_RANK=", "WORLD_SIZE=", "LOCAL_WORLD_SIZE=",
                              "MASTER_ADDR=", "MASTER_PORT=", "TRAINSCOPE_NPROC="})
        if (kv.rfind(key, 0) == 0) return true;
      return false;
    };
    std::vector<std::string> env_strings;
    for (char** e = environ; *e; ++e)
      if (!job_variable(*e)) env_strings.push_back(*e);
    env_strings.push_back("RANK=" + std::to_string(r));
    env_strings.push_back("LOCAL_RANK=" + std::to_string(r));
    env_strings.push_back("WORLD_SIZE=" + std::to_string(nproc));
    env_strings.push_back("LOCAL_WORLD_SIZE=" + std::to_string(nproc));
    env_strings.push_back("MASTER_ADDR=127.0.0.1");
    env_strings.push_back("MASTER_PORT=" + std::to_string(port));
    env_strings.push_back("TRAINSCOPE_NPROC=" + std::to_string(nproc));  // for the resume hint
    std::vector<char*> envp, args;
    for (auto& e : env_strings) envp.push_back(e.data());
    envp.push_back(nullptr);
    std::vector<std::string> argv_copy = argv;
    for (auto& a : argv_copy) args.push_back(a.data());
    args.push_back(nullptr);
    const pid_t pid = ::fork();
    if (pid < 0) {
      for (pid_t p : ranks) ::kill(p, SIGKILL);
      throw Error("cannot start rank " + std::to_string(r) + ": " + std::strerror(errno));
    }
    if (pid == 0) {
      // The rank dies with the launcher, whatever kills it; only async-signal-safe calls here.
      ::prctl(PR_SET_PDEATHSIG, SIGKILL);
      if (::getppid() != launcher) ::_exit(137);
      ::setpgid(0, 0);  // first: until then a Ctrl-C finds the launcher's handler, harmless here
      std::signal(SIGINT, SIG_DFL);
      std::signal(SIGTERM, SIG_DFL);
      std::signal(SIGTSTP, SIG_DFL);
      // Outside the terminal's foreground group, a write with `stty tostop` would stop the rank.
      std::signal(SIGTTOU, SIG_IGN);
      if (r > 0) {
        const int null = ::open("/dev/null", O_WRONLY);
        if (null >= 0) ::dup2(null, 1);
      }
      ::execve("/proc/self/exe", args.data(), envp.data());
      ::_exit(127);
    }
    ::setpgid(pid, pid);  // also here, so that no signal finds the rank still in our group
    ranks.push_back(pid);
  }
  int first_failure = 0;
  size_t running = ranks.size();
  bool killing = false;  // set with kill_at
  std::chrono::steady_clock::time_point kill_at;
  std::sig_atomic_t interrupts = 0, terminations = 0;
  while (running > 0) {
    for (; interrupts != g_interrupts; ++interrupts) signal_ranks(ranks, SIGINT);
    for (; terminations != g_terminations; ++terminations) signal_ranks(ranks, SIGTERM);
    if (g_suspend != 0) {
      // Ctrl-Z stops the whole job, and `fg` continues it; the time stopped does not count
      // against ranks given a deadline.
      g_suspend = 0;
      if (may_stop()) {
        const auto stopped = std::chrono::steady_clock::now();
        signal_ranks(ranks, SIGSTOP);
        ::raise(SIGSTOP);
        signal_ranks(ranks, SIGCONT);
        kill_at += std::chrono::steady_clock::now() - stopped;
      }
    }
    // Ranks blocked in a collective get SIGKILL if they do not end by themselves.
    if (killing && std::chrono::steady_clock::now() >= kill_at) {
      signal_ranks(ranks, SIGKILL);
      killing = false;
    }
    int status = 0;
    const pid_t pid = ::waitpid(-1, &status, WNOHANG);
    if (pid == 0) {
      std::this_thread::sleep_for(std::chrono::milliseconds(50));
      continue;
    }
    if (pid < 0) {
      if (errno == EINTR) continue;
      break;
    }
    int rank = -1;
    for (size_t r = 0; r < ranks.size(); ++r)
      if (ranks[r] == pid) rank = static_cast<int>(r), ranks[r] = -1;  // reaped: never signalled
    if (rank < 0) continue;
    --running;
    const bool failed = !(WIFEXITED(status) && WEXITSTATUS(status) == 0);
    if (!failed || first_failure != 0) continue;
    first_failure = exit_code(status);
    if (running == 0) break;
    // An interrupt we forwarded (130) stops every rank by itself; anything else, a signal sent
    // to one rank included, leaves the others waiting.
    if (exit_code(status) == 130 && g_interrupts + g_terminations > 0) continue;
    std::fprintf(stderr, "trainscope: rank %d %s; stopping the other %zu rank%s\n", rank,
                 describe(status).c_str(), running, running == 1 ? "" : "s");
    signal_ranks(ranks, SIGTERM);
    killing = true;
    kill_at = std::chrono::steady_clock::now() + std::chrono::seconds(10);
  }
  return first_failure;
}

}  // namespace trainscope::dist
