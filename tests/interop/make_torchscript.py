#!/usr/bin/python3
"""TorchScript models for tests/integration/torchscript_test.cpp, made with Debian's python3-torch.

    make_torchscript.py OUT_DIR [FASHION_MNIST_DIR]

Trains a small CNN on Fashion-MNIST classes 0-4 for one pass over 5,000 images (a few seconds),
so that its backbone has learned something, and writes to OUT_DIR:
  scripted.pt   torch.jit.script of it (last layer `fc`, a Linear 64 -> 5)
  traced.pt     torch.jit.trace of the same model
  softmax.pt    the same inside a module that ends with a Softmax: its last layer is not a Linear
  inputs.pt, outputs.pt   a batch of 8 test images and the model's logits for it (eval mode)
  stats.txt     the normalization mean and std the model was trained with
"""
import gzip
import os
import sys

import numpy as np
import torch
from torch import nn


def read_idx(path):
    with gzip.open(path, "rb") as f:
        data = f.read()
    dims = data[3]
    shape = [int.from_bytes(data[4 + 4 * i:8 + 4 * i], "big") for i in range(dims)]
    return np.frombuffer(data, dtype=np.uint8, offset=4 + 4 * dims).reshape(shape)


class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(1, 16, 3, padding=1), nn.BatchNorm2d(16), nn.ReLU(), nn.MaxPool2d(2),
            nn.Conv2d(16, 32, 3, padding=1), nn.BatchNorm2d(32), nn.ReLU(), nn.MaxPool2d(2))
        self.pool = nn.AdaptiveAvgPool2d(2)
        self.hidden = nn.Linear(32 * 4, 64)
        self.fc = nn.Linear(64, 5)

    def forward(self, x):
        x = self.pool(self.features(x)).flatten(1)
        return self.fc(torch.relu(self.hidden(x)))


class SoftmaxNet(nn.Module):
    """Net with probabilities out: its last layer is a Softmax, not a Linear."""

    def __init__(self, net):
        super().__init__()
        self.net = net
        self.out = nn.Softmax(dim=1)

    def forward(self, x):
        return self.out(self.net(x))


class TanhRegressor(nn.Module):
    """A regression net whose output goes through torch.tanh in forward itself."""

    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(8, 1)

    def forward(self, x):
        return torch.tanh(self.fc(x))


def main():
    out = sys.argv[1]
    data_dir = sys.argv[2] if len(sys.argv) > 2 else "/usr/share/datasets/fashion-mnist"
    os.makedirs(out, exist_ok=True)
    torch.manual_seed(0)
    x = read_idx(f"{data_dir}/train-images-idx3-ubyte.gz")
    y = read_idx(f"{data_dir}/train-labels-idx1-ubyte.gz").astype(np.int64)
    keep = y < 5
    x = torch.tensor(x[keep][:5000], dtype=torch.float32).unsqueeze(1) / 255
    y = torch.tensor(y[keep][:5000])
    mean, std = x.mean().item(), x.std().item()
    x = (x - mean) / std
    model = Net()
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    model.train()
    for i in range(0, len(x), 64):
        opt.zero_grad()
        nn.functional.cross_entropy(model(x[i:i + 64]), y[i:i + 64]).backward()
        opt.step()
    model.eval()
    xt = read_idx(f"{data_dir}/t10k-images-idx3-ubyte.gz")[:8]
    xt = (torch.tensor(xt, dtype=torch.float32).unsqueeze(1) / 255 - mean) / std
    with torch.no_grad():
        logits = model(xt)
    torch.jit.script(model).save(f"{out}/scripted.pt")
    torch.jit.trace(model, xt).save(f"{out}/traced.pt")
    torch.jit.script(SoftmaxNet(model).eval()).save(f"{out}/softmax.pt")
    # Regression heads that bound their outputs: diagnostics reads the last operation.
    sigmoid = nn.Sequential(nn.Linear(8, 16), nn.ReLU(), nn.Linear(16, 1), nn.Sigmoid())
    torch.jit.script(sigmoid).save(f"{out}/regress_sigmoid.pt")
    torch.jit.script(TanhRegressor()).save(f"{out}/regress_tanh.pt")
    relu = nn.Sequential(nn.Linear(8, 16), nn.ReLU(), nn.Linear(16, 1), nn.ReLU())
    torch.jit.trace(relu, torch.randn(4, 8)).save(f"{out}/regress_relu_traced.pt")
    torch.save(xt, f"{out}/inputs.pt")
    torch.save(logits, f"{out}/outputs.pt")
    with open(f"{out}/stats.txt", "w") as f:
        f.write(f"{mean} {std}\n")
    print(f"wrote {out}: scripted.pt, traced.pt, softmax.pt; mean {mean:.4f} std {std:.4f}")


if __name__ == "__main__":
    main()
