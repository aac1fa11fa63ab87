#!/usr/bin/python3
"""Training steps of the reference CNN in Python PyTorch per layout and precision (issue 19).

    OPENBLAS_NUM_THREADS=1 step_layouts.py [BATCH=128]

Adam 1e-3, 2 threads, random inputs of Fashion-MNIST's shape, 10 warm-up steps then 60 timed
ones; prints samples/s for: fp32; fp32 channels-last (model.to(memory_format=...), which gives
every 4-D weight NHWC strides); fp32 channels-last by .contiguous() on each weight (which keeps
NCHW strides for the first convolution's one input channel: the mixed-format path); bf16
autocast; bf16 autocast with channels-last.
"""
import sys
import time

import torch
from torch import nn
from torch.nn import functional as F

torch.set_num_threads(2)
BATCH = int(sys.argv[1]) if len(sys.argv) > 1 else 128
X = torch.randn(BATCH * 20, 1, 28, 28)
Y = torch.randint(0, 10, (BATCH * 20,))


def cnn():
    return nn.Sequential(
        nn.Conv2d(1, 32, 3, padding=1), nn.BatchNorm2d(32), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(32, 64, 3, padding=1), nn.BatchNorm2d(64), nn.ReLU(), nn.MaxPool2d(2),
        nn.Flatten(), nn.Linear(64 * 7 * 7, 128), nn.ReLU(), nn.Linear(128, 10))


def samples_per_s(layout, bf16, steps=60):
    torch.manual_seed(0)
    model = cnn()
    if layout == "nhwc":
        model = model.to(memory_format=torch.channels_last)
    elif layout == "contiguous":
        for p in model.parameters():
            if p.dim() == 4:
                p.data = p.contiguous(memory_format=torch.channels_last)
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)

    def step(i):
        j = i % 20
        xb, yb = X[j * BATCH:(j + 1) * BATCH], Y[j * BATCH:(j + 1) * BATCH]
        if layout != "nchw":
            xb = xb.contiguous(memory_format=torch.channels_last)
        opt.zero_grad(set_to_none=True)
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
            loss = F.cross_entropy(model(xb), yb)
        loss.backward()
        opt.step()

    for i in range(10):
        step(i)
    t = time.perf_counter()
    for i in range(steps):
        step(i)
    return steps * BATCH / (time.perf_counter() - t)


for name, layout, bf16 in [("fp32", "nchw", False), ("fp32 channels-last", "nhwc", False),
                           ("fp32 channels-last by .contiguous()", "contiguous", False),
                           ("bf16", "nchw", True), ("bf16 channels-last", "nhwc", True)]:
    print(f"{name}: {samples_per_s(layout, bf16):.0f} samples/s", flush=True)
