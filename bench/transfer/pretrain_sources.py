#!/usr/bin/python3
"""Source models for the transfer-learning bench (issue 16), defined and pretrained in Python.

    pretrain_sources.py OUT_DIR [--epochs-cnn 3] [--epochs-resnet 2] [--only cnn|resnet]
                        [--data /usr/share/datasets/fashion-mnist]

Each model is trained on Fashion-MNIST classes 0-4 (T-shirt, Trouser, Pullover, Dress, Coat:
30,000 training images) on raw [0, 1] inputs with no normalization, the way a user who never
wrote down their preprocessing would, then saved with torch.jit.script:
  cnn.pt       a small CNN (two conv blocks with BatchNorm, a 128-unit hidden layer, `fc` 128 -> 5)
  resnet18.pt  torchvision's ResNet-18 with a 1-channel stem (conv1 1 -> 64), `fc` 512 -> 5
Prints each model's accuracy on the 5,000 test images of classes 0-4 and its training time.
Seeded (torch.manual_seed(0)); Debian's python3-torch and python3-torchvision.
"""
import argparse
import os
import sys
import time

import numpy as np
import torch
import torchvision
from torch import nn

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "python"))
from fmnist_idx import read_idx  # noqa: E402


def classes_0_4(data_dir, split):
    prefix = "train" if split == "train" else "t10k"
    x = read_idx(f"{data_dir}/{prefix}-images-idx3-ubyte.gz")
    y = read_idx(f"{data_dir}/{prefix}-labels-idx1-ubyte.gz").astype(np.int64)
    keep = y < 5
    # Raw [0, 1]: the only preprocessing.
    return (torch.tensor(x[keep], dtype=torch.float32).unsqueeze(1) / 255,
            torch.tensor(y[keep]))


class SmallCnn(nn.Module):
    def __init__(self, classes=5):
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(1, 32, 3, padding=1), nn.BatchNorm2d(32), nn.ReLU(), nn.MaxPool2d(2),
            nn.Conv2d(32, 64, 3, padding=1), nn.BatchNorm2d(64), nn.ReLU(), nn.MaxPool2d(2))
        self.hidden = nn.Linear(64 * 7 * 7, 128)
        self.drop = nn.Dropout(0.25)
        self.fc = nn.Linear(128, classes)

    def forward(self, x):
        x = self.features(x).flatten(1)
        return self.fc(self.drop(torch.relu(self.hidden(x))))


def resnet18_1ch(classes=5):
    model = torchvision.models.resnet18(num_classes=classes)
    model.conv1 = nn.Conv2d(1, 64, kernel_size=7, stride=2, padding=3, bias=False)
    return model


def train(model, x, y, epochs, batch=128):
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    gen = torch.Generator().manual_seed(0)
    model.train()
    for _ in range(epochs):
        order = torch.randperm(len(x), generator=gen)
        for i in range(0, len(x), batch):
            at = order[i:i + batch]
            opt.zero_grad()
            nn.functional.cross_entropy(model(x[at]), y[at]).backward()
            opt.step()


def accuracy(model, x, y):
    model.eval()
    with torch.no_grad():
        hits = sum((model(x[i:i + 1000]).argmax(1) == y[i:i + 1000]).sum().item()
                   for i in range(0, len(x), 1000))
    return hits / len(x)


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("out")
    p.add_argument("--epochs-cnn", type=int, default=3)
    p.add_argument("--epochs-resnet", type=int, default=2)
    p.add_argument("--only", choices=["cnn", "resnet"])
    p.add_argument("--data", default="/usr/share/datasets/fashion-mnist")
    a = p.parse_args()
    os.makedirs(a.out, exist_ok=True)
    torch.set_num_threads(os.cpu_count() or 1)
    x, y = classes_0_4(a.data, "train")
    xt, yt = classes_0_4(a.data, "test")
    todo = [("cnn", SmallCnn, a.epochs_cnn), ("resnet18", resnet18_1ch, a.epochs_resnet)]
    for name, make, epochs in todo:
        if a.only and not name.startswith(a.only):
            continue
        torch.manual_seed(0)
        model = make()
        start = time.time()
        train(model, x, y, epochs)
        seconds = time.time() - start
        acc = accuracy(model, xt, yt)
        torch.jit.script(model.eval()).save(f"{a.out}/{name}.pt")
        print(f"{name}.pt: {epochs} epochs on classes 0-4 (raw [0, 1] inputs) in {seconds:.0f} s, "
              f"test accuracy {acc:.4f}", flush=True)


if __name__ == "__main__":
    main()
