#!/usr/bin/env bash
# Data pipeline benchmarks, side by side in one run (figures in bench/README.md).
# Usage: bench/run_data_bench.sh [REPS=3] [RUN_DIR]   (after scripts/build.sh)
#   augmentation  rotate(10) + hflip + crop(28, pad=2) on Fashion-MNIST batches of 128:
#                 trainscope (batched on the device, one fused grid_sample) vs torchvision per
#                 sample through a DataLoader with 2 workers (../shared/bench/py_augment.py),
#                 interleaved so that machine noise hits them alike
#                 (trainscope runs three ways: the CLI's process settings, the same with
#                 OMP_WAIT_POLICY=PASSIVE, and one intra-op thread)
#   jpeg          raw libjpeg-turbo decode vs the image-folder data set, 28x28 gray and 224x224 RGB
#   RUN_DIR       a run of `build/trainscope train` whose data_wait_fraction to report
set -euo pipefail
cd "$(dirname "$(readlink -f "$0")")/.."
reps=${1:-3}
run_dir=${2:-}
bin=${BENCH_BIN:-build/bench/bench_data}
py=../shared/bench/py_augment.py
out=$(mktemp)
for r in $(seq "$reps"); do
  "$bin" --mode augment --items 'rotate(10),hflip,crop(28, pad=2)' | sed 's/"mode": "augment"/"mode": "augment", "tag": "trainscope"/' | grep RESULT >> "$out"
  OMP_WAIT_POLICY=PASSIVE "$bin" --mode augment --items 'rotate(10),hflip,crop(28, pad=2)' | sed 's/"mode": "augment"/"mode": "augment", "tag": "trainscope-omp-passive"/' | grep RESULT >> "$out"
  "$bin" --mode augment --threads 1 --items 'rotate(10),hflip,crop(28, pad=2)' | sed 's/"mode": "augment"/"mode": "augment", "tag": "trainscope-1thread"/' | grep RESULT >> "$out"
  /usr/bin/python3 "$py" --mode persample --workers 2 --tag torchvision-2workers | grep RESULT >> "$out"
  /usr/bin/python3 "$py" --mode batched --tag python-batched | grep RESULT >> "$out"
  echo "rep $r done" >&2
done
"$bin" --mode jpeg --size 28 | grep RESULT >> "$out"
"$bin" --mode jpeg --size 224 | grep RESULT >> "$out"
python3 - "$out" "$run_dir" <<'PY'
import json, statistics, sys, sqlite3, os
rows = [json.loads(l.split("RESULT ", 1)[1]) for l in open(sys.argv[1])]
aug = {}
for r in rows:
    if r.get("mode") in ("augment", "persample", "batched"):
        aug.setdefault(r["tag"], []).append(r["images_per_s"])
print("| augmentation, rotate(10) + hflip + crop(28, pad=2), batch 128 | images/s (min / median / max) |")
print("|---|---|")
for tag in ["trainscope", "trainscope-omp-passive", "trainscope-1thread", "python-batched", "torchvision-2workers"]:
    v = aug.get(tag, [])
    if v: print(f"| {tag} | {min(v):,.0f} / {statistics.median(v):,.0f} / {max(v):,.0f} |")
for tag in ["trainscope", "trainscope-omp-passive", "trainscope-1thread"]:
    if aug.get(tag) and aug.get("torchvision-2workers"):
        print(f"\nspeed-up of {tag} over torchvision per sample (2 workers), medians: "
              f"{statistics.median(aug[tag]) / statistics.median(aug['torchvision-2workers']):.1f}x")
print("\n| JPEG decode, one core | image | raw tjDecompress2 images/s | image-folder data set images/s | loader, 2 workers |")
print("|---|---|---|---|---|")
for r in rows:
    if r.get("mode") == "jpeg":
        print(f"| {r['images']} files, {r['mean_jpeg_bytes']:.0f} B each | {r['size']}x{r['size']}x{r['channels']} | "
              f"{r['raw_tjdecompress_images_per_s']:,.0f} | {r['folder_dataset_1thread_images_per_s']:,.0f} | "
              f"{r['loader_2workers_images_per_s']:,.0f} |")
if sys.argv[2]:
    db = sqlite3.connect(os.path.join(sys.argv[2], "run.sqlite"))
    v = [x for (x,) in db.execute("select value from metrics where tag='data_wait_fraction' order by epoch")]
    print(f"\ndata_wait_fraction of {sys.argv[2]} per epoch: " + ", ".join(f"{100*x:.2f}%" for x in v))
PY
rm -f "$out"
