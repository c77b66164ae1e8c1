"""Settings for every test: the quick profile, no progress bars, checkpoints in a temporary folder.

nbval (``--nbval-lax``, in pyproject.toml) runs every notebook under
``testpaths``: the training notebooks in notebooks/ and the derivation pages'
paired notebooks in book/ (kept in sync with their .md by
tests/test_notebooks.py), so a wrong derivation step fails the tests.
"""

import os
import tempfile

os.environ["DGM_PROFILE"] = "quick"
os.environ["DGM_PROGRESS"] = "0"
os.environ.setdefault("DGM_RUNS", tempfile.mkdtemp(prefix="dgm-runs-"))
os.environ.setdefault("MPLBACKEND", "Agg")
