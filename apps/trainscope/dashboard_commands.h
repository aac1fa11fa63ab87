#pragma once
// The dashboard's commands: `trainscope dashboard`, `trainscope report`, and the dashboard that
// `trainscope train` starts beside its run.
#include <trainscope/config.h>
#include <trainscope/serve/dashboard.h>

#include <CLI/CLI.hpp>

#include <memory>
#include <string>

namespace trainscope::cli {

struct DashboardArgs {
  std::string runs_dir = "runs";
  int port = 6150;
  std::string host = "127.0.0.1";
  std::string token;
};

struct ReportArgs {
  std::string run;
  std::string runs_dir = "runs";
  std::string out = "report.html";
};

struct DashboardCommands {
  DashboardArgs dashboard_args;
  ReportArgs report_args;
  CLI::App* dashboard = nullptr;
  CLI::App* report = nullptr;
};

// Adds the `dashboard` and `report` subcommands to `app`. `commands` must outlive parsing.
void add_dashboard_commands(CLI::App& app, DashboardCommands& commands);
// Runs whichever of them was parsed; returns false when neither was.
bool run_dashboard_commands(const DashboardCommands& commands, int& exit_code);

// `trainscope train`'s dashboard: started when ui.dashboard is true, on 127.0.0.1:ui.port (or the
// next free port), over run.dir; prints its URL. Returns null when off or when it cannot start
// (then it prints why and training goes on).
std::unique_ptr<serve::Dashboard> start_train_dashboard(const Config& config);
// After training, on a terminal: keeps `dashboard` serving for ui.linger seconds, so that an open
// tab shows the test results, and says so; Ctrl-C ends the wait at once. Does nothing when
// `dashboard` is null, ui.linger is 0 or standard output is not a terminal.
void linger(serve::Dashboard* dashboard, const Config& config);

}  // namespace trainscope::cli
