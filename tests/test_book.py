"""Builds: a wrong derivation step fails a book build, and the student edition carries no solution."""

import re
import shutil
import subprocess
import sys
from html.parser import HTMLParser
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
JUPYTER_BOOK = str(Path(sys.executable).parent / "jupyter-book")

PAGE = """\
---
jupytext:
  text_representation:
    format_name: myst
kernelspec:
  display_name: Python 3
  language: python
  name: python3
---

# A page

```{{code-cell}} ipython3
import sympy as sp
from dgm.derivations.derive import Derivation

x = sp.Symbol("x", real=True)
Derivation((x + 1) ** 2).eq({step}, "expand the square")
```
"""


def build_tiny_book(folder: Path, step: str) -> subprocess.CompletedProcess:
    (folder / "_config.yml").write_text("title: t\nexecute:\n  execute_notebooks: force\n")
    (folder / "_toc.yml").write_text("format: jb-book\nroot: page\n")
    (folder / "page.md").write_text(PAGE.format(step=step))
    return subprocess.run([JUPYTER_BOOK, "build", str(folder), "-W", "-n"], capture_output=True, text=True)


def test_a_wrong_derivation_step_fails_the_build(tmp_path):
    good, bad = tmp_path / "good", tmp_path / "bad"
    good.mkdir()
    bad.mkdir()
    assert build_tiny_book(good, "x**2 + 2*x + 1").returncode == 0
    result = build_tiny_book(bad, "x**2 + 2*x - 1")
    assert result.returncode != 0
    reports = "".join(log.read_text() for log in (bad / "_build" / "html" / "reports").rglob("*.log"))
    assert "StepError" in reports and "step 1 (expand the square)" in reports


def solution_probes() -> list[str]:
    """From each solution in book/, a stretch of plain prose (no math, no code) to look for in the HTML."""
    probes = []
    for page in sorted((ROOT / "book").glob("*.md")):
        for body in re.findall(r"```\{solution\}[^\n]*\n(.*?)\n```", page.read_text(), flags=re.S):
            text = " ".join(line for line in body.splitlines() if not line.startswith(":"))
            prose = [
                chunk.strip()
                for chunk in re.split(r"\$\$.*?\$\$|\$[^$]*\$|`[^`]*`|\{[^}]*\}|[:;,.()'\"]", text)
                if len(chunk.strip()) >= 20
            ]
            assert prose, f"no plain prose to probe in a solution of {page.name}"
            probes.append(max(prose, key=len))
    return probes


@pytest.fixture(scope="module")
def editions(tmp_path_factory):
    out = tmp_path_factory.mktemp("editions")
    for name, extra in (("student", []), ("instructor", ["--keep-solutions"])):
        result = subprocess.run(
            [sys.executable, str(ROOT / "tools" / "build_student.py"), "--output", str(out / name), *extra],
            capture_output=True, text=True,
        )
        assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    yield {name: out / name / "_build" / "html" for name in ("student", "instructor")}
    shutil.rmtree(out, ignore_errors=True)


def html_text(site: Path) -> str:
    text = " ".join(page.read_text() for page in site.rglob("*.html"))
    return re.sub(r"\s+", " ", text.replace("&#8217;", "’").replace("&#8220;", "“").replace("&#8221;", "”"))


def test_student_edition_has_no_solution(editions):
    probes = solution_probes()
    assert len(probes) >= 6
    instructor, student = html_text(editions["instructor"]), html_text(editions["student"])
    for probe in probes:
        assert probe in instructor, f"the probe does not find the solution in the full edition: {probe!r}"
        assert probe not in student, f"a solution leaked into the student edition: {probe!r}"
    assert "exercise" in student and 'class="solution' not in student
    assert "student edition" in student


class Assets(HTMLParser):
    """The files a page loads by itself: scripts, stylesheets, preloads, icons, images (not links to follow)."""

    def __init__(self) -> None:
        super().__init__()
        self.urls: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        attributes = dict(attrs)
        if tag in ("script", "img", "source", "iframe") and attributes.get("src"):
            self.urls.append(attributes["src"])
        relations = set((attributes.get("rel") or "").split())
        if tag == "link" and attributes.get("href") and relations - {"index", "search", "next", "prev"}:
            self.urls.append(attributes["href"])


def page_assets(page: Path) -> list[str]:
    parser = Assets()
    parser.feed(page.read_text())
    return parser.urls


def test_the_site_loads_nothing_from_the_network(editions):
    """Issue 11: every script, style, font and image comes from the site, and MathJax and the widget
    manager only reach the pages that use them (tools/check_site.py checks the same in a browser)."""
    for site in editions.values():
        pages = sorted(page for page in site.rglob("*.html") if not page.relative_to(site).parts[0].startswith("_"))
        assert pages
        for page in pages:
            for url in page_assets(page):
                assert not re.match(r"(https?:)?//", url), f"{page.relative_to(site)} loads {url}"
                target = (page.parent / url.split("?")[0].split("#")[0]).resolve()
                assert target.is_file(), f"{page.relative_to(site)} loads {url}, which is not in the site"
        for css in (site / "_static").rglob("*.css"):
            for url in re.findall(r"url\(\s*['\"]?([^'\")]+)", css.read_text()):
                assert not re.match(r"(https?:)?//", url), f"{css.relative_to(site)} loads {url}"
        widget_pages = {page.relative_to(site).as_posix() for page in pages if "widget-state+json" in page.read_text()}
        assert widget_pages >= {"notebooks/vae_mnist.html", "notebooks/dirac_gan.html"}
        for page in pages:
            scripts = " ".join(page_assets(page))
            name = page.relative_to(site).as_posix()
            assert ("embed-amd.js" in scripts) == (name in widget_pages), name
            if 'class="math' in page.read_text():  # (Sphinx also loads it on a page whose toctree holds math: the root)
                assert "mathjax/es5/tex-mml-chtml.js" in scripts, name
