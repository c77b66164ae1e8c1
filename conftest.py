"""Test settings, and nbval over the book's pages.

Every test runs in the quick profile with progress bars off and checkpoints in
a temporary folder. The training notebooks in notebooks/ are collected by
nbval directly (``--nbval-lax``: a cell fails the test only if it raises). The
derivation pages in book/ are MyST text; each is converted with jupytext to a
notebook under _build/test-pages and run by nbval the same way, so a wrong
derivation step fails the tests.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import jupytext
import nbformat
import pytest
from nbval.plugin import IPyNbFile

ROOT = Path(__file__).resolve().parent
os.environ["DGM_PROFILE"] = "quick"
os.environ["DGM_PROGRESS"] = "0"
os.environ.setdefault("DGM_RUNS", tempfile.mkdtemp(prefix="dgm-runs-"))
os.environ.setdefault("MPLBACKEND", "Agg")


def is_executable_page(path: Path) -> bool:
    """A book/ page that is a MyST notebook (it names a kernel)."""
    return path.suffix == ".md" and path.parent == ROOT / "book" and "kernelspec:" in path.read_text()[:600]


def pytest_collect_file(file_path: Path, parent: pytest.Collector) -> pytest.Collector | None:
    if not is_executable_page(file_path):
        return None
    target = ROOT / "_build" / "test-pages" / f"{file_path.stem}.ipynb"
    target.parent.mkdir(parents=True, exist_ok=True)
    nbformat.write(jupytext.read(file_path), target)
    return IPyNbFile.from_parent(parent, path=target)
