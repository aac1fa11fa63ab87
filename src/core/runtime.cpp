#include <trainscope/runtime.h>

#include <ATen/Parallel.h>

#if defined(__x86_64__)
#include <cpuid.h>
#endif
#include <dlfcn.h>
#include <malloc.h>
#include <sched.h>

#include <algorithm>
#include <cstdint>
#include <cstdlib>
#include <string>
#include <thread>

namespace trainscope {
int available_cores() {
  cpu_set_t set;
  if (sched_getaffinity(0, sizeof(set), &set) == 0) return std::max(1, CPU_COUNT(&set));
  return std::max(1u, std::thread::hardware_concurrency());
}

std::string native_bf16() {
#if defined(__x86_64__)
  unsigned a = 0, b = 0, c = 0, d = 0;
  if (!__get_cpuid(1, &a, &b, &c, &d) || !(c & (1u << 27))) return "";  // no OSXSAVE
  unsigned lo = 0, hi = 0;
  __asm__("xgetbv" : "=a"(lo), "=d"(hi) : "c"(0));
  const uint64_t xcr0 = (static_cast<uint64_t>(hi) << 32) | lo;
  // SSE, AVX and the three AVX-512 states (opmask, upper ZMM halves, ZMM16-31) saved by the OS.
  if ((xcr0 & 0xe6) != 0xe6) return "";
  if (!__get_cpuid_count(7, 0, &a, &b, &c, &d) || !(b & (1u << 16))) return "";  // AVX512F
  // AMX tile state (XTILECFG, XTILEDATA) enabled, and AMX-BF16.
  if ((d & (1u << 22)) && (xcr0 & 0x60000) == 0x60000) return "amx_bf16";
  if (__get_cpuid_count(7, 1, &a, &b, &c, &d) && (a & (1u << 5))) return "avx512_bf16";
#endif
  return "";
}

namespace {

bool env_set(const char* name) {
  const char* v = std::getenv(name);
  return v != nullptr && *v != '\0';
}

}  // namespace

RuntimeReport configure_process(const RuntimeOptions& options) {
  RuntimeReport report;
  report.previous_intra_op_threads = at::get_num_threads();

  if (env_set("OMP_NUM_THREADS")) {
    report.lines.push_back("intra-op threads: " + std::to_string(at::get_num_threads()) +
                           " (OMP_NUM_THREADS=" + std::getenv("OMP_NUM_THREADS") +
                           " from the environment)");
  } else {
    int cores = available_cores();
    int n = options.intra_op_threads > 0 ? options.intra_op_threads : cores;
    at::set_num_threads(n);
    report.lines.push_back("intra-op threads: " + std::to_string(n) + " (LibTorch chose " +
                           std::to_string(report.previous_intra_op_threads) + "; " +
                           std::to_string(cores) + " cores available)");
  }
  report.intra_op_threads = at::get_num_threads();

  // OpenBLAS reads OPENBLAS_NUM_THREADS when it loads, before main(); only its API can change
  // the count now. It is looked up at run time because LibTorch may run on another BLAS.
  using SetThreads = void (*)(int);
  auto set_blas_threads =
      reinterpret_cast<SetThreads>(dlsym(RTLD_DEFAULT, "openblas_set_num_threads"));
  if (options.openblas_threads > 0) {
    if (env_set("OPENBLAS_NUM_THREADS")) {
      report.lines.push_back(std::string("OpenBLAS threads: OPENBLAS_NUM_THREADS=") +
                             std::getenv("OPENBLAS_NUM_THREADS") + " from the environment");
    } else if (set_blas_threads != nullptr) {
      set_blas_threads(options.openblas_threads);
      report.openblas_threads = options.openblas_threads;
      report.lines.push_back("OpenBLAS threads: " + std::to_string(options.openblas_threads) +
                             " (inside OpenMP's workers, so the two do not fight over the cores)");
    } else {
      report.lines.push_back(
          "OpenBLAS threads: not set (OpenBLAS not loaded; install libopenblas0-pthread, "
          "reference BLAS is about 2x slower for linear layers)");
    }
  }

  // GNU OpenMP reads OMP_WAIT_POLICY when it loads, before main(): the CLI's training commands
  // restart themselves with PASSIVE set, and say so through TRAINSCOPE_OMP_RESTARTED.
  if (const char* policy = std::getenv("OMP_WAIT_POLICY")) {
    const bool ours = env_set("TRAINSCOPE_OMP_RESTARTED");
    report.lines.push_back(
        std::string("OpenMP waiting: OMP_WAIT_POLICY=") + policy +
        (ours ? " (trainscope restarted with it: idle workers sleep instead of spinning, which "
                "costs a training step nothing and keeps batched augmentation fast on a busy "
                "machine; bench/README.md)"
              : " from the environment"));
  } else {
    report.lines.push_back(
        "OpenMP waiting: GNU OpenMP's default (workers spin before they sleep); "
        "OMP_WAIT_POLICY=PASSIVE in the environment before the program starts keeps them from "
        "taking a busy machine's cores (bench/README.md)");
  }

  if (options.malloc_tuning) {
    if (env_set("GLIBC_TUNABLES") || env_set("MALLOC_MMAP_THRESHOLD_") ||
        env_set("MALLOC_TRIM_THRESHOLD_")) {
      report.lines.push_back("malloc: left as the environment configures it");
    } else {
      // Activations of a batch are freed and reallocated every step; above the default 128 KiB
      // mmap threshold each one is a fresh mapping that the kernel must zero-fill and fault in.
      bool ok = mallopt(M_MMAP_THRESHOLD, 32 << 20) == 1;
      ok = mallopt(M_TRIM_THRESHOLD, 1 << 30) == 1 && ok;
      report.malloc_tuned = ok;
      report.lines.push_back(
          ok ? "malloc: mmap threshold 32 MiB, trim threshold 1 GiB (freed "
               "activations are reused, not refaulted)"
             : "malloc: mallopt refused the thresholds; left at glibc's defaults");
    }
  }
  return report;
}

}  // namespace trainscope
