r"""CelebA faces, optional: for users who have the files (chapter "The variational autoencoder", book/vae.md).

CelebA {cite}`liu2015celeba` holds 202,599 aligned 178×218 photographs of faces, each
labelled with 40 binary attributes ("Smiling", "Eyeglasses", …). It is loaded
through torchvision's ``CelebA`` with ``download=False``: torchvision fetches it
from Google Drive, whose download quota usually refuses, so this module never
tries. Put the files under ``$DGM_DATA/celeba/`` (``img_align_celeba/`` with the
JPEGs, and ``list_attr_celeba.txt``, ``list_eval_partition.txt``,
``identity_CelebA.txt``, ``list_bbox_celeba.txt``,
``list_landmarks_align_celeba.txt``); without them :func:`load` raises one
:class:`~dgm.data.mnist.DatasetNotFoundError` that says so.

The images are cut to the central 148×148 square (the face) and resized to
``size``×``size``, as most VAE and GAN papers do for 64×64 CelebA.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import torch

from dgm.data.mnist import DatasetNotFoundError, data_root

Split = Literal["train", "valid", "test"]

FILES = (
    "img_align_celeba/",
    "list_attr_celeba.txt",
    "list_eval_partition.txt",
    "identity_CelebA.txt",
    "list_bbox_celeba.txt",
    "list_landmarks_align_celeba.txt",
)
CROP = 148  # the central square of the 178×218 aligned images that holds the face


@dataclass(frozen=True)
class FaceSet:
    """Faces with their attribute labels.

    Attributes:
        images: ``(N, 3, size, size)`` uint8, 0..255.
        attributes: ``(N, 40)`` int64 in {0, 1}.
        names: the 40 attribute names, in the columns' order (``"Smiling"``, …).
        source: where the images came from, for the run record.
    """

    images: torch.Tensor
    attributes: torch.Tensor
    names: tuple[str, ...]
    source: str

    def __len__(self) -> int:
        return self.images.shape[0]

    def floats(self) -> torch.Tensor:
        """``(N, 3, size, size)`` float32 in [0, 1]."""
        return self.images.float() / 255.0

    def attribute(self, name: str) -> torch.Tensor:
        """The ``(N,)`` boolean labels of one attribute, e.g. ``"Smiling"``."""
        if name not in self.names:
            raise ValueError(f"CelebA has no attribute {name!r}; it has {', '.join(self.names)}")
        return self.attributes[:, self.names.index(name)].bool()


def missing_message(root: Path) -> str:
    """The one message a user without CelebA sees: where it was looked for and how to get it."""
    return (
        f"CelebA is not under {root / 'celeba'} (or is incomplete), and it is not downloaded automatically: "
        "torchvision fetches it from Google Drive, whose quota usually refuses. To use it, get img_align_celeba.zip "
        "and the five list files from https://mmlab.ie.cuhk.edu.hk/projects/CelebA.html, put them in "
        f"{root / 'celeba'}/ as {', '.join(FILES)} (unzip the images there), and set DGM_DATA to {root} "
        "(or the folder that holds celeba/)."
    )


def load(split: Split = "train", *, root: str | Path | None = None, size: int = 64, count: int | None = None) -> FaceSet:
    """The first ``count`` faces of CelebA's ``split`` (all of it when ``None``), at ``size``×``size``.

    Raises :class:`~dgm.data.mnist.DatasetNotFoundError`, with :func:`missing_message`, when the files are not there.
    """
    if split not in ("train", "valid", "test"):
        raise ValueError(f"split must be 'train', 'valid' or 'test', not {split!r}")
    if size < 1 or size > CROP or (count is not None and count < 1):
        raise ValueError(f"need 1 <= size <= {CROP} and a positive count, got size={size}, count={count}")
    from torchvision import transforms
    from torchvision.datasets import CelebA

    root = Path(root) if root is not None else data_root()
    transform = transforms.Compose([transforms.CenterCrop(CROP), transforms.Resize(size, antialias=True), transforms.PILToTensor()])
    try:
        dataset = CelebA(str(root), split=split, target_type="attr", transform=transform, download=False)
    except (RuntimeError, OSError):  # torchvision's 'Dataset not found or corrupted', or an unreadable file
        raise DatasetNotFoundError(missing_message(root)) from None
    count = len(dataset) if count is None else min(count, len(dataset))
    images = torch.stack([dataset[index][0] for index in range(count)])  # (N, 3, size, size) uint8
    attributes = dataset.attr[:count].long()  # (N, 40) in {0, 1}
    names = tuple(name for name in dataset.attr_names if name)  # torchvision's header may end with an empty name
    return FaceSet(images, attributes, names, f"CelebA {split}, first {count} of {len(dataset)} ({root})")
