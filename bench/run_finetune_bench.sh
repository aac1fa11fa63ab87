#!/usr/bin/env bash
# Transfer learning on real data (issues 7 and 16). Fashion-MNIST classes 5-9 (Sandal, Shirt,
# Sneaker, Bag, Ankle boot) learned from the first 1,000 labelled images of them (900 training,
# 100 validation) by models pretrained on classes 0-4 (T-shirt, Trouser, Pullover, Dress, Coat).
# Test accuracy is over the 5,000 test images of classes 5-9; every command is the user's, with
# nothing but the data given.
#
# 1. Our reference CNN, pretrained by `trainscope train` on classes 0-4, seeds 1..REPS:
#      scratch   `trainscope train` on the 900 images, its defaults (up to 50 epochs, early stopping)
#      head      `trainscope finetune --head-only`: the head alone on the frozen backbone
#      default   `trainscope finetune`: the head on cached features, then the whole model, its
#                weights averaged (train.ema 0.99)
#      scratch with the weight average too (`--set train.ema=0.99`), which fine-tuning has by
#      default, to show what the average alone is worth
#    "beats scratch" compares runs of the same seed.
# 2. Models defined and pretrained in Python on raw [0, 1] inputs (bench/transfer/
#    pretrain_sources.py: a small CNN and torchvision's ResNet-18 with a 1-channel stem), saved
#    with torch.jit.script and fine-tuned with `trainscope finetune --from FILE` and the defaults
#    (no normalization given), seeds 1..PY_REPS.
# 3. The head phase with and without the feature cache, on the ResNet-18: `--head-only` for 10
#    epochs without early stopping, samples/s of epochs 2-10 (median) and the whole fit's time.
# Usage: bench/run_finetune_bench.sh [REPS=10] [PY_REPS=2] [PRETRAIN_EPOCHS=5]
# DEFAULT_EXTRA='--set finetune.anneal=true' adds settings to the default fine-tunes of part 1
# (for A/B runs of a recipe change against the same scratch runs).
set -euo pipefail
cd "$(dirname "$(readlink -f "$0")")/.."
reps=${1:-10}
py_reps=${2:-2}
pre_epochs=${3:-5}
T=build/trainscope
runs=$(mktemp -d)
trap 'rm -rf "$runs"' EXIT
common=(--no-dashboard --progress off --runs-dir "$runs")
new=(--set 'data.classes=[5,6,7,8,9]' --set data.limit=1000)
meta() { sqlite3 "$runs/$1/run.sqlite" "select value from meta where key='$2'"; }
seconds() { sqlite3 "$runs/$1/run.sqlite" "select (select value from meta where key='ended_at') - (select value from meta where key='started_at')"; }
accuracy() { sqlite3 "$runs/$1/run.sqlite" "select value from metrics where split='test' and tag='accuracy'"; }
epochs() { sqlite3 "$runs/$1/run.sqlite" "select max(epoch) from metrics where split='train'"; }
summary() {  # label mode reps [against]
  local label=$1 mode=$2 n=$3 against=${4:-}
  local rows=""
  for seed in $(seq "$n"); do
    rows+="$(accuracy "$mode-$seed") $([[ -n $against ]] && accuracy "$against-$seed" || echo 0) $(seconds "$mode-$seed") $(epochs "$mode-$seed")"$'\n'
  done
  printf '%s' "$rows" | awk -v label="$label" -v cmp="$against" 'NF == 4 {
      n++; s += $1; t += $3; e += $4; if ($1 > $2) w++
      if (n == 1 || $1 < lo) lo = $1
      if (n == 1 || $1 > hi) hi = $1
    } END {
      printf "| %s | %.2f%% (%.2f-%.2f) | %s | %.1f | %.1f |\n", label, 100 * s / n, 100 * lo,
             100 * hi, cmp == "" ? "-" : sprintf("%d of %d seeds", w, n), e / n, t / n
    }'
}

echo "CPU: $(lscpu | sed -n 's/^Model name: *//p'), $(nproc) cores"
"$T" train --set 'data.classes=[0,1,2,3,4]' --epochs "$pre_epochs" --name pre "${common[@]}" > /dev/null
echo "reference CNN pretrained on classes 0-4 ($pre_epochs epochs, $(seconds pre | xargs printf '%.0f') s): test accuracy $(accuracy pre | xargs printf '%.4f')"
for seed in $(seq "$reps"); do
  "$T" train "${new[@]}" --seed "$seed" --name "scratch-$seed" "${common[@]}" > /dev/null
  "$T" train "${new[@]}" --seed "$seed" --set train.ema=0.99 --name "scratch-ema-$seed" \
    "${common[@]}" > /dev/null
  "$T" finetune --from pre "${new[@]}" --head-only --seed "$seed" --name "head-$seed" "${common[@]}" > /dev/null
  # shellcheck disable=SC2086 # DEFAULT_EXTRA is a list of words
  "$T" finetune --from pre "${new[@]}" --seed "$seed" --name "default-$seed" "${common[@]}" \
    ${DEFAULT_EXTRA:-} > /dev/null
  echo "seed $seed done" >&2
done
printf '\n| reference CNN, classes 5-9, 900 training images | test accuracy: mean (min-max) | beats scratch | epochs (mean) | fit s (mean) |\n|---|---|---|---|---|\n'
summary "from scratch (\`trainscope train\`)" scratch "$reps"
summary "fine-tune, head only (\`--head-only\`)" head "$reps" scratch
summary "fine-tune, the default (head, then the whole model)" default "$reps" scratch
summary "from scratch with the weight average (\`--set train.ema=0.99\`)" scratch-ema "$reps" scratch
summary "fine-tune, the default, against scratch with the weight average" default "$reps" scratch-ema
echo
for seed in $(seq "$reps"); do
  printf 'default-%s: %s\n' "$seed" "$(meta "default-$seed" finetune.recipe)"
done

sources=$(mktemp -d)
/usr/bin/python3 bench/transfer/pretrain_sources.py "$sources"
for model in cnn resnet18; do
  for seed in $(seq "$py_reps"); do
    "$T" finetune --from "$sources/$model.pt" "${new[@]}" --seed "$seed" --name "py-$model-$seed" \
      --no-dashboard --progress plain --runs-dir "$runs" > "$runs/py-$model-$seed.out"
  done
done
printf '\n| Python-defined source (TorchScript), classes 5-9, 900 training images | test accuracy: mean (min-max) | - | epochs (mean) | fit s (mean) |\n|---|---|---|---|---|\n'
summary "small CNN (cnn.pt), \`trainscope finetune\` defaults" py-cnn "$py_reps"
summary "ResNet-18 (resnet18.pt), \`trainscope finetune\` defaults" py-resnet18 "$py_reps"
echo
for model in cnn resnet18; do
  echo "py-$model-1: $(meta "py-$model-1" finetune.recipe)"
  grep -E '^(normalization|head lr)' "$runs/py-$model-1.out" || true
done

echo
for cache in true false; do
  "$T" finetune --from "$sources/resnet18.pt" "${new[@]}" --head-only --epochs 10 \
    --set train.early_stopping=false --set finetune.cache_features=$cache --name "cache-$cache" \
    "${common[@]}" > /dev/null
done
rate() { sqlite3 "$runs/$1/run.sqlite" "select value from metrics where split='train' and tag='samples_per_s' and epoch >= 2 order by value" | awk '{v[NR] = $1} END {print v[int((NR + 1) / 2)]}'; }
cached=$(rate cache-true) uncached=$(rate cache-false)
printf '| ResNet-18 head phase, 10 epochs | samples/s (median of epochs 2-10) | fit s |\n|---|---|---|\n'
printf '| features cached (the default) | %.0f | %.1f |\n' "$cached" "$(seconds cache-true)"
printf '| backbone recomputed each step (`finetune.cache_features=false`) | %.0f | %.1f |\n' "$uncached" "$(seconds cache-false)"
awk -v a="$cached" -v b="$uncached" 'BEGIN { printf "cached / recomputed: %.0fx the samples/s\n", a / b }'
rm -rf "$sources"
