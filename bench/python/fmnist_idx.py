"""Fashion-MNIST's IDX files (gzip-compressed, as dataset-fashion-mnist installs them) as numpy
arrays, for the bench's Python scripts."""
import gzip

import numpy as np


def read_idx(path):
    """The array of one .idx?-ubyte.gz file: its dimensions from the header, uint8 values."""
    with gzip.open(path, "rb") as f:
        raw = f.read()
    dims = raw[3]
    shape = [int.from_bytes(raw[4 + 4 * i:8 + 4 * i], "big") for i in range(dims)]
    return np.frombuffer(raw, dtype=np.uint8, offset=4 + 4 * dims).reshape(shape)
