#!/usr/bin/env bash
# Transfer learning on real data (issue 7): the reference CNN pretrained on Fashion-MNIST classes
# 0-4 (T-shirt, Trouser, Pullover, Dress, Coat), then classes 5-9 (Sandal, Shirt, Sneaker, Bag,
# Ankle boot) learned from the first 1,000 labelled images of those classes (900 train, 100
# validation), four ways at equal epochs, each with seeds 1..REPS:
#   scratch     the same CNN from random weights
#   head        `trainscope finetune` with its defaults: new head, frozen backbone, head only
#   unfreeze    the same, the backbone trains too from epoch 2 at the head's lr / 10
#   full        the backbone trains from epoch 1 at the head's lr (all layers, pretrained start)
# Test accuracy is over the 5,000 test images of classes 5-9. Batch 32 throughout (what the batch
# search picks for this CNN here), Adam at 1e-3, BatchNorm statistics frozen when fine-tuning.
# Usage: bench/run_finetune_bench.sh [REPS=10] [EPOCHS=6] [PRETRAIN_EPOCHS=5]
set -euo pipefail
cd "$(dirname "$(readlink -f "$0")")/.."
reps=${1:-10}
epochs=${2:-6}
pre_epochs=${3:-5}
T=build/trainscope
runs=$(mktemp -d)
common=(--no-dashboard --progress off --runs-dir "$runs" --batch-size 32)
new=(--set 'data.classes=[5,6,7,8,9]' --set data.limit=1000 --epochs "$epochs")
seconds() { sqlite3 "$runs/$1/run.sqlite" "select (select value from meta where key='ended_at') - (select value from meta where key='started_at')"; }
accuracy() { sqlite3 "$runs/$1/run.sqlite" "select value from metrics where split='test' and tag='accuracy'"; }

"$T" train --set 'data.classes=[0,1,2,3,4]' --epochs "$pre_epochs" --name pre "${common[@]}" > /dev/null
echo "pretrained on classes 0-4 ($pre_epochs epochs, $(seconds pre | xargs printf '%.0f') s): test accuracy $(accuracy pre | xargs printf '%.4f')"
for seed in $(seq "$reps"); do
  "$T" train "${new[@]}" --seed "$seed" --name "scratch-$seed" "${common[@]}" > /dev/null
  "$T" finetune --from pre "${new[@]}" --seed "$seed" --name "head-$seed" "${common[@]}" > /dev/null
  "$T" finetune --from pre "${new[@]}" --unfreeze-at 2 --seed "$seed" --name "unfreeze-$seed" \
    "${common[@]}" > /dev/null
  "$T" finetune --from pre "${new[@]}" --unfreeze-at 1 --backbone-lr-ratio 1 --seed "$seed" \
    --name "full-$seed" "${common[@]}" > /dev/null
  echo "seed $seed done" >&2
done
printf '\n| classes 5-9, 900 training images, %s epochs | test accuracy: mean (min-max) | beats scratch | fit s (mean) |\n|---|---|---|---|\n' "$epochs"
for mode in scratch head unfreeze full; do
  rows=""
  for seed in $(seq "$reps"); do
    rows+="$(accuracy "$mode-$seed") $(accuracy "scratch-$seed") $(seconds "$mode-$seed")"$'\n'
  done
  case $mode in
    scratch) label="from scratch" ;;
    head) label="fine-tune: head only (the default)" ;;
    unfreeze) label="fine-tune: backbone from epoch 2 at lr/10" ;;
    full) label="fine-tune: all layers from epoch 1, same lr" ;;
  esac
  printf '%s' "$rows" | awk -v label="$label" -v mode="$mode" 'NF == 3 {
      n++; s += $1; t += $3; if ($1 > $2) w++
      if (n == 1 || $1 < lo) lo = $1
      if (n == 1 || $1 > hi) hi = $1
    } END {
      printf "| %s | %.2f%% (%.2f-%.2f) | %s | %.1f |\n", label, 100 * s / n, 100 * lo, 100 * hi,
             mode == "scratch" ? "-" : sprintf("%d of %d seeds", w, n), t / n
    }'
done
rm -rf "$runs"
