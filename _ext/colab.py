"""Where the notebooks come from on Colab, and what they install there (issue 11).

One setting in _config.yml names the repository and one ref (a branch, a tag
or a commit): ``repository.url`` and ``repository.branch``. The launch buttons
open ``<url>/blob/<ref>/<notebook>.ipynb`` (sphinx-book-theme reads the same
two keys), and the first cell of every notebook installs ``dgm`` from
``git+<url>@<ref>`` (``install_cell``, written by tools/sync_colab_cell.py), so
the notebook a student opens and the library it installs come from one commit.
The student edition (tools/build_student.py) names its own repository and ref,
``student_edition.url`` and ``student_edition.branch``, the same way.

As a Sphinx extension it warns, without failing the build, while the
repository is the placeholder below, and it fails the build (a warning under
``-W``) when a page's install cell names another repository or ref than its
launch button.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

from sphinx.application import Sphinx
from sphinx.util import logging

# The URL this repository ships with. Nobody has published the book there: the
# Colab buttons and install cells only work once a publisher sets their own.
PLACEHOLDER_URL = "https://github.com/dgm-course/dgm-book"
FIRST_LINE = "# On Colab, install the course library `dgm`"

logger = logging.getLogger(__name__)


def settings(config: dict, student: bool = False) -> tuple[str, str]:
    """The (repository URL, ref) that a _config.yml names for one edition, checked."""
    repository = config.get("repository") or {}
    url, ref = repository.get("url"), repository.get("branch")
    if student:
        edition = config.get("student_edition") or {}
        url, ref = edition.get("url", url), edition.get("branch")
    where = "student_edition" if student else "repository"
    if not isinstance(url, str) or not re.fullmatch(r"https://github\.com/[\w.-]+/[\w.-]+/?", url):
        raise ValueError(f"_config.yml: {where}.url must be a GitHub repository URL (https://github.com/OWNER/NAME), not {url!r}")
    if not isinstance(ref, str) or not re.fullmatch(r"[\w][\w./-]*", ref) or ".." in ref:
        raise ValueError(f"_config.yml: {where}.branch must name a branch, tag or commit of {url}, not {ref!r}")
    return url.rstrip("/"), ref


def is_placeholder(url: str) -> bool:
    return url.rstrip("/") == PLACEHOLDER_URL


def placeholder_message(url: str) -> str:
    return (
        f"repository.url in _config.yml is still the placeholder {url}: the Colab buttons and the notebooks' "
        "install cells point at a repository that does not exist (README: 'Publishing the book and Colab')"
    )


def install_cell(url: str, ref: str) -> str:
    """The Python source of the first cell of every notebook."""
    return f'''{FIRST_LINE} from the commit this notebook comes from; elsewhere do nothing.
import importlib
import subprocess
import sys

DGM_SOURCE = "git+{url}@{ref}"  # _config.yml: repository.url and repository.branch, as the Colab button


class InstallError(Exception):
    def _render_traceback_(self):  # IPython shows this one line instead of a traceback
        return [f"InstallError: {{self}}"]


if "google.colab" in sys.modules:
    command = [sys.executable, "-m", "pip", "install", "-q", f"dgm @ {{DGM_SOURCE}}"]
    pip = subprocess.run(command, capture_output=True, text=True)
    if pip.returncode != 0:
        lines = [line.strip() for line in pip.stderr.splitlines() if line.strip()]
        reasons = [line for line in lines if line.startswith(("fatal:", "error:")) and "subprocess-exited" not in line]
        reasons += [line for line in lines if line.startswith("ERROR:")] + lines[-1:] + ["no message from pip"]
        raise InstallError(f"could not install dgm from {{DGM_SOURCE}}: {{reasons[0]}}")
    importlib.invalidate_caches()  # so that `import dgm` finds the package just installed'''


def cell_in(path: Path) -> str | None:
    """The install cell's source in a MyST notebook (.md) or a .ipynb, None when it has none."""
    if path.suffix == ".ipynb":
        cells = json.loads(path.read_text()).get("cells", [])
        sources = ["".join(cell["source"]) if isinstance(cell["source"], list) else cell["source"] for cell in cells if cell.get("cell_type") == "code"]
    else:
        sources = re.findall(r"^```\{code-cell\}[^\n]*\n(?::[^\n]*\n)*\n?(.*?)\n```$", path.read_text(), flags=re.S | re.M)
    return next((source.strip() for source in sources if source.startswith(FIRST_LINE)), None)


def warn_while_placeholder(app: Sphinx, config) -> None:
    url = (config.html_theme_options or {}).get("repository_url", "")
    if is_placeholder(url):
        # Not a Sphinx warning: `make book` runs with -W, and a maintainer's build should not fail for it.
        logger.info("WARNING: " + placeholder_message(url), color="red")


def check_install_cell(app: Sphinx, pagename: str, templatename: str, context: dict, doctree: object) -> None:
    """A page whose launch button opens <url>/blob/<ref> must install dgm from git+<url>@<ref>."""
    if doctree is None:
        return
    source = Path(app.env.doc2path(pagename))
    paired = source.with_suffix(".ipynb")
    notebook = paired if paired.is_file() else source
    if notebook.suffix != ".ipynb" and "\nkernelspec:" not in notebook.read_text()[:2000]:
        return
    options = app.config.html_theme_options or {}
    url, ref = options.get("repository_url", "").rstrip("/"), options.get("repository_branch", "main")
    for path in {source, notebook}:
        cell = cell_in(path)
        if cell is None:
            logger.warning(f"{path.name} has no Colab install cell: run `make sync`", location=pagename)
        elif cell != install_cell(url, ref):
            logger.warning(
                f"{path.name}: the Colab install cell does not install from {url}@{ref}, where its launch button "
                "points: run `make sync`",
                location=pagename,
            )


def setup(app: Sphinx) -> dict:
    app.connect("config-inited", warn_while_placeholder)
    app.connect("html-page-context", check_install_cell)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
