"""Data: the bundled subset, the full loader from local files, and a clear error when data is missing."""

import gzip
import struct

import numpy as np
import pytest
import torch

from dgm.data import mnist


def test_quick_profile_uses_the_bundled_subset():
    train, test = mnist.load("train"), mnist.load("test")
    assert train.images.shape == (2000, 1, 28, 28) and train.images.dtype == torch.uint8
    assert test.images.shape == (500, 1, 28, 28)
    assert torch.bincount(train.labels).tolist() == [200] * 10
    assert "bundled" in train.source
    assert 0.0 <= train.floats().min() and train.floats().max() <= 1.0


def write_idx(path, array: np.ndarray) -> None:
    header = struct.pack(">I", 0x0800 | array.ndim) + b"".join(struct.pack(">I", n) for n in array.shape)
    with gzip.open(path, "wb") as handle:
        handle.write(header + array.astype(np.uint8).tobytes())


def test_full_loader_reads_official_gz_files(tmp_path):
    rng = np.random.default_rng(0)
    for prefix, count in (("train", 12), ("t10k", 5)):
        write_idx(tmp_path / f"{prefix}-images-idx3-ubyte.gz", rng.integers(0, 256, (count, 28, 28)))
        write_idx(tmp_path / f"{prefix}-labels-idx1-ubyte.gz", rng.integers(0, 10, count))
    train = mnist.full("train", root=tmp_path, download=False)
    test = mnist.full("test", root=tmp_path, download=False)
    assert train.images.shape == (12, 1, 28, 28) and test.images.shape == (5, 1, 28, 28)
    assert (tmp_path / "MNIST" / "raw" / "train-images-idx3-ubyte").exists()


def test_missing_dataset_is_one_clear_message(tmp_path, monkeypatch):
    monkeypatch.setenv("DGM_PROFILE", "full")
    monkeypatch.setenv("DGM_DATA", str(tmp_path))
    with pytest.raises(mnist.DatasetNotFoundError) as error:
        mnist.load("train", download=False)
    message = str(error.value)
    assert str(tmp_path) in message and "DGM_DATA" in message and "DGM_PROFILE=quick" in message


def test_bad_split():
    with pytest.raises(ValueError, match="split"):
        mnist.load("validation")  # type: ignore[arg-type]


def test_binarize_and_dequantize():
    generator = torch.Generator().manual_seed(0)
    probabilities = torch.full((20_000,), 0.3)
    assert mnist.binarize(probabilities, generator).mean().item() == pytest.approx(0.3, abs=0.01)
    levels = torch.tensor([0, 255], dtype=torch.uint8).repeat(1000)
    values = mnist.dequantize(levels, generator)
    assert values.min() >= 0 and values.max() < 1
    assert ((values * 256).floor() == levels.float()).all()


def test_binarized_draws_fresh_bits_from_grey_levels():
    levels = torch.tensor([0, 255, 128], dtype=torch.uint8).repeat(20_000, 1)  # (20000, 3)
    torch.manual_seed(0)
    bits = mnist.binarized(levels)
    assert bits.dtype == torch.float32 and bits.shape == levels.shape
    assert (bits[:, 0] == 0).all() and (bits[:, 1] == 1).all()
    assert bits[:, 2].mean().item() == pytest.approx(128 / 255, abs=0.01)
    assert not torch.equal(mnist.binarized(levels), bits)  # a new draw each call
    with pytest.raises(ValueError, match="uint8"):
        mnist.binarized(levels.float() / 255.0)
