#pragma once
// Configures the process for training: thread counts and the allocator.
//
// On a 2-core machine with Debian's LibTorch this is worth about 1.8x on the reference CNN
// (bench/README.md): LibTorch starts 1 intra-op thread; OpenBLAS runs its own threads beside
// OpenMP's and both fight for the cores; glibc's malloc hands freed activations back to the
// kernel and refaults them (~9,000 page faults a batch). The CLI calls configure_process()
// always; library users call it once at the start of main().

#include <string>
#include <vector>

namespace trainscope {

struct RuntimeOptions {
  // Intra-op threads; 0 means one per available core. An OMP_NUM_THREADS in the environment
  // wins over this default and is reported as such.
  int intra_op_threads = 0;
  // Threads OpenBLAS may start; 0 leaves OpenBLAS alone. OPENBLAS_NUM_THREADS in the
  // environment wins. 1 keeps OpenBLAS inside OpenMP's workers.
  int openblas_threads = 1;
  // Raise glibc's mmap threshold to 32 MiB and trim threshold to 1 GiB (mallopt), so that
  // freed activations are reused instead of returned to the kernel. Skipped when the user set
  // GLIBC_TUNABLES or MALLOC_* variables.
  bool malloc_tuning = true;
};

// What configure_process() did, one human-readable line per decision.
struct RuntimeReport {
  int intra_op_threads = 0;           // in force afterwards
  int previous_intra_op_threads = 0;  // LibTorch's choice before
  int openblas_threads = -1;          // -1: not changed (or OpenBLAS not found)
  bool malloc_tuned = false;
  std::vector<std::string> lines;
};

// Cores this process may run on (its CPU affinity), at least 1.
int available_cores();

// The instruction set through which this CPU computes bfloat16 matrix products natively, as the
// CPU and the OS report it: "amx_bf16", "avx512_bf16", or "" when it has none (oneDNN would
// then emulate bf16 with float32 arithmetic, slower than float32 itself). x86-64 only.
std::string native_bf16();

// Applies `options` to this process. Call before the first torch op that starts threads.
// Process-wide and not thread-safe; calling it again re-applies the thread settings.
RuntimeReport configure_process(const RuntimeOptions& options = {});

}  // namespace trainscope
