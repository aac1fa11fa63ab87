#pragma once
// `--nproc N`: starts N copies of this command as the ranks of a local data-parallel job, with
// the environment torchrun would give them, and watches them.
#include <string>
#include <vector>

namespace trainscope::cli {

// Runs `argv` (this command line without --nproc) as ranks 0..nproc-1: RANK, LOCAL_RANK,
// WORLD_SIZE, MASTER_ADDR=127.0.0.1 and a free MASTER_PORT. Rank 0's output is shown; the
// others' standard output is dropped (their errors are shown). When a rank fails, the others are
// stopped (SIGTERM, then SIGKILL after 10 s) and the failure is named. Returns the job's exit
// status: 0 when every rank succeeded, else the first failing rank's.
int launch(int nproc, const std::vector<std::string>& argv);

// Removes "--nproc N" / "--nproc=N" from `argv`; returns N, or 0 when absent. Throws
// trainscope::ConfigError for a value that is not a positive integer.
int take_nproc(std::vector<std::string>& argv);

}  // namespace trainscope::cli
