"""Write src/dgm/resources/mnist_subset.npz: a stratified MNIST subset for the quick profile.

Usage: python tools/make_mnist_subset.py PATH/TO/MNIST/raw

Takes the first 200 training and 50 test images of each digit, in the original
order. (The training images in the developers' offline copy are rebuilt from a
PNG copy: every pixel within one grey level of the official file.)
"""

import gzip
import sys
from pathlib import Path

import numpy as np


def read_idx(path: Path) -> np.ndarray:
    with gzip.open(path, "rb") as handle:
        data = handle.read()
    dims = data[3]
    shape = tuple(int.from_bytes(data[4 + 4 * i : 8 + 4 * i], "big") for i in range(dims))
    return np.frombuffer(data, dtype=np.uint8, offset=4 + 4 * dims).reshape(shape)


def stratified(images: np.ndarray, labels: np.ndarray, per_class: int) -> tuple[np.ndarray, np.ndarray]:
    keep = np.sort(np.concatenate([np.flatnonzero(labels == digit)[:per_class] for digit in range(10)]))
    return images[keep], labels[keep]


def main(raw: Path) -> None:
    arrays = {}
    for split, prefix, per_class in (("train", "train", 200), ("test", "t10k", 50)):
        images = read_idx(raw / f"{prefix}-images-idx3-ubyte.gz")
        labels = read_idx(raw / f"{prefix}-labels-idx1-ubyte.gz")
        arrays[f"{split}_images"], arrays[f"{split}_labels"] = stratified(images, labels, per_class)
    target = Path(__file__).resolve().parents[1] / "src" / "dgm" / "resources" / "mnist_subset.npz"
    np.savez_compressed(target, **arrays)
    print(f"wrote {target} ({target.stat().st_size / 1e3:.0f} kB)")


if __name__ == "__main__":
    main(Path(sys.argv[1]))
