#!/usr/bin/env bash
# Models defined in Python, trained from the command line (issue 15): `trainscope train --model
# torchscript:FILE` with every default against the zoo's own CNN on the same data, epochs and
# seeds. bench/torchscript/define_models.py writes the reference CNN in Python (the same layers,
# PyTorch's initialization) and a residual GELU/LayerNorm net the zoo cannot express.
# Prints each run's test accuracy (best epoch) and the fit's seconds.
# Usage: bench/run_torchscript_bench.sh [EPOCHS=3] [SEEDS=1] [LIMIT=0 (all 54,000 training images)]
set -euo pipefail
cd "$(dirname "$(readlink -f "$0")")/.."
epochs=${1:-3}
seeds=${2:-1}
limit=${3:-0}
T=build/trainscope
runs=$(mktemp -d)
trap 'rm -rf "$runs"' EXIT
/usr/bin/python3 bench/torchscript/define_models.py "$runs"
accuracy() { sqlite3 "$runs/$1/run.sqlite" "select value from metrics where split='test' and tag='accuracy'"; }
seconds() { sqlite3 "$runs/$1/run.sqlite" "select (select value from meta where key='ended_at') - (select value from meta where key='started_at')"; }
echo "model | seed | test accuracy | seconds"
for seed in $(seq "$seeds"); do
  for model in cnn "torchscript:$runs/cnn.pt" "torchscript:$runs/residual.pt"; do
    name="$(basename "${model%.pt}")-$seed"
    [[ $model == torchscript:* ]] && name="py-$name"
    $T train --model "$model" --epochs "$epochs" --seed "$seed" --set data.limit="$limit" \
      --name "$name" --runs-dir "$runs" --no-dashboard --progress off >/dev/null
    echo "${name%-$seed} | $seed | $(accuracy "$name") | $(seconds "$name")"
  done
done
