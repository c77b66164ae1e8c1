"""Notebook pairs stay in sync, carry a Colab cell and a recorded run; the table of contents lists every page."""

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
