#!/usr/bin/python3
"""Interop check for `trainscope export`: Debian's python3-torch reads the exported state dict.

    check_export.py STATE_DICT INPUTS OUTPUTS

STATE_DICT is the file `trainscope export` wrote for the reference CNN (1x28x28 inputs, 10
classes); INPUTS and OUTPUTS are tensors the C++ side saved with torch::pickle_save: a batch
and the C++ model's logits for it (eval mode). The same architecture is built here with
torch.nn, loaded strictly (every key present, none extra, every shape equal) and run on INPUTS;
its logits must match the C++ ones. Exit status 0 when they do; the reason otherwise.
"""
import sys

import torch
from torch import nn


def reference_cnn():
    # trainscope's cnn with its defaults: channels [32, 64], hidden [128], 10 outputs.
    return nn.Sequential(
        nn.Conv2d(1, 32, 3, padding=1), nn.BatchNorm2d(32), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(32, 64, 3, padding=1), nn.BatchNorm2d(64), nn.ReLU(), nn.MaxPool2d(2),
        nn.Flatten(), nn.Linear(64 * 7 * 7, 128), nn.ReLU(), nn.Linear(128, 10))


def main():
    state_path, inputs_path, outputs_path = sys.argv[1:4]
    state = torch.load(state_path)
    if not isinstance(state, dict):
        sys.exit(f"{state_path}: torch.load gave a {type(state).__name__}, not a dict")
    model = reference_cnn()
    expected_keys = set(model.state_dict().keys())
    if set(state.keys()) != expected_keys:
        sys.exit(f"keys differ: missing {sorted(expected_keys - set(state))}, "
                 f"extra {sorted(set(state) - expected_keys)}")
    model.load_state_dict(state, strict=True)
    model.eval()
    x = torch.load(inputs_path)
    want = torch.load(outputs_path)
    with torch.no_grad():
        got = model(x)
    if not torch.allclose(got, want, atol=1e-5, rtol=1e-5):
        sys.exit(f"logits differ: max |diff| {(got - want).abs().max().item():.3g}")
    print(f"ok: {len(state)} tensors, {sum(v.numel() for v in state.values())} values; "
          f"logits of {x.shape[0]} inputs match within 1e-5")


if __name__ == "__main__":
    main()
