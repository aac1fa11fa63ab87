#!/usr/bin/env bash
# Trainer::fit (every default callback) vs bare LibTorch loops, side by side in one run.
# Usage: bench/run_fit_bench.sh [REPS=3]   (after scripts/build.sh)
# Modes, interleaved so that machine noise hits them alike:
#   bare-default  LibTorch's defaults: 1 intra-op thread here, OpenBLAS's own threads, glibc malloc
#   bare-tuned    hand-tuned: 2 threads, OPENBLAS_NUM_THREADS=1, malloc thresholds raised
#   fit           trainscope's Trainer, process configured by trainscope::configure_process()
#   fit-nodiag    the same with the diagnostics callback off (its overhead is fit-nodiag vs fit)
set -euo pipefail
cd "$(dirname "$(readlink -f "$0")")/.."
reps=${1:-3}
bin=build/bench/bench_fit
out=$(mktemp)
tuned_env=(OPENBLAS_NUM_THREADS=1 GLIBC_TUNABLES=glibc.malloc.mmap_threshold=33554432:glibc.malloc.trim_threshold=1073741824)
for r in $(seq "$reps"); do
  env -u OMP_NUM_THREADS "$bin" --mode bare --tag bare-default 2>&1 >/dev/null | grep RESULT >> "$out"
  env -u OMP_NUM_THREADS "${tuned_env[@]}" "$bin" --mode bare --threads "$(nproc)" --tag bare-tuned 2>&1 >/dev/null | grep RESULT >> "$out"
  env -u OMP_NUM_THREADS "$bin" --mode fit --tag fit 2>&1 >/dev/null | grep RESULT >> "$out"
  env -u OMP_NUM_THREADS "$bin" --mode fit --diagnostics 0 --tag fit-nodiag 2>&1 >/dev/null | grep RESULT >> "$out"
  echo "rep $r done" >&2
done
python3 - "$out" <<'PY'
import json, statistics, sys
rows = [json.loads(l.split("RESULT ", 1)[1]) for l in open(sys.argv[1])]
by = {}
for r in rows: by.setdefault(r["tag"], []).append(r)
med = {t: statistics.median(x["samples_per_s"] for x in v) for t, v in by.items()}
print("| mode | samples/s (min / median / max) | page faults per batch (median) |")
print("|---|---|---|")
for t in ["bare-default", "bare-tuned", "fit", "fit-nodiag"]:
    v = sorted(x["samples_per_s"] for x in by[t])
    f = statistics.median(x["minflt_per_batch"] for x in by[t])
    print(f"| {t} | {v[0]:.0f} / {med[t]:.0f} / {v[-1]:.0f} | {f:.0f} |")
print()
print(f"fit / bare-default: {med['fit']/med['bare-default']:.2f}x (target >= 1.6)")
print(f"fit / bare-tuned:   {med['fit']/med['bare-tuned']:.3f}x (target >= 0.97)")
print(f"diagnostics overhead: {100*(1 - med['fit']/med['fit-nodiag']):.1f}% of step time (target <= 3%)")
PY
rm -f "$out"
