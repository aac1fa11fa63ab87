#!/usr/bin/env bash
# How much the dashboard slows a training run in the same process (`trainscope train` serves it
# on its own threads), under a steady request load from wrk on loopback.
# Usage: [BUILD_DIR=build] bench/run_dashboard_bench.sh [REPS=3] [RATE=50]   (after scripts/build.sh; needs wrk)
# Modes, interleaved so that machine noise hits them alike:
#   off    --no-dashboard
#   idle   the dashboard serving, no requests
#   load   the dashboard under RATE requests/s (5 connections, each pausing between requests:
#          version polls, 2000-point series, run details, findings, runs list), bounded in time
# Throughput: the median of the run's per-epoch train/samples_per_s, epochs 2 and later.
set -euo pipefail
cd "$(dirname "$(readlink -f "$0")")/.."
reps=${1:-3}
rate=${2:-50}
cli=$PWD/${BUILD_DIR:-build}/trainscope
command -v wrk >/dev/null || { echo "wrk is missing (scripts/deps.sh installs it)" >&2; exit 2; }
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
interval=$((5 * 1000 / rate))
common=(--epochs 4 --no-test --progress plain --set data.limit=12000 --set train.early_stopping=false
        --set train.checkpoints=false --runs-dir "$work/runs")
results=$work/results.txt

median_rate() {  # run dir -> median samples/s of epochs >= 2
  sqlite3 "$1/run.sqlite" "SELECT value FROM metrics WHERE split='train' AND tag='samples_per_s' AND epoch >= 2 ORDER BY value" |
    awk '{v[NR]=$1} END {print (NR % 2) ? v[(NR+1)/2] : (v[NR/2] + v[NR/2+1]) / 2}'
}

for r in $(seq "$reps"); do
  for mode in off idle load; do
    name=bench-$mode-$r
    log=$work/$name.log
    if [[ $mode == off ]]; then
      "$cli" train "${common[@]}" --name "$name" --no-dashboard >"$log" 2>&1
    else
      "$cli" train "${common[@]}" --name "$name" --set ui.port=0 >"$log" 2>&1 &
      train_pid=$!
      wrk_pid=""
      if [[ $mode == load ]]; then
        for _ in $(seq 600); do grep -q 'dashboard: http' "$log" && break; sleep 0.05; done
        url=$(grep -o 'http://127.0.0.1:[0-9]*' "$log" | head -n1)
        # Bounded: at most 10 minutes, and stopped when training ends.
        wrk -t1 -c5 -d600s --timeout 5s -s bench/dashboard_load.lua "$url" -- "$name" "$interval" >"$work/$name.wrk" 2>&1 &
        wrk_pid=$!
      fi
      wait "$train_pid"
      if [[ -n $wrk_pid ]]; then kill -INT "$wrk_pid" 2>/dev/null || true; wait "$wrk_pid" || true; fi
    fi
    requests=0
    if [[ -f $work/$name.wrk ]]; then
      requests=$(grep -o '[0-9]* requests in' "$work/$name.wrk" | awk '{print $1}')
      seconds=$(grep -o 'requests in [0-9.]*s' "$work/$name.wrk" | grep -o '[0-9.]*' | head -n1)
      errors=$(grep -c 'Non-2xx\|Socket errors' "$work/$name.wrk" || true)
      echo "wrk $name: $requests requests in ${seconds}s ($errors error lines)" >&2
    fi
    echo "$mode $(median_rate "$work/runs/$name") $requests" >>"$results"
  done
  echo "rep $r done" >&2
done

python3 - "$results" "$rate" <<'PY'
import statistics, sys
rows = [l.split() for l in open(sys.argv[1])]
by = {}
for mode, rate, req in rows: by.setdefault(mode, []).append(float(rate))
med = {m: statistics.median(v) for m, v in by.items()}
print(f"| mode | samples/s (min / median / max) | slowdown vs off (median) |")
print("|---|---|---|")
for m in ["off", "idle", "load"]:
    v = sorted(by[m])
    print(f"| {m} | {v[0]:.0f} / {med[m]:.0f} / {v[-1]:.0f} | {100*(1-med[m]/med['off']):.1f}% |")
print()
print(f"dashboard under {sys.argv[2]} req/s: {100*(1-med['load']/med['off']):.1f}% slower (target <= 5%)")
PY
