"""The quick/full switch, the device, and the record of a run.

One environment variable, ``DGM_PROFILE``, picks the profile:

* ``full`` (the default for a person): real data and the training length that
  reaches the chapter's quality target;
* ``quick`` (tests and CI): tiny subsets and few steps, about a minute on two
  CPU cores, no network, every code path a full run takes.

The profile picks sizes, never code paths: settings dataclasses take their
numbers from :func:`pick`.
"""

from __future__ import annotations

import os
import platform
import subprocess
import time
import warnings
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal, TypeVar

import torch

Profile = Literal["quick", "full"]
T = TypeVar("T")

PROFILE_VARIABLE = "DGM_PROFILE"


def profile() -> Profile:
    """The active profile, from ``DGM_PROFILE`` (default ``full``)."""
    value = os.environ.get(PROFILE_VARIABLE, "full").strip().lower()
    if value not in ("quick", "full"):
        raise ValueError(f"{PROFILE_VARIABLE} must be 'quick' or 'full', not {value!r}")
    return value  # type: ignore[return-value]


def pick(quick: T, full: T) -> T:
    """``quick`` in the quick profile, ``full`` in the full one."""
    return quick if profile() == "quick" else full


def progress_enabled() -> bool:
    """Whether loops show progress bars: yes unless ``DGM_PROGRESS=0`` (set for recorded runs and tests)."""
    return os.environ.get("DGM_PROGRESS", "1").strip() not in ("0", "false", "no")


def default_device() -> torch.device:
    """The GPU if there is one, else the CPU (set ``DGM_DEVICE`` to override)."""
    requested = os.environ.get("DGM_DEVICE")
    if requested:
        device = torch.device(requested)
        if device.type == "cuda" and not torch.cuda.is_available():
            raise RuntimeError(f"DGM_DEVICE={requested} asks for a GPU, but PyTorch sees none; unset it to use the CPU")
        return device
    if torch.cuda.is_available():
        return torch.device("cuda")
    if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
        return torch.device("mps")
    return torch.device("cpu")


def run_path(
    name: str, profile_name: str, *, root: Path = Path("."), environment: Mapping[str, str] | None = None
) -> Path:
    """``root/$DGM_RUNS/<name>/<profile_name>`` (``DGM_RUNS`` from ``environment``, default ``runs``), not created."""
    environment = os.environ if environment is None else environment
    return root / environment.get("DGM_RUNS", "runs") / name / profile_name


def run_dir(name: str) -> Path:
    """Where a notebook keeps its checkpoints, created if missing: ``$DGM_RUNS/<name>/<profile>`` (default ``./runs``)."""
    path = run_path(name, profile())
    path.mkdir(parents=True, exist_ok=True)
    return path


def git_commit() -> str:
    """The commit of the checkout this code runs from, or the package version when there is none."""
    try:
        here = Path(__file__).resolve().parent
        commit = subprocess.run(
            ["git", "rev-parse", "--short=10", "HEAD"], cwd=here, capture_output=True, text=True, timeout=5, check=True
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"], cwd=here, capture_output=True, text=True, timeout=5
        ).stdout.strip()
        return commit + ("+changes" if dirty else "")
    except (OSError, subprocess.SubprocessError):
        from dgm import __version__

        return f"dgm {__version__} (no git checkout)"


@dataclass
class RunRecord:
    """What produced a notebook's outputs: profile, device, commit, and wall time so far."""

    profile: Profile
    device: torch.device
    commit: str
    torch_version: str = torch.__version__
    started: float = field(default_factory=time.time)

    def elapsed(self) -> str:
        seconds = time.time() - self.started
        return f"{seconds / 60:.1f} min" if seconds >= 120 else f"{seconds:.0f} s"

    def __str__(self) -> str:
        device = self.device.type
        if device == "cuda":
            device += f" ({torch.cuda.get_device_name(self.device)})"
        else:
            device += f" ({platform.processor() or platform.machine()}, {torch.get_num_threads()} threads)"
        return f"profile={self.profile} · device={device} · torch {self.torch_version} · commit {self.commit}"


def start_run() -> RunRecord:
    """Print the profile, device and commit a notebook runs on; warn on a CPU in the full profile."""
    record = RunRecord(profile(), default_device(), git_commit())
    print(record)
    if record.profile == "full" and record.device.type == "cpu":
        warnings.warn(
            "the full profile on a CPU takes long (see the notebook's recorded wall time); "
            "on Colab pick Runtime → Change runtime type → GPU, or set DGM_PROFILE=quick for a short run",
            stacklevel=2,
        )
    return record
