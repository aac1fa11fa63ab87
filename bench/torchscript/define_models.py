#!/usr/bin/python3
"""Models defined in Python and saved untrained with torch.jit.script, for
bench/run_torchscript_bench.sh: trainscope trains them from the command line with its defaults.

    define_models.py OUT_DIR

  cnn.pt       the zoo's reference CNN written in Python (conv 32 - BN - ReLU - pool, conv 64 -
               BN - ReLU - pool, linear 128, linear 10), PyTorch's default initialization
  residual.pt  a model the zoo cannot express: a GELU stem, two residual blocks with a skip
               that adds, global average pooling and a LayerNorm before the classifier
"""
import sys

import torch
from torch import nn
import torch.nn.functional as F


class Cnn(nn.Module):
    def __init__(self):
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(1, 32, 3, padding=1), nn.BatchNorm2d(32), nn.ReLU(), nn.MaxPool2d(2),
            nn.Conv2d(32, 64, 3, padding=1), nn.BatchNorm2d(64), nn.ReLU(), nn.MaxPool2d(2))
        self.hidden = nn.Linear(64 * 7 * 7, 128)
        self.fc = nn.Linear(128, 10)

    def forward(self, x):
        return self.fc(F.relu(self.hidden(torch.flatten(self.features(x), 1))))


class Block(nn.Module):
    def __init__(self, channels):
        super().__init__()
        self.a = nn.Conv2d(channels, channels, 3, padding=1)
        self.b = nn.Conv2d(channels, channels, 3, padding=1)
        self.norm = nn.BatchNorm2d(channels)

    def forward(self, x):
        return x + self.norm(self.b(F.gelu(self.a(x))))


class Residual(nn.Module):
    def __init__(self):
        super().__init__()
        self.stem = nn.Conv2d(1, 32, 3, padding=1, stride=2)  # 28 -> 14
        self.blocks = nn.Sequential(Block(32), Block(32))
        self.norm = nn.LayerNorm(32)
        self.fc = nn.Linear(32, 10)

    def forward(self, x):
        h = self.blocks(F.gelu(self.stem(x)))
        return self.fc(self.norm(h.mean(dim=(2, 3))))


if __name__ == "__main__":
    out = sys.argv[1]
    torch.manual_seed(0)
    torch.jit.script(Cnn()).save(f"{out}/cnn.pt")
    torch.jit.script(Residual()).save(f"{out}/residual.pt")
