"""Datasets. All loading lives here; no notebook downloads anything itself.

MNIST comes in two sizes, chosen by the profile (:mod:`dgm.profile`):

* **quick**: a stratified subset bundled with the package (2,000 training and
  500 test images, 10% of them each digit), so tests run with no network and
  no files;
* **full**: the real dataset through torchvision. It is looked for under
  ``$DGM_DATA`` (default ``~/.cache/dgm``), either as torchvision keeps it
  (``MNIST/raw/*-ubyte``) or as the official ``.gz`` files, which are unpacked
  in place; if it is not there it is downloaded. Without a network and without
  the files, the error says how to get them.
"""

from __future__ import annotations

import gzip
import os
import shutil
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Literal

import numpy as np
import torch

from dgm.profile import profile

Split = Literal["train", "test"]

MNIST_FILES = {
    "train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
    "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"),
}


class DatasetNotFoundError(FileNotFoundError):
    """A dataset that is neither on disk nor downloadable; the message says how to get it."""


@dataclass(frozen=True)
class ImageSet:
    """Images as bytes with their labels.

    Attributes:
        images: ``(N, 1, H, W)`` uint8 grey levels 0..255.
        labels: ``(N,)`` int64 class labels.
        source: where the images came from, for the run record.
    """

    images: torch.Tensor
    labels: torch.Tensor
    source: str

    def __len__(self) -> int:
        return self.images.shape[0]

    def floats(self) -> torch.Tensor:
        """``(N, 1, H, W)`` float32 in [0, 1]."""
        return self.images.float() / 255.0

    def subset(self, count: int) -> ImageSet:
        """The first ``count`` images."""
        return ImageSet(self.images[:count], self.labels[:count], f"{self.source}, first {count}")


def data_root() -> Path:
    """``$DGM_DATA``, or ``~/.cache/dgm``."""
    return Path(os.environ.get("DGM_DATA", Path.home() / ".cache" / "dgm")).expanduser()


def load(split: Split = "train", *, root: str | Path | None = None, download: bool = True) -> ImageSet:
    """MNIST digits: the bundled subset in the quick profile, the real set in the full one."""
    if split not in MNIST_FILES:
        raise ValueError(f"split must be 'train' or 'test', not {split!r}")
    if profile() == "quick":
        return subset(split)
    return full(split, root=Path(root) if root is not None else data_root(), download=download)


def subset(split: Split) -> ImageSet:
    """The stratified MNIST subset that ships with ``dgm`` (no network, no files)."""
    with resources.files("dgm.resources").joinpath("mnist_subset.npz").open("rb") as handle:
        arrays = np.load(handle)
        images = torch.from_numpy(arrays[f"{split}_images"].copy()).unsqueeze(1)  # (N, 1, 28, 28)
        labels = torch.from_numpy(arrays[f"{split}_labels"].astype(np.int64))
    return ImageSet(images, labels, f"MNIST {split} subset bundled with dgm ({len(labels)} images)")


def _unpack_gz(root: Path) -> None:
    """Unpack official ``*-ubyte.gz`` files found in ``root`` or ``root/MNIST/raw`` into ``root/MNIST/raw``."""
    raw = root / "MNIST" / "raw"
    for names in MNIST_FILES.values():
        for name in names:
            if (raw / name).exists():
                continue
            for candidate in (raw / f"{name}.gz", root / f"{name}.gz"):
                if candidate.exists():
                    raw.mkdir(parents=True, exist_ok=True)
                    partial = raw / f"{name}.partial"
                    with gzip.open(candidate, "rb") as source, open(partial, "wb") as target:
                        shutil.copyfileobj(source, target)
                    partial.replace(raw / name)
                    break


def full(split: Split, *, root: Path, download: bool = True) -> ImageSet:
    """All of MNIST's ``split`` through torchvision, from ``root`` or downloaded there."""
    from torchvision.datasets import MNIST

    _unpack_gz(root)
    try:
        dataset = MNIST(str(root), train=split == "train", download=download)
    except (RuntimeError, OSError) as error:
        raise DatasetNotFoundError(
            f"MNIST is not under {root} and could not be downloaded ({type(error).__name__}: {error}).\n"
            "Either run where the internet can be reached (it downloads once, about 12 MB), or put the four "
            "official files (train-images-idx3-ubyte.gz, ...) in a folder and set DGM_DATA to it, "
            "or use the quick profile (DGM_PROFILE=quick), which needs no files."
        ) from None
    return ImageSet(dataset.data.unsqueeze(1).clone(), dataset.targets.clone(), f"MNIST {split} ({len(dataset)} images, {root})")


def binarize(images: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
    """Dynamic binarisation: each pixel is 1 with probability equal to its intensity in [0, 1]."""
    return torch.bernoulli(images, generator=generator)


def binarized(batch: torch.Tensor) -> torch.Tensor:
    """Dynamic binarisation of a batch of grey levels: uint8 ``(B, ...)`` → a fresh draw of 0/1 floats ``(B, ...)``.

    The ``transform`` the notebooks pass to :func:`dgm.training.fit`, so each epoch sees new bits.
    """
    if batch.dtype != torch.uint8:
        raise ValueError(f"binarized expects uint8 grey levels 0..255, got {batch.dtype}; binarize takes intensities in [0, 1]")
    return binarize(batch.float() / 255.0)


def dequantize(images: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
    """Uniform dequantisation of uint8 grey levels: ``(x + u) / 256`` with ``u ~ U[0, 1)``, in [0, 1)."""
    noise = torch.rand(images.shape, generator=generator, device=images.device)
    return (images.float() + noise) / 256.0
