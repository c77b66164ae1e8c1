"""Notebook pairs stay in sync, carry a Colab cell and a recorded run; the table of contents lists every page."""

import os
import subprocess
import sys
from pathlib import Path

import jupytext
import nbformat
import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tools"))
from sync_colab_cell import notebook_sources  # noqa: E402  (the one rule for which .md files are notebooks)

PAIRS = notebook_sources()
TRAINING = [p for p in PAIRS if p.parent.name == "notebooks"]


def cells(notebook) -> list[tuple[str, str]]:
    return [(cell.cell_type, cell.source.strip()) for cell in notebook.cells]


@pytest.mark.parametrize("markdown", PAIRS, ids=lambda p: f"{p.parent.name}/{p.stem}")
def test_pair_is_in_sync(markdown: Path):
    paired = markdown.with_suffix(".ipynb")
    assert paired.exists(), f"{paired.name} is missing: run `make sync`"
    assert cells(jupytext.read(markdown)) == cells(jupytext.read(paired)), (
        f"{markdown.name} and {paired.name} differ: edit the .md, then run `make sync`"
    )


def test_an_out_of_sync_pair_is_detected(tmp_path):
    markdown = TRAINING[0]
    notebook = jupytext.read(markdown.with_suffix(".ipynb"))
    notebook.cells[3].source += "\nprint('edited only in the ipynb')"
    assert cells(jupytext.read(markdown)) != cells(notebook)


def test_colab_cells_match_the_configured_repository():
    result = subprocess.run([sys.executable, str(ROOT / "tools" / "sync_colab_cell.py"), "--check"], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout


@pytest.mark.parametrize("markdown", TRAINING, ids=lambda p: p.stem)
def test_notebook_shows_a_recorded_run(markdown: Path):
    notebook = nbformat.read(markdown.with_suffix(".ipynb"), as_version=4)
    record = notebook.metadata.get("dgm_run")
    assert record, "no recorded run: record one with `make record NB=...`"
    assert record["profile"] in ("quick", "full") and record["commit"] and record["wall_time_s"] > 0
    code = [cell for cell in notebook.cells if cell.cell_type == "code" and "remove-cell" not in cell.metadata.get("tags", [])]
    assert all(cell.get("execution_count") for cell in code), "some cells were not run"
    assert not any(output.output_type == "error" for cell in code for output in cell.outputs)
    first_output = "".join(o.get("text", "") for o in code[0].outputs)
    assert f"profile={record['profile']}" in first_output


def test_table_of_contents_lists_every_page_and_notebook():
    toc = yaml.safe_load((ROOT / "_toc.yml").read_text())
    listed = set()

    def walk(entries):
        for entry in entries:
            listed.add(entry["file"])
            walk(entry.get("sections", []))

    for part in toc["parts"]:
        walk(part["chapters"])
    pages = {f"book/{p.stem}" for p in (ROOT / "book").glob("*.md")} | {f"notebooks/{p.stem}" for p in TRAINING}
    assert pages - {toc["root"]} <= listed


# --- Colab (issue 11): one repository and ref for the launch buttons and the install cells ---------------------------

sys.path.insert(0, str(ROOT / "_ext"))
from colab import PLACEHOLDER_URL, cell_in, install_cell  # noqa: E402
from sync_colab_cell import configured  # noqa: E402

ALL_NOTEBOOKS = PAIRS + sorted({*ROOT.glob("book/*.ipynb"), *ROOT.glob("notebooks/*.ipynb")})


@pytest.mark.parametrize("notebook", ALL_NOTEBOOKS, ids=lambda p: f"{p.parent.name}/{p.name}")
def test_every_notebook_installs_dgm_from_the_configured_repository_and_ref(notebook: Path):
    """The .md and the .ipynb Colab opens install git+<repository.url>@<repository.branch>: the launch button's commit."""
    url, ref = configured()
    assert cell_in(notebook) == install_cell(url, ref), f"{notebook.name}: run `make sync`"
    assert f'DGM_SOURCE = "git+{url}@{ref}"' in install_cell(url, ref)


def test_the_setting_drives_the_launch_buttons():
    """Jupyter Book's launch buttons read the same two keys (repository.url, repository.branch) as the install cell."""
    from jupyter_book.config import get_final_config

    config = yaml.safe_load((ROOT / "_config.yml").read_text())
    sphinx, _ = get_final_config(user_yaml=config, cli_config={"latex_individualpages": False}, sourcedir=ROOT)
    url, ref = configured()
    assert (sphinx["html_theme_options"]["repository_url"], sphinx["html_theme_options"]["repository_branch"]) == (url, ref)
    assert sphinx["html_theme_options"]["launch_buttons"]["colab_url"] == "https://colab.research.google.com"


def test_a_bad_setting_is_refused():
    from colab import settings

    with pytest.raises(ValueError, match="repository.url must be a GitHub repository URL"):
        settings({"repository": {"url": "gitlab.com/x/y", "branch": "main"}})
    with pytest.raises(ValueError, match="repository.branch must name a branch"):
        settings({"repository": {"url": "https://github.com/x/y", "branch": "a b"}})
    assert settings({"repository": {"url": "https://github.com/x/y/", "branch": "v1.0"}}) == ("https://github.com/x/y", "v1.0")
    assert settings({"repository": {"url": "https://github.com/x/y", "branch": "main"}, "student_edition": {"branch": "student"}}, student=True) == (
        "https://github.com/x/y", "student",
    )


def run_install_cell(source: str, colab: bool) -> subprocess.CompletedProcess:
    """Run an install cell in an IPython shell, as Colab would (a google.colab module loaded) or not."""
    script = (
        "import sys, types\n"
        + ("sys.modules['google.colab'] = types.ModuleType('google.colab')\n" if colab else "")
        + "from IPython.core.interactiveshell import InteractiveShell\n"
        + f"InteractiveShell.instance().run_cell({source!r})\n"
    )
    return subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=300)


def test_the_install_cell_does_nothing_off_colab():
    url, ref = configured()
    source = cell_in(PAIRS[0]).replace("import subprocess\n", "import subprocess\nsubprocess.run = None  # pip must not run\n")
    result = run_install_cell(source, colab=False)
    assert result.returncode == 0 and result.stdout.strip() == "" and result.stderr.strip() == "", result.stdout + result.stderr


@pytest.mark.parametrize("problem", ["no such ref", "no such repository"])
def test_a_failed_install_says_why_in_one_line(tmp_path, problem):
    """On Colab, a ref or repository that does not exist stops the notebook with one line naming git's reason."""
    repository = tmp_path / "dgm-book"
    repository.mkdir()
    git = ["git", "-C", str(repository), "-c", "user.name=t", "-c", "user.email=t@t"]
    subprocess.run([*git, "init", "-q"], check=True)
    (repository / "README.md").write_text("not dgm\n")
    subprocess.run([*git, "add", "README.md"], check=True)
    subprocess.run([*git, "commit", "-q", "-m", "one commit"], check=True)
    url, ref = configured()
    source = f"git+file://localhost{repository}@no-such-ref" if problem == "no such ref" else f"git+file://localhost{tmp_path}/missing@main"
    cell = cell_in(PAIRS[0]).replace(f"git+{url}@{ref}", source)
    result = run_install_cell(cell, colab=True)
    lines = [line for line in (result.stdout + result.stderr).splitlines() if line.strip()]
    assert len(lines) == 1, lines
    reason = "error: pathspec 'no-such-ref' did not match" if problem == "no such ref" else "does not appear to be a git repository"
    assert lines[0].startswith(f"InstallError: could not install dgm from {source}: ") and reason in lines[0], lines[0]


def test_sync_warns_while_the_url_is_the_placeholder():
    result = subprocess.run([sys.executable, str(ROOT / "tools" / "sync_colab_cell.py"), "--check"], capture_output=True, text=True)
    url, _ = configured()
    assert ("still the placeholder" in result.stderr) == (url == PLACEHOLDER_URL)


# --- recordings (issue 11): the CPU warning is advice to a reader, not part of a recorded run ---------------------------

from record_run import CPU_WARNING_OUTPUT, drop_cpu_warning, recording_environment, set_aside_checkpoints  # noqa: E402


def test_a_recording_kernel_ignores_the_cpu_warning_and_only_it():
    code = "import warnings; from dgm.profile import start_run; start_run(); warnings.warn('another warning')"
    plain = os.environ | {"DGM_PROFILE": "full", "DGM_DEVICE": "cpu"}
    shown = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=plain)
    recorded = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=recording_environment("full", plain))
    assert shown.returncode == recorded.returncode == 0, shown.stderr + recorded.stderr
    assert "UserWarning: the full profile on a CPU" in shown.stderr and CPU_WARNING_OUTPUT.search(shown.stderr)
    assert "full profile on a CPU" not in recorded.stderr and "UserWarning: another warning" in recorded.stderr


def test_drop_cpu_warning_removes_only_outputs_that_are_the_warning(tmp_path):
    warning = "/tmp/ipykernel_1/2.py:9: UserWarning: the full profile on a CPU takes long (see ...)\n  run = start_run()\n"
    notebook = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell("run = start_run()")])
    notebook.cells[0].outputs = [
        nbformat.v4.new_output("stream", name="stdout", text="profile=full\n"),
        nbformat.v4.new_output("stream", name="stderr", text=warning),
        nbformat.v4.new_output("stream", name="stderr", text=warning + "something else\n"),
    ]
    path = tmp_path / "n.ipynb"
    nbformat.write(notebook, path)
    assert drop_cpu_warning(path) == 1
    assert [o.text for o in nbformat.read(path, as_version=4).cells[0].outputs] == ["profile=full\n", warning + "something else\n"]


@pytest.mark.parametrize("markdown", TRAINING, ids=lambda p: p.stem)
def test_no_recorded_output_carries_the_cpu_warning(markdown: Path):
    notebook = nbformat.read(markdown.with_suffix(".ipynb"), as_version=4)
    texts = [output.get("text", "") for cell in notebook.cells if cell.cell_type == "code" for output in cell.outputs]
    assert not any("the full profile on a CPU" in text for text in texts), "record with tools/record_run.py, or run its --drop-cpu-warning"


def test_a_recording_trains_afresh_and_keeps_the_earlier_checkpoints_aside(tmp_path):
    """A stale checkpoint (an earlier run's, other steps or settings) would be resumed as if the recording had
    trained it: record_run moves the notebook's own run folder aside first, and leaves other notebooks' alone."""
    notebook = tmp_path / "notebooks" / "gan_mixtures.ipynb"
    own, other = tmp_path / "notebooks" / "runs" / "gan_mixtures" / "full", tmp_path / "notebooks" / "runs" / "ddpm_mnist" / "full"
    for folder in (own, other):
        folder.mkdir(parents=True)
        (folder / "model.pt").write_bytes(b"weights")
    quick = own.with_name("quick")
    quick.mkdir()
    (quick / "model.pt").write_bytes(b"quick weights")
    aside = set_aside_checkpoints(notebook, "full", {})
    assert aside is not None and aside.parent == own.parent and aside.name.startswith("full-before-")
    assert (aside / "model.pt").read_bytes() == b"weights" and not own.exists()
    assert (other / "model.pt").exists() and (quick / "model.pt").exists()  # another notebook's, another profile's
    assert set_aside_checkpoints(notebook, "full", {}) is None  # nothing left to move
    elsewhere = tmp_path / "elsewhere"
    (elsewhere / "gan_mixtures" / "full").mkdir(parents=True)
    (elsewhere / "gan_mixtures" / "full" / "model.pt").write_bytes(b"x")
    moved = set_aside_checkpoints(notebook, "full", {"DGM_RUNS": str(elsewhere)})
    assert moved is not None and moved.parent == elsewhere / "gan_mixtures"
