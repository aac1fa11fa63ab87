#pragma once
// A local data-parallel job, as torchrun starts one: N copies of a command as its ranks, with the
// environment a Session joins by (RANK, WORLD_SIZE, MASTER_*), watched until they end.
// `trainscope train --nproc N` is this over its own command line.
#include <string>
#include <vector>

namespace trainscope::dist {

// Runs `argv` (this command line without --nproc) as ranks 0..nproc-1: RANK, LOCAL_RANK,
// WORLD_SIZE, MASTER_ADDR=127.0.0.1 and a free MASTER_PORT. Rank 0's output is shown; the
// others' standard output is dropped (their errors are shown). When a rank fails, the others are
// stopped (SIGTERM, then SIGKILL after 10 s) and the failure is named. Returns the job's exit
// status: 0 when every rank succeeded, else the first failing rank's.
int launch_local(int nproc, const std::vector<std::string>& argv);

// Removes "--nproc N" / "--nproc=N" from `argv`; returns N, or 0 when absent. Throws
// trainscope::ConfigError for a value that is not a positive integer.
int take_nproc(std::vector<std::string>& argv);

}  // namespace trainscope::dist
