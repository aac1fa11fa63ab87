#!/usr/bin/python3
"""Reference numbers for tests/integration/torchscript_reference_test.cpp, made with Debian's
python3-torch: a model defined here, trained one step in Python, that trainscope must reproduce.

    make_reference.py OUT_DIR

Writes to OUT_DIR:
  model.pt        torch.jit.script of the model, saved before any training step
  *.bin           raw little-endian arrays (C-order): the batch x (float32) and y (int64), the
                  train-mode outputs (float32), each parameter's gradient (float32) and each
                  buffer after the step (BatchNorm's running statistics)
  two_inputs.pt   torch.jit.script of a model whose forward takes (x, features, scale=2.0)
  activations.pt  torch.jit.script of a model with functional activations: relu, then tanh
  reference.json  every .bin's file, dtype and shape, the loss (a double, repr precision), the
                  gradients by their named_parameters() names and the buffers by theirs, and
                  under "two_inputs" its inputs and eval-mode outputs
"""
import json
import os
import sys

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F


class Net(nn.Module):
    """Not a zoo model: BatchNorm in train mode, tanh, max-pooling, ELU and a functional sigmoid
    gate in forward, so both the module graph and inlined tensor code must match."""

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(1, 4, 3, padding=1)
        self.bn = nn.BatchNorm2d(4)
        self.hidden = nn.Linear(4 * 14 * 14, 32)
        self.gate = nn.Linear(4 * 14 * 14, 32)
        self.fc = nn.Linear(32, 10)

    def forward(self, x):
        x = F.max_pool2d(torch.tanh(self.bn(self.conv(x))), 2).flatten(1)
        return self.fc(F.elu(self.hidden(x)) * torch.sigmoid(self.gate(x)))


class TwoInputs(nn.Module):
    """Images and tabular features; `scale` has a default, so a batch may leave it out."""

    def __init__(self):
        super().__init__()
        self.image = nn.Linear(28 * 28, 8)
        self.tabular = nn.Linear(3, 8)
        self.fc = nn.Linear(8, 10)

    def forward(self, x, features, scale: float = 2.0):
        return self.fc(torch.relu(self.image(x.flatten(1)) + scale * self.tabular(features)))


class Functional(nn.Module):
    """Activations as calls in forward, not modules: only the graph shows them."""

    def __init__(self):
        super().__init__()
        self.a = nn.Linear(28 * 28, 16)
        self.b = nn.Linear(16, 10)

    def forward(self, x):
        return self.b(torch.tanh(F.relu(self.a(x.flatten(1)))))


def write(out_dir, name, tensor, dtype):
    """Raw bytes with an explicit byte order, so C++ reads them with a plain ifstream."""
    array = tensor.detach().cpu().contiguous().numpy().astype(dtype)
    file = name + ".bin"
    array.tofile(os.path.join(out_dir, file))
    return {"file": file, "dtype": np.dtype(dtype).name, "shape": list(array.shape)}


def main():
    out_dir = sys.argv[1]
    os.makedirs(out_dir, exist_ok=True)
    torch.manual_seed(0)
    model = Net()
    # Saved untrained: C++ must start from exactly these weights (and BatchNorm statistics).
    torch.jit.script(model).save(os.path.join(out_dir, "model.pt"))

    x = torch.rand(8, 1, 28, 28)
    y = torch.randint(0, 10, (8,))
    # The eager model, not the scripted one: the claim is "as in Python", not "as TorchScript".
    model.train()
    output = model(x)
    loss = F.cross_entropy(output, y)
    loss.backward()

    torch.jit.script(Functional()).save(os.path.join(out_dir, "activations.pt"))
    two = TwoInputs().eval()
    torch.jit.script(two).save(os.path.join(out_dir, "two_inputs.pt"))
    features = torch.randn(8, 3)
    with torch.no_grad():
        two_out = two(x, features)

    ref = {
        "x": write(out_dir, "x", x, "<f4"),
        "y": write(out_dir, "y", y, "<i8"),
        "output": write(out_dir, "output", output, "<f4"),
        # json writes floats with repr: the double round-trips exactly.
        "loss": loss.item(),
        "gradients": {name: write(out_dir, "grad." + name, p.grad, "<f4")
                      for name, p in model.named_parameters()},
        # After the train-mode forward: BatchNorm's running statistics moved by one batch.
        "buffers": {name: write(out_dir, "buffer." + name, b,
                                "<f4" if b.is_floating_point() else "<i8")
                    for name, b in model.named_buffers()},
        "two_inputs": {"features": write(out_dir, "features", features, "<f4"),
                       "output": write(out_dir, "two_output", two_out, "<f4")},
    }
    with open(os.path.join(out_dir, "reference.json"), "w") as f:
        json.dump(ref, f, indent=1)


if __name__ == "__main__":
    main()
