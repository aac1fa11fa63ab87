#!/usr/bin/env bash
# End to end against Python (issue 19), on full Fashion-MNIST, in one run:
# 1. One epoch with validation and the test pass, whole commands timed by the shell, REPS
#    interleaved rounds of:
#      trainscope    `trainscope train --epochs 1` (its defaults: batch rule, pre-flight checks,
#                    diagnostics, checkpoints, run store; the dashboard off, as nobody watches)
#      py-default    bench/python/fmnist_baseline.py --epochs 1: the same CNN and recipe as a
#                    PyTorch user writes it, Debian's defaults
#      py-tuned      the same hand-tuned: 2 threads, OPENBLAS_NUM_THREADS=1, malloc thresholds
#      ts-bf16       `trainscope train --epochs 1 --set train.precision=bf16` (not the default)
# 2. Time to TARGET test accuracy (default 0.91), the test split evaluated after every epoch
#    (those passes timed apart and left out) in both: build/bench/bench_time_to_accuracy (the
#    Session of `trainscope train` with its defaults) against the Python default recipe (Adam
#    1e-3, batch 128) with Debian's defaults.
# 3. The fraction of the machine's float32 matrix-multiply rate the default step reaches: the
#    reference CNN's training FLOPs per sample (3x its forward's multiply-adds x 2) times the
#    samples/s of round 1, against torch.mm on 4096x4096 matrices with OpenBLAS on both cores
#    (its best: about the cores' FMA peak).
# Usage: bench/run_epoch_bench.sh [REPS=3] [TARGET=0.91]
set -euo pipefail
cd "$(dirname "$(readlink -f "$0")")/.."
reps=${1:-3}
target=${2:-0.91}
T=build/trainscope
PY=bench/python/fmnist_baseline.py
runs=$(mktemp -d)
trap 'rm -rf "$runs"' EXIT
tuned_malloc=glibc.malloc.mmap_threshold=33554432:glibc.malloc.trim_threshold=1073741824
wall() {  # seconds the command takes, its output to a log
  local log=$1; shift
  local t0 t1
  t0=$(date +%s.%N)
  "$@" > "$log" 2>&1
  t1=$(date +%s.%N)
  awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.1f\n", b - a }'
}
echo "CPU: $(lscpu | sed -n 's/^Model name: *//p'), $(nproc) cores, $(date -u +%Y-%m-%d)"
declare -A times
for r in $(seq "$reps"); do
  times[trainscope]+="$(wall "$runs/ts-$r.log" "$T" train --epochs 1 --no-dashboard \
    --runs-dir "$runs" --name "ts-$r") "
  times[py-default]+="$(wall "$runs/pd-$r.log" /usr/bin/python3 "$PY" --epochs 1) "
  times[py-tuned]+="$(wall "$runs/pt-$r.log" env OPENBLAS_NUM_THREADS=1 \
    GLIBC_TUNABLES=$tuned_malloc /usr/bin/python3 "$PY" --epochs 1 --threads 2) "
  times[ts-bf16]+="$(wall "$runs/tb-$r.log" "$T" train --epochs 1 --no-dashboard \
    --set train.precision=bf16 --runs-dir "$runs" --name "tb-$r") "
  echo "round $r: ${times[trainscope]} / ${times[py-default]} / ${times[py-tuned]} / ${times[ts-bf16]}" >&2
done
median() { tr ' ' '\n' | sed '/^$/d' | sort -g | awk '{v[NR] = $1} END {print v[int((NR + 1) / 2)]}'; }
ts=$(echo "${times[trainscope]}" | median)
pd=$(echo "${times[py-default]}" | median)
pt=$(echo "${times[py-tuned]}" | median)
tb=$(echo "${times[ts-bf16]}" | median)
acc() { sed -n 's/.*test accuracy:\? \([0-9.]*%\?\).*/\1/p' "$1" | tail -1; }
printf '\n| one epoch with validation and the test pass | wall s: each round | median | test accuracy (round 1) |\n|---|---|---|---|\n'
printf '| `trainscope train --epochs 1` | %s| %s | %s |\n' "${times[trainscope]}" "$ts" "$(acc "$runs/ts-1.log")"
printf '| Python, Debian defaults | %s| %s | %s |\n' "${times[py-default]}" "$pd" "$(acc "$runs/pd-1.log")"
printf '| Python hand-tuned | %s| %s | %s |\n' "${times[py-tuned]}" "$pt" "$(acc "$runs/pt-1.log")"
printf '| `trainscope train --epochs 1 --set train.precision=bf16` | %s| %s | %s |\n' "${times[ts-bf16]}" "$tb" "$(acc "$runs/tb-1.log")"
awk -v ts="$ts" -v pd="$pd" -v pt="$pt" 'BEGIN {
  printf "\ntrainscope speed-up: %.2fx Python defaults (target >= 2), %.2fx Python hand-tuned (target >= 1.3)\n", pd / ts, pt / ts }'
grep -E '^batch size|^precision' "$runs/ts-1.log" || true

echo
OMP_WAIT_POLICY=PASSIVE build/bench/bench_time_to_accuracy "$target" "$runs" | tee "$runs/tta-ts.log" | grep -E '^epoch|^RESULT'
/usr/bin/python3 "$PY" --target "$target" | tee "$runs/tta-py.log"
ts_s=$(sed -n 's/^RESULT.*seconds=\([0-9.]*\).*/\1/p' "$runs/tta-ts.log")
py_s=$(sed -n 's/^RESULT.*seconds=\([0-9.]*\).*/\1/p' "$runs/tta-py.log")
awk -v a="$ts_s" -v b="$py_s" -v t="$target" 'BEGIN {
  printf "\ntime to %.0f%% test accuracy: trainscope %.1f s, Python default recipe %.1f s: %.2fx (target <= 0.5)\n", 100 * t, a, b, a / b }'

# 3. FLOP/s: conv 1->32 and 32->64 (3x3, 28x28 and 14x14), fc 3136->128->10.
rate=$(sqlite3 "$runs/ts-1/run.sqlite" "select value from metrics where split='train' and tag='samples_per_s'")
peak=$(OPENBLAS_NUM_THREADS=$(nproc) /usr/bin/python3 -c '
import time, torch
a, b = torch.randn(4096, 4096), torch.randn(4096, 4096)
for _ in range(2): a @ b
t = time.perf_counter()
for _ in range(5): a @ b
print(5 * 2 * 4096 ** 3 / (time.perf_counter() - t))')
awk -v rate="$rate" -v peak="$peak" 'BEGIN {
  fwd = 2 * (28 * 28 * 32 * 9 + 14 * 14 * 64 * 32 * 9 + 3136 * 128 + 128 * 10)
  step = 3 * fwd * rate
  printf "\nthe default step: %.0f samples/s x %.1f MFLOP = %.1f GFLOP/s; float32 matmul on this machine %.1f GFLOP/s: %.0f%%\n",
         rate, 3 * fwd / 1e6, step / 1e9, peak / 1e9, 100 * step / peak }'
