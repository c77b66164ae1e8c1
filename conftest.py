"""Settings for every test: the quick profile, no progress bars, checkpoints in a temporary folder.

nbval (``--nbval-lax``, in pyproject.toml) runs every notebook under
``testpaths``: the training notebooks in notebooks/. The derivation pages in
book/ run once, in the build that tests/test_book.py makes, where a wrong
derivation step fails the build and so the tests; ``pytest book/vi.ipynb``
runs one page's paired notebook (kept in sync with its .md by
tests/test_notebooks.py) under nbval.
"""

import atexit
import os
import shutil
import tempfile

os.environ["DGM_PROFILE"] = "quick"
os.environ["DGM_PROGRESS"] = "0"
if "DGM_RUNS" not in os.environ:
    # Made once, by the first process (pytest-xdist's workers inherit it), and removed
    # when that process ends: the quick runs' checkpoints would otherwise stay in /tmp,
    # about 0.4 GB a run (518 such folders had filled this machine's disk).
    _runs = tempfile.mkdtemp(prefix="dgm-runs-")
    os.environ["DGM_RUNS"] = _runs
    atexit.register(shutil.rmtree, _runs, ignore_errors=True)
os.environ.setdefault("MPLBACKEND", "Agg")
