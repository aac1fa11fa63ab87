#!/usr/bin/python3
"""Untrained TorchScript models for the diagnosis scenarios (tests/integration/diagnose_scenarios.h),
defined the way PyTorch users write them, made with Debian's python3-torch.

    make_scenario_models.py OUT_DIR [SEED]

Writes to OUT_DIR, each torch.jit.script of a freshly initialized module (initialized under
torch.manual_seed(SEED), 0 by default: each seed of a scenario starts from weights of its own, as
a Python user's script seeded with it would), taking a [N, 1, 28, 28] batch and returning [N, 10]
scores:
  mlp.pt          healthy: Flatten, Linear 784-256, ReLU, Linear 256-128, ReLU, Linear 128-10
  cnn.pt          healthy: two Conv-BatchNorm-ReLU-MaxPool blocks, then a Linear head
  softmax_mlp.pt  a fault: the MLP's forward ends in F.softmax (then fed to cross-entropy)
  sigmoid_cnn.pt  a fault: the CNN's forward ends in torch.sigmoid
"""
import os
import sys

import torch
import torch.nn.functional as F
from torch import nn


class Mlp(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc1 = nn.Linear(784, 256)
        self.fc2 = nn.Linear(256, 128)
        self.out = nn.Linear(128, 10)

    def forward(self, x):
        x = torch.flatten(x, 1)
        x = F.relu(self.fc1(x))
        x = F.relu(self.fc2(x))
        return self.out(x)


class SoftmaxMlp(Mlp):
    def forward(self, x):
        x = torch.flatten(x, 1)
        x = F.relu(self.fc1(x))
        x = F.relu(self.fc2(x))
        return F.softmax(self.out(x), dim=1)


class Cnn(nn.Module):
    def __init__(self):
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(1, 16, 3, padding=1), nn.BatchNorm2d(16), nn.ReLU(), nn.MaxPool2d(2),
            nn.Conv2d(16, 32, 3, padding=1), nn.BatchNorm2d(32), nn.ReLU(), nn.MaxPool2d(2))
        self.head = nn.Linear(32 * 7 * 7, 10)

    def forward(self, x):
        return self.head(torch.flatten(self.features(x), 1))


class SigmoidCnn(Cnn):
    def forward(self, x):
        return torch.sigmoid(self.head(torch.flatten(self.features(x), 1)))


def main():
    out = sys.argv[1]
    seed = int(sys.argv[2]) if len(sys.argv) > 2 else 0
    os.makedirs(out, exist_ok=True)
    for name, cls in [("mlp", Mlp), ("cnn", Cnn), ("softmax_mlp", SoftmaxMlp),
                      ("sigmoid_cnn", SigmoidCnn)]:
        torch.manual_seed(seed)
        module = cls()
        module.eval()
        with torch.no_grad():
            assert module(torch.zeros(2, 1, 28, 28)).shape == (2, 10)
        torch.jit.script(module).save(os.path.join(out, name + ".pt"))


if __name__ == "__main__":
    main()
