#!/usr/bin/env bash
# What the always-on parts cost a default `trainscope train` step (issue 19: the diagnostics,
# checkpoint and dashboard overheads under the defaults, bf16 included where the CPU has it).
# REPS interleaved rounds of `trainscope train --epochs EPOCHS --no-test` on full Fashion-MNIST:
#   defaults      every default, the dashboard off (nobody watches)
#   no-diagnose   --set diagnose.enabled=false
#   no-ckpt       --set train.checkpoints=false
#   dashboard     the dashboard served (on a free port), nobody connected
#   no-sharpness  --set diagnose.sharpness_examples=0 (the sharpness probe off)
# The defaults runs also time their diagnostics in-process (the run's ("diagnose", "cost")
# result): the share of the fit the callback's step hooks took, and the sharpness probe's part.
# Each run's samples/s is the median over its epochs of the run store's per-epoch samples_per_s
# (the step loop, augmentation and the epoch's checkpoint hand-off included, validation not);
# a part's overhead is 1 - defaults / without-it (the dashboard's: 1 - dashboard / defaults).
# Usage: bench/run_overhead_bench.sh [REPS=3] [EPOCHS=2]
set -euo pipefail
cd "$(dirname "$(readlink -f "$0")")/.."
reps=${1:-3}
epochs=${2:-2}
T=build/trainscope
runs=$(mktemp -d)
trap 'rm -rf "$runs"' EXIT
echo "CPU: $(lscpu | sed -n 's/^Model name: *//p'), $(nproc) cores, $(date -u +%Y-%m-%d)"
run() {  # mode round, then the mode's own flags
  local mode=$1 r=$2; shift 2
  "$T" train --epochs "$epochs" --no-test --progress off --runs-dir "$runs" --name "$mode-$r" \
    --set ui.port=0 --set ui.linger=0 "$@" > "$runs/$mode-$r.log" 2>&1
  sqlite3 "$runs/$mode-$r/run.sqlite" \
    "select value from metrics where split='train' and tag='samples_per_s' order by value" |
    awk '{v[NR] = $1} END {printf "%.0f\n", v[int((NR + 1) / 2)]}'
}
declare -A rate
share=""
for r in $(seq "$reps"); do
  rate[defaults]+="$(run defaults "$r" --no-dashboard) "
  rate[no-diagnose]+="$(run no-diagnose "$r" --no-dashboard --set diagnose.enabled=false) "
  rate[no-ckpt]+="$(run no-ckpt "$r" --no-dashboard --set train.checkpoints=false) "
  rate[dashboard]+="$(run dashboard "$r") "
  rate[no-sharpness]+="$(run no-sharpness "$r" --no-dashboard --set diagnose.sharpness_examples=0) "
  echo "round $r: ${rate[defaults]}/ ${rate[no-diagnose]}/ ${rate[no-ckpt]}/ ${rate[dashboard]}/ ${rate[no-sharpness]}" >&2
  share+="$(sqlite3 "$runs/defaults-$r/run.sqlite" \
    "select (100 * json_extract(json, '\$.seconds') / json_extract(json, '\$.fit_seconds')) || ' ' ||
            (100 * json_extract(json, '\$.sharpness_seconds') / json_extract(json, '\$.fit_seconds'))
     from results where split = 'diagnose' and name = 'cost'")
"
done
median() { tr ' ' '\n' | sed '/^$/d' | sort -g | awk '{v[NR] = $1} END {print v[int((NR + 1) / 2)]}'; }
d=$(echo "${rate[defaults]}" | median)
nd=$(echo "${rate[no-diagnose]}" | median)
nc=$(echo "${rate[no-ckpt]}" | median)
db=$(echo "${rate[dashboard]}" | median)
printf '\n| run | samples/s: each round | median |\n|---|---|---|\n'
for m in defaults no-diagnose no-ckpt dashboard no-sharpness; do
  printf '| %s | %s| %s |\n' "$m" "${rate[$m]}" "$(echo "${rate[$m]}" | median)"
done
ns=$(echo "${rate[no-sharpness]}" | median)
awk -v d="$d" -v nd="$nd" -v nc="$nc" -v db="$db" -v ns="$ns" 'BEGIN {
  printf "\ndiagnostics %.1f%% (target <= 3%%), checkpoints %.1f%%, dashboard %.1f%% (target <= 5%%), sharpness probe %.1f%% of the default step rate\n",
         100 * (1 - d / nd), 100 * (1 - d / nc), 100 * (1 - db / d), 100 * (1 - d / ns) }'
printf '%s' "$share" | awk '{ a[NR] = $1; b[NR] = $2 } END {
  printf "timed in-process (defaults runs): diagnostics %s%% of the fit, the sharpness probe %s%% (each round)\n",
         join(a), join(b) }
  function join(v,   i, s) { for (i = 1; i in v; ++i) s = s (i > 1 ? " / " : "") sprintf("%.2f", v[i]); return s }'
