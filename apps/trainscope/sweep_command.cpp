#include "sweep_command.h"

#include <trainscope/error.h>
#include <trainscope/session/sweep.h>
#include <trainscope/track/run.h>

#include <fcntl.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <atomic>
#include <cerrno>
#include <cstdio>
#include <mutex>
#include <thread>

namespace trainscope::cli {
namespace {

// The trials' processes, for the signal handler: a Ctrl-C or a SIGTERM to the sweep reaches each
// of them as SIGTERM, so each saves its state and stops.
std::array<std::atomic<pid_t>, 64> g_children{};

// In the unnamed namespace, not extern "C": no exported name to clash with another handler.
void forward_to_trials(int) {
  for (auto& pid : g_children)
    if (const pid_t p = pid.load(); p > 0) ::kill(p, SIGTERM);
}

// Runs `argv` as a child that dies with the sweep (PR_SET_PDEATHSIG: SIGKILL of the sweep leaves
// no orphan trial) and waits for it, its output appended to `log` unless empty. Returns its exit
// code (128 + signal when killed).
int run_child(const std::vector<std::string>& args, const std::string& log) {
  std::vector<char*> argv;
  for (const auto& a : args) argv.push_back(const_cast<char*>(a.c_str()));
  argv.push_back(nullptr);
  const pid_t parent = ::getpid();
  const int out =
      log.empty() ? -1 : ::open(log.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
  const pid_t pid = ::fork();
  if (pid < 0) throw Error("cannot start a trial: fork failed");
  if (pid == 0) {
    ::prctl(PR_SET_PDEATHSIG, SIGTERM);
    if (::getppid() != parent) ::_exit(130);  // the sweep died before prctl took effect
    ::signal(SIGINT, SIG_DFL);
    ::signal(SIGTERM, SIG_DFL);
    if (out >= 0) {
      ::dup2(out, 1);
      ::dup2(out, 2);
    }
    ::execv("/proc/self/exe", argv.data());
    ::_exit(127);
  }
  if (out >= 0) ::close(out);
  size_t slot = 0;
  for (; slot < g_children.size(); ++slot) {
    pid_t empty = 0;
    if (g_children[slot].compare_exchange_strong(empty, pid)) break;
  }
  int status = 0;
  while (::waitpid(pid, &status, 0) < 0 && errno == EINTR) {
  }
  if (slot < g_children.size()) g_children[slot].store(0);
  if (WIFEXITED(status)) return WEXITSTATUS(status);
  if (WIFSIGNALED(status)) return 128 + WTERMSIG(status);
  return 1;
}

}  // namespace

CLI::App* add_sweep_command(CLI::App& app, SweepArgs& args) {
  auto* sweep = app.add_subcommand(
      "sweep",
      "run a grid or random search over settings: each trial is a run of its own "
      "(<name>-001, ...) marked with the sweep; starting the same command again finishes what "
      "a crash, a kill or Ctrl-C left and never runs a finished trial twice");
  args.command = std::make_unique<FitCommand>(sweep, args.fit);
  args.command->add_fit_options(kTrainShortcuts);
  sweep->get_option("--name")->required()->description(
      "the sweep's name (required): its trials are runs <name>-001, <name>-002, ... and its plan "
      "is kept in <runs-dir>/<name>.sweep");
  sweep
      ->add_option("--sweep", args.parameters,
                   "a setting to vary (repeatable): KEY=[v1, v2, ...], or for --method random "
                   "KEY=uniform(lo, hi), loguniform(lo, hi) or int(lo, hi); e.g. --sweep "
                   "'train.lr=[0.001, 0.0003]'")
      ->required();
  sweep->add_option("--method", args.method, "grid (default: every combination) or random")
      ->check(CLI::IsMember({"grid", "random"}));
  sweep->add_option("--trials", args.trials, "random search: how many trials");
  sweep->add_option("--sweep-seed", args.seed, "random search: the seed of the draws (default 0)");
  sweep
      ->add_option("--parallel", args.parallel,
                   "trials at a time (default 1); the cores are shared among them")
      ->check(CLI::Range(1, 64));
  sweep
      ->add_option("--prune", args.prune,
                   "stop poor trials early: halving (successive halving as ASHA: after "
                   "sweep.prune_min_epochs epochs, then that times sweep.prune_factor, ..., only "
                   "the best 1/sweep.prune_factor of the trials so far go on) or none (default)")
      ->check(CLI::IsMember({"none", "halving"}));
  return sweep;
}

int run_sweep(SweepArgs& args) {
  args.command->collect();
  Config base = build_config(args.fit);
  if (!args.prune.empty()) base.set("sweep.prune", args.prune, "--prune", "set by the user");
  SweepOptions o;
  o.name = base.get_string("run.name");
  for (const auto& p : args.parameters) o.parameters.push_back(parse_sweep_parameter(p, base));
  o.method = *value_of(args.method, kSweepMethodNames);
  o.trials = args.trials;
  o.seed = args.seed;
  o.parallel = args.parallel;
  o.test = !args.fit.no_test;
  // Trials never serve a dashboard of their own (`trainscope dashboard` shows them all) and,
  // several at once, share the cores.
  base.set("ui.dashboard", false, "sweep", "trials run without a dashboard of their own");
  const unsigned cores = std::max(1u, std::thread::hardware_concurrency());
  const int64_t threads = std::max<int64_t>(1, cores / std::max<int64_t>(1, o.parallel));
  if (base.setting("runtime.threads").source == "default" && o.parallel > 1)
    base.set("runtime.threads", threads, "sweep",
             std::to_string(cores) + " cores shared by " + std::to_string(o.parallel) +
                 " trials at a time");
  if (base.setting("ui.progress").source == "default" && o.parallel > 1)
    base.set("ui.progress", std::string("off"), "sweep", "trials at a time would interleave");

  Sweep sweep(base, o);
  const auto planned = sweep.trials();
  int64_t done = 0;
  for (const auto& t : planned) done += t.status == "finished";
  std::printf("sweep %s: %zu trials (%s), %lld done before; plan in %s\n", o.name.c_str(),
              planned.size(), args.method.c_str(), static_cast<long long>(done),
              track::sweep_dir(sweep.run_dir(planned.front()).parent_path(), o.name).c_str());
  std::fflush(stdout);

  struct sigaction forward {};
  forward.sa_handler = forward_to_trials;
  sigemptyset(&forward.sa_mask);
  struct sigaction old_int {
  }, old_term{};
  sigaction(SIGINT, &forward, &old_int);
  sigaction(SIGTERM, &forward, &old_term);
  std::mutex print;
  const TrialRunner runner = [&](const SweepTrial& trial, TrialAction action, const Config&,
                                 const std::filesystem::path& run_dir) {
    std::vector<std::string> argv = {"trainscope"};
    const char* verb = "train";
    if (action == TrialAction::kTrain) {
      const auto file = sweep.write_trial_config(trial);
      argv.insert(argv.end(), {"train", "--config", file.string()});
      if (!o.test) argv.push_back("--no-test");
    } else if (action == TrialAction::kResume) {
      verb = "resume";
      argv.insert(argv.end(), {"resume", run_dir.string(), "--no-dashboard"});
      if (base.setting("ui.progress").source != "default")
        argv.insert(argv.end(), {"--progress", base.get_string("ui.progress")});
      if (!o.test) argv.push_back("--no-test");
    } else {
      verb = "test";
      argv.insert(argv.end(), {"test", run_dir.string()});
    }
    // Several at once would interleave their output: each goes to a log of its own.
    const std::string log = o.parallel > 1
                                ? (track::sweep_dir(sweep.run_dir(trial).parent_path(), o.name) /
                                   (trial.run_name + ".log"))
                                      .string()
                                : std::string();
    {
      std::lock_guard<std::mutex> guard(print);
      std::printf("%s== trial %lld of %zu: %s %s (%s)%s\n", o.parallel > 1 ? "" : "\n",
                  static_cast<long long>(trial.index), planned.size(), verb, trial.run_name.c_str(),
                  trial.settings_text().c_str(), log.empty() ? "" : (", output in " + log).c_str());
      std::fflush(stdout);
    }
    const int code = run_child(argv, log);
    if (o.parallel > 1) {
      std::lock_guard<std::mutex> guard(print);
      std::printf("   trial %lld (%s) %s\n", static_cast<long long>(trial.index),
                  trial.run_name.c_str(),
                  code == 0 ? "done" : ("exited with status " + std::to_string(code)).c_str());
      std::fflush(stdout);
    }
    return code;
  };
  const SweepResult r = sweep.run(runner);
  sigaction(SIGINT, &old_int, nullptr);
  sigaction(SIGTERM, &old_term, nullptr);
  std::printf("\n%s", r.summary.c_str());
  if (r.interrupted) {
    std::printf(
        "interrupted: each trial's state is saved; the same command goes on where the "
        "sweep stopped\n");
    return 130;
  }
  for (const auto& t : r.trials)
    if (t.status != "finished") {
      std::printf("trial %s %s; the same command retries it\n", t.run_name.c_str(),
                  t.status.c_str());
      return 1;
    }
  return 0;
}

}  // namespace trainscope::cli
