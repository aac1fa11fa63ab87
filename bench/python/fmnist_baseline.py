#!/usr/bin/python3
"""The Python side of bench/run_epoch_bench.sh (issue 19): trainscope's reference CNN and default
recipe written the way a PyTorch user writes them (Debian's python3-torch 1.13).

    fmnist_baseline.py [--epochs 1] [--threads 0] [--target ACC] [--data DIR]

Fashion-MNIST, inputs (x/255 - mean) / std with the training split's statistics; 10% of the
training set held out for validation (a fixed permutation); the CNN conv32-BN-ReLU-pool,
conv64-BN-ReLU-pool, fc128-ReLU, fc10; Adam at lr 1e-3; a DataLoader over a TensorDataset,
batch 128, shuffled; after each epoch a pass over the validation split. --threads 0 keeps
PyTorch's default thread count. With --target, the test split is evaluated after each epoch and
the run stops at the first epoch that reaches it; the test passes are timed apart and left out
of the reported seconds. Without it, the test split is evaluated once at the end. Prints one line
per epoch and a last line:
    RESULT epochs=E seconds=S accuracy=A   (seconds from the script's start to the end of epoch E)
"""
import time

START = time.perf_counter()

import argparse  # noqa: E402
import os  # noqa: E402
import sys  # noqa: E402

import numpy as np  # noqa: E402
import torch  # noqa: E402
from torch import nn  # noqa: E402
from torch.nn import functional as F  # noqa: E402
from torch.utils.data import DataLoader, TensorDataset  # noqa: E402

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from fmnist_idx import read_idx  # noqa: E402


def split(data_dir, prefix):
    x = torch.tensor(read_idx(f"{data_dir}/{prefix}-images-idx3-ubyte.gz"), dtype=torch.float32)
    y = torch.tensor(read_idx(f"{data_dir}/{prefix}-labels-idx1-ubyte.gz").astype(np.int64))
    return x.unsqueeze(1) / 255, y


def cnn():
    return nn.Sequential(
        nn.Conv2d(1, 32, 3, padding=1), nn.BatchNorm2d(32), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(32, 64, 3, padding=1), nn.BatchNorm2d(64), nn.ReLU(), nn.MaxPool2d(2),
        nn.Flatten(), nn.Linear(64 * 7 * 7, 128), nn.ReLU(), nn.Linear(128, 10))


@torch.no_grad()
def accuracy(model, x, y):
    model.eval()
    hits = sum((model(x[i:i + 1000]).argmax(1) == y[i:i + 1000]).sum().item()
               for i in range(0, len(x), 1000))
    model.train()
    return hits / len(x)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--epochs", type=int, default=1)
    ap.add_argument("--threads", type=int, default=0)
    ap.add_argument("--target", type=float, default=0.0)
    ap.add_argument("--data", default="/usr/share/datasets/fashion-mnist")
    a = ap.parse_args()
    if a.threads > 0:
        torch.set_num_threads(a.threads)
    torch.manual_seed(0)
    x, y = split(a.data, "train")
    xt, yt = split(a.data, "t10k")
    mean, std = x.mean(), x.std()
    x, xt = (x - mean) / std, (xt - mean) / std
    order = torch.randperm(len(x), generator=torch.Generator().manual_seed(0))
    n_val = len(x) // 10
    xv, yv = x[order[:n_val]], y[order[:n_val]]
    x, y = x[order[n_val:]], y[order[n_val:]]
    loader = DataLoader(TensorDataset(x, y), batch_size=128, shuffle=True)
    model = cnn()
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    testing = 0.0
    epochs, test_acc = a.epochs if a.target == 0 else 50, float("nan")
    for epoch in range(1, epochs + 1):
        model.train()
        for xb, yb in loader:
            opt.zero_grad()
            F.cross_entropy(model(xb), yb).backward()
            opt.step()
        val_acc = accuracy(model, xv, yv)
        if a.target == 0 and epoch < epochs:
            print(f"epoch {epoch}: {time.perf_counter() - START:.1f} s, val accuracy {val_acc:.4f}")
            continue
        t0 = time.perf_counter()
        until_now = t0 - START - testing
        test_acc = accuracy(model, xt, yt)
        if a.target > 0:
            testing += time.perf_counter() - t0
        print(f"epoch {epoch}: {until_now:.1f} s, val accuracy {val_acc:.4f}, "
              f"test accuracy {test_acc:.4f}", flush=True)
        if a.target == 0 or test_acc >= a.target:
            print(f"RESULT epochs={epoch} seconds={until_now:.1f} accuracy={test_acc:.4f}")
            return
    print("RESULT epochs=0 seconds=nan accuracy=nan (the target was not reached)")


if __name__ == "__main__":
    main()
