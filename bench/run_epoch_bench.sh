#!/usr/bin/env bash
# End to end against Python (issue 19), on full Fashion-MNIST, in one run:
# 1. One epoch with validation and the test pass, whole commands timed by the shell, REPS
#    interleaved rounds of:
#      trainscope    `trainscope train --epochs 1` (its defaults: batch rule, bf16 where the CPU
#                    has it natively, pre-flight checks, diagnostics, checkpoints, run store; the
#                    dashboard off, as nobody watches)
#      py-default    bench/python/fmnist_baseline.py --epochs 1: the same CNN and recipe as a
#                    PyTorch user writes it, Debian's defaults
#      py-tuned      the same hand-tuned: 2 threads, OPENBLAS_NUM_THREADS=1, malloc thresholds
#      ts-fp32       `trainscope train --epochs 1 --set train.precision=fp32`
# 2. Time to TARGET test accuracy (default 0.91), the test split evaluated after every epoch
#    (those passes timed apart and left out) in both: build/bench/bench_time_to_accuracy (the
#    Session of `trainscope train` with its defaults, then fp32, then augmenting from the first
#    epoch) against the Python default recipe (Adam 1e-3, batch 128) with Debian's defaults.
# 3. The fraction of the machine's matrix-multiply rate the default step reaches: the reference
#    CNN's training FLOPs per sample (3x its forward's multiply-adds x 2) times the samples/s of
#    round 1, against torch.mm on 4096x4096 matrices in float32 (OpenBLAS on both cores, about
#    the cores' FMA peak) and in bfloat16 (oneDNN).
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
  times[ts-fp32]+="$(wall "$runs/tf-$r.log" "$T" train --epochs 1 --no-dashboard \
    --set train.precision=fp32 --runs-dir "$runs" --name "tf-$r") "
  echo "round $r: ${times[trainscope]} / ${times[py-default]} / ${times[py-tuned]} / ${times[ts-fp32]}" >&2
done
median() { tr ' ' '\n' | sed '/^$/d' | sort -g | awk '{v[NR] = $1} END {print v[int((NR + 1) / 2)]}'; }
ts=$(echo "${times[trainscope]}" | median)
pd=$(echo "${times[py-default]}" | median)
pt=$(echo "${times[py-tuned]}" | median)
tf=$(echo "${times[ts-fp32]}" | median)
acc() { sed -n 's/.*test accuracy:\? \([0-9.]*%\?\).*/\1/p' "$1" | tail -1; }
printf '\n| one epoch with validation and the test pass | wall s: each round | median | test accuracy (round 1) |\n|---|---|---|---|\n'
printf '| `trainscope train --epochs 1` | %s| %s | %s |\n' "${times[trainscope]}" "$ts" "$(acc "$runs/ts-1.log")"
printf '| Python, Debian defaults | %s| %s | %s |\n' "${times[py-default]}" "$pd" "$(acc "$runs/pd-1.log")"
printf '| Python hand-tuned | %s| %s | %s |\n' "${times[py-tuned]}" "$pt" "$(acc "$runs/pt-1.log")"
printf '| `trainscope train --epochs 1 --set train.precision=fp32` | %s| %s | %s |\n' "${times[ts-fp32]}" "$tf" "$(acc "$runs/tf-1.log")"
awk -v ts="$ts" -v pd="$pd" -v pt="$pt" -v tf="$tf" 'BEGIN {
  printf "\ntrainscope speed-up: %.2fx Python defaults (target >= 2), %.2fx Python hand-tuned (target >= 1.3); in fp32 %.2fx and %.2fx\n", pd / ts, pt / ts, pd / tf, pt / tf }'
grep -E '^batch size|train.precision =|data.augment_from =' "$runs/ts-1.log" | sed 's/  */ /g' || true

tta() {  # name, then KEY=VALUE settings
  local name=$1; shift
  echo "trainscope $name $*"
  OMP_WAIT_POLICY=PASSIVE build/bench/bench_time_to_accuracy "$target" "$runs" ui.dashboard=false "$@" \
    | tee "$runs/tta-$name.log" | grep -E '^epoch|^RESULT|augmentation from'
}
echo
tta default
tta fp32 train.precision=fp32
tta augment-from-1 data.augment_from=1
echo "Python default recipe"
/usr/bin/python3 "$PY" --target "$target" | tee "$runs/tta-py.log"
py_s=$(sed -n 's/^RESULT.*seconds=\([0-9.]*\).*/\1/p' "$runs/tta-py.log")
echo
for name in default fp32 augment-from-1; do
  s=$(sed -n 's/^RESULT.*seconds=\([0-9.]*\).*/\1/p' "$runs/tta-$name.log")
  awk -v a="${s:-nan}" -v b="$py_s" -v t="$target" -v n="$name" 'BEGIN {
    printf "time to %.0f%% test accuracy: trainscope %s %.1f s, Python default recipe %.1f s: %.2fx (target <= 0.5)\n", 100 * t, n, a, b, a / b }'
done

# 3. FLOP/s: conv 1->32 and 32->64 (3x3, 28x28 and 14x14), fc 3136->128->10.
rate=$(sqlite3 "$runs/ts-1/run.sqlite" "select value from metrics where split='train' and tag='samples_per_s'")
mm() {  # FLOP/s of a 4096x4096 matrix product in the given dtype
  OPENBLAS_NUM_THREADS=$(nproc) /usr/bin/python3 -c '
import sys, time, torch
torch.set_num_threads('"$(nproc)"')
a, b = (torch.randn(4096, 4096).to(getattr(torch, sys.argv[1])) for _ in range(2))
for _ in range(2): a @ b
t = time.perf_counter()
for _ in range(5): a @ b
print(5 * 2 * 4096 ** 3 / (time.perf_counter() - t))' "$1"
}
peak32=$(mm float32)
peak16=$(mm bfloat16)
awk -v rate="$rate" -v p32="$peak32" -v p16="$peak16" 'BEGIN {
  fwd = 2 * (28 * 28 * 32 * 9 + 14 * 14 * 64 * 32 * 9 + 3136 * 128 + 128 * 10)
  step = 3 * fwd * rate
  printf "\nthe default step: %.0f samples/s x %.1f MFLOP = %.1f GFLOP/s; matmul on this machine: float32 %.1f GFLOP/s (%.0f%%), bfloat16 %.1f GFLOP/s (%.0f%%)\n",
         rate, 3 * fwd / 1e6, step / 1e9, p32 / 1e9, 100 * step / p32, p16 / 1e9, 100 * step / p16 }'
