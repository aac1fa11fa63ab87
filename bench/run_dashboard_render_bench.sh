#!/usr/bin/env bash
# How fast the dashboard renders many runs (issue 17: "with 200 runs of 10,000 points each, the
# runs table and a 10-run comparison each render in under 2 s"): writes RUNS fixture runs of
# POINTS steps each with make_runs, serves them with `trainscope dashboard`, and times in headless
# Chromium a fresh load of the runs table and of a comparison of 10 runs (bench/dashboard_render.mjs).
# Usage: [BUILD_DIR=build] bench/run_dashboard_render_bench.sh [RUNS=200] [POINTS=10000] [REPS=5]
#   (after scripts/build.sh: needs build/trainscope, build/tests/make_runs, web/node_modules and
#   Chromium at /usr/bin/chromium or $CHROMIUM)
set -euo pipefail
cd "$(dirname "$(readlink -f "$0")")/.."
runs=${1:-200}
points=${2:-10000}
reps=${3:-5}
build=$PWD/${BUILD_DIR:-build}
work=$(mktemp -d)
dashboard_pid=""
cleanup() {
  if [[ -n $dashboard_pid ]]; then kill "$dashboard_pid" 2>/dev/null || true; wait "$dashboard_pid" 2>/dev/null || true; fi
  rm -rf "$work"
}
trap cleanup EXIT

echo "writing $runs runs of $points points..." >&2
"$build/tests/make_runs" --many "$runs" --points "$points" "$work/runs"

"$build/trainscope" dashboard "$work/runs" --port 0 >"$work/dashboard.log" 2>&1 &
dashboard_pid=$!
for _ in $(seq 100); do grep -q 'http://' "$work/dashboard.log" && break; sleep 0.1; done
url=$(grep -o 'http://127.0.0.1:[0-9]*/' "$work/dashboard.log" | head -n1)
[[ -n $url ]] || { cat "$work/dashboard.log" >&2; exit 1; }

node bench/dashboard_render.mjs --url "$url" --reps "$reps" --compare 10
