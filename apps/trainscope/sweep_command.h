#pragma once
// trainscope sweep: the train options for what every trial shares, --sweep KEY=VALUES for what
// varies. Each trial runs as `trainscope train --config <its file>` in a child process (or
// `trainscope resume`, `trainscope test` to finish one a kill left), --parallel N at a time with
// the cores shared among them.
#include "fit_command.h"

#include <CLI/CLI.hpp>

#include <memory>
#include <string>
#include <vector>

namespace trainscope::cli {

struct SweepArgs {
  FitArgs fit;
  std::vector<std::string> parameters;  // --sweep KEY=VALUES
  std::string method = "grid";
  int64_t trials = 0;
  uint64_t seed = 0;
  int64_t parallel = 1;
  std::string prune;  // --prune none|halving: sets sweep.prune ("": as configured)
  std::unique_ptr<FitCommand> command;  // the train options
};

// Adds the sweep subcommand to `app`; `args` must outlive parsing.
CLI::App* add_sweep_command(CLI::App& app, SweepArgs& args);
// After parsing: runs the sweep. Returns the exit code (0 every trial done, 1 a trial failed,
// 130 interrupted).
int run_sweep(SweepArgs& args);

}  // namespace trainscope::cli
