#include "dashboard_commands.h"

#include <trainscope/error.h>

#include <pthread.h>
#include <unistd.h>

#include <chrono>
#include <csignal>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <thread>

namespace trainscope::cli {
namespace fs = std::filesystem;
namespace {

int run_dashboard(const DashboardArgs& args) {
  if (!fs::is_directory(args.runs_dir))
    throw Error("runs directory " + args.runs_dir +
                " does not exist; give the directory that holds the runs (default \"runs\")");
  serve::DashboardOptions o;
  o.runs_dir = args.runs_dir;
  o.port = args.port;
  o.host = args.host;
  o.token = args.token;
  o.threads = 4;
  // SIGINT and SIGTERM are taken by sigwait below; the server's threads inherit the mask.
  sigset_t signals;
  sigemptyset(&signals);
  sigaddset(&signals, SIGINT);
  sigaddset(&signals, SIGTERM);
  pthread_sigmask(SIG_BLOCK, &signals, nullptr);
  serve::Dashboard dashboard(o);
  dashboard.start();
  std::printf(
      "dashboard of %s: %s\n(it writes only the tags and notes you give runs; Ctrl-C stops it)\n",
      fs::absolute(args.runs_dir).lexically_normal().c_str(), dashboard.url().c_str());
  std::fflush(stdout);
  int signal = 0;
  sigwait(&signals, &signal);
  dashboard.stop();
  std::printf("dashboard stopped\n");
  return 0;
}

int run_report(const ReportArgs& args) {
  fs::path dir(args.run);
  if (!fs::exists(dir / "run.sqlite")) {
    const fs::path under = fs::path(args.runs_dir) / args.run;
    if (!fs::exists(under / "run.sqlite"))
      throw Error("no run named '" + args.run + "': neither " + dir.string() + " nor " +
                  under.string() + " holds a run.sqlite; `ls " + args.runs_dir +
                  "` lists the runs");
    dir = under;
  }
  const std::string html = serve::static_report(dir);
  std::ofstream out(args.out, std::ios::binary | std::ios::trunc);
  out << html;
  out.close();
  if (!out)
    throw Error("cannot write " + args.out + " (check the directory exists and is writable)");
  std::printf("wrote %s (%zu KiB): charts, findings, test results and config of %s\n",
              args.out.c_str(), html.size() / 1024, dir.c_str());
  return 0;
}

}  // namespace

void add_dashboard_commands(CLI::App& app, DashboardCommands& c) {
  c.dashboard = app.add_subcommand("dashboard",
                                   "serve the live dashboard of a directory of runs (it writes "
                                   "only the tags and notes you give runs)");
  c.dashboard->add_option("RUNS_DIR", c.dashboard_args.runs_dir,
                          "directory of runs (default \"runs\")");
  c.dashboard->add_option("--port", c.dashboard_args.port, "port (default 6150; 0: any free port)")
      ->check(CLI::Range(0, 65535));
  c.dashboard->add_option("--host", c.dashboard_args.host,
                          "address to listen on (default 127.0.0.1; any other needs --token)");
  c.dashboard->add_option(
      "--token", c.dashboard_args.token,
      "secret every request must carry (the printed URL has it); required with --host");

  c.report = app.add_subcommand(
      "report", "write one self-contained HTML file of a run: charts, findings, results");
  c.report->add_option("RUN", c.report_args.run, "run directory, or a run name under --runs-dir")
      ->required();
  c.report->add_option("--runs-dir", c.report_args.runs_dir,
                       "directory of runs (default \"runs\")");
  c.report->add_option("--out", c.report_args.out, "HTML file to write (default report.html)");
}

bool run_dashboard_commands(const DashboardCommands& c, int& exit_code) {
  if (c.dashboard && c.dashboard->parsed()) {
    exit_code = run_dashboard(c.dashboard_args);
    return true;
  }
  if (c.report && c.report->parsed()) {
    exit_code = run_report(c.report_args);
    return true;
  }
  return false;
}

std::unique_ptr<serve::Dashboard> start_train_dashboard(const Config& config) {
  if (!config.get_bool("ui.dashboard") || config.get_string("run.dir").empty()) return nullptr;
  serve::DashboardOptions o;
  o.runs_dir = config.get_string("run.dir");
  o.port = static_cast<int>(config.get_int("ui.port"));
  o.port_fallback = true;
  o.threads = 2;
  try {
    // The runs directory may not exist yet (the Trainer creates it with the run); a failing
    // command must not leave it behind.
    auto dashboard = std::make_unique<serve::Dashboard>(o);
    dashboard->start();
    std::printf(
        "dashboard: %s (while training; later: trainscope dashboard %s; --no-dashboard turns it "
        "off)\n",
        dashboard->url().c_str(), o.runs_dir.c_str());
    std::fflush(stdout);
    return dashboard;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "trainscope: dashboard not started: %s\n", e.what());
    return nullptr;
  }
}

namespace {
volatile std::sig_atomic_t g_stop_lingering = 0;
}

void linger(serve::Dashboard* dashboard, const Config& config) {
  const double seconds = config.get_double("ui.linger");
  if (!dashboard || seconds <= 0 || !isatty(fileno(stdout))) return;
  std::printf(
      "dashboard: still serving %s for %.0f s so that an open tab shows the results "
      "(Ctrl-C ends it now; ui.linger sets how long)\n",
      dashboard->url().c_str(), seconds);
  std::fflush(stdout);
  g_stop_lingering = 0;
  auto* previous = std::signal(SIGINT, [](int) { g_stop_lingering = 1; });
  const auto end = std::chrono::steady_clock::now() + std::chrono::duration<double>(seconds);
  while (!g_stop_lingering && std::chrono::steady_clock::now() < end)
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  std::signal(SIGINT, previous);
}

}  // namespace trainscope::cli
