"""Builds: a wrong derivation step fails a book build, and the student edition carries no solution."""

import html
import json
import re
import shutil
import subprocess
import sys
from functools import lru_cache
from html.parser import HTMLParser
from pathlib import Path

import jupytext
import nbformat
import pytest
import yaml

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


def test_the_book_configuration_runs_every_page_and_fails_on_an_error():
    """nbval does not run book/ (pyproject's testpaths): the pages run once, in the build of the `builds` fixture
    (and `make book`), so this configuration is what makes a wrong step fail the tests."""
    config = yaml.safe_load((ROOT / "_config.yml").read_text())["execute"]
    assert config["execute_notebooks"] in {"cache", "force", "auto"}
    assert config["allow_errors"] is False
    assert not any(pattern.startswith("book") for pattern in config.get("exclude_patterns", []))


sys.path.insert(0, str(ROOT / "tools"))
sys.path.insert(0, str(ROOT / "_ext"))
from build_student import FENCE, cut_notebook, cut_page, page_notebook, share_executions  # noqa: E402
from colab import PLACEHOLDER_URL, cell_in, install_cell  # noqa: E402
from sync_colab_cell import configured, notebook_sources, with_cell  # noqa: E402


def solutions() -> list[tuple[str, str, str]]:
    """(page, solution, the page without its solutions) for every solution in book/ and notebooks/, cut as the student build cuts."""
    found = []
    for page in sorted({*ROOT.glob("book/*.md"), *ROOT.glob("notebooks/*.md")}):
        kept, cut = cut_page(page.read_text(), page.name)
        found += [(page.name, solution, kept) for solution in cut]
    for notebook in sorted(ROOT.glob("notebooks/*.ipynb")):
        if not notebook.with_suffix(".md").exists():
            parsed = nbformat.read(notebook, as_version=4)
            cut = cut_notebook(parsed, notebook.name)
            kept = "\n".join(cell.source for cell in parsed.cells)
            found += [(notebook.name, solution, kept) for solution in cut]
    return found


def outside_solutions() -> str:
    """All the book's text that is not a solution (every page without its solutions, and the bibliography), lowercased."""
    pages = sorted({*ROOT.glob("book/*.md"), *ROOT.glob("notebooks/*.md")})
    text = " ".join(cut_page(page.read_text(), page.name)[0] for page in pages) + " " + (ROOT / "references.bib").read_text()
    return re.sub(r"\s+", " ", text).lower()


def solution_lines() -> list[str]:
    """Each solution's distinctive source lines: 30 characters or more, not a fence or an option, nowhere outside solutions."""
    probes, elsewhere = set(), outside_solutions()
    for page, solution, _ in solutions():
        lines = {line.strip() for line in solution.splitlines()}
        found = {
            line for line in lines
            if len(line) >= 30 and not FENCE.match(line) and not line.startswith(":") and re.sub(r"\s+", " ", line).lower() not in elsewhere
        }
        assert found, f"{page}: no line of this solution to look for: {solution!r}"
        probes |= found
    return sorted(probes)


def solution_prose() -> list[str]:
    """Each solution's stretches of plain prose (no math, code or markup) of 25 characters or more, as the HTML
    shows them, that are nowhere outside solutions."""
    probes, elsewhere = [], outside_solutions()
    for _, solution, _ in solutions():
        body = " ".join(line for line in solution.splitlines()[1:-1] if not line.startswith(":"))
        probes += [
            chunk.strip()
            for chunk in re.split(r"\$\$.*?\$\$|\$[^$]*\$|`[^`]*`|\{[^}]*\}|\*\*?|\[|\]|[:;,.()'\"]", body)
            if len(chunk.strip()) >= 25 and chunk.strip().lower() not in elsewhere
        ]
    return probes


@pytest.fixture(scope="module")
def builds(tmp_path_factory):
    """The student edition and the full one, each built by tools/build_student.py: {edition: (folder, build log)}.

    The full edition first: it runs (or finds in the execution cache) every page, and the student build takes those
    runs for the pages whose code is the same but for the install cell, instead of running each page again."""
    out = tmp_path_factory.mktemp("editions")
    built = {}
    for name, extra in (("instructor", ["--keep-solutions"]), ("student", [])):
        result = subprocess.run(
            [sys.executable, str(ROOT / "tools" / "build_student.py"), "--output", str(out / name), *extra],
            capture_output=True, text=True,
        )
        assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
        built[name] = (out / name, result.stdout + result.stderr)
    yield built
    shutil.rmtree(out, ignore_errors=True)
    searchable.cache_clear()  # the files' texts, kept for the module's tests: free them with the builds
    probes_in.cache_clear()


@pytest.fixture(scope="module")
def editions(builds):
    return {name: folder / "_build" / "html" for name, (folder, _) in builds.items()}


BASE64 = re.compile(r"[A-Za-z0-9+/=\\n]{400,}")  # images inlined in notebooks and pages: no text to look for


def strings(value) -> str:
    if isinstance(value, str):
        return value
    if isinstance(value, list) and all(isinstance(item, str) for item in value):
        return "".join(value)  # a notebook cell's lines
    items = value.values() if isinstance(value, dict) else value if isinstance(value, list) else []
    return "\n".join(strings(item) for item in items)


@lru_cache(maxsize=None)
def searchable(raw: bytes, suffix: str) -> str:
    """A file's bytes as searchable text: raw, HTML-unescaped, and with JSON strings decoded.

    Cached by content: the two editions share most of their files (the theme's assets, the vendored scripts,
    figures), and a site holds some files twice (``_vendor`` in the repository and ``_static`` in the site), so
    each distinct file is read into text once."""
    # Binary files too (pickled doctrees, the cache's database, images): their strings are UTF-8 inside.
    text = BASE64.sub(" ", raw.decode("utf-8", errors="replace"))
    parts = [text] + ([html.unescape(text)] if "&" in text else [])
    if suffix in (".ipynb", ".json"):
        parts.append(BASE64.sub(" ", strings(json.loads(raw))))
    return re.sub(r"\s+", " ", "\n".join(parts))


def file_texts(folder: Path) -> dict[str, str]:
    """Every file under folder as searchable text (:func:`searchable`)."""
    paths = sorted(p for p in folder.rglob("*") if p.is_file())
    return {str(path.relative_to(folder)): searchable(path.read_bytes(), path.suffix) for path in paths}


def files_holding(probes: list[str], texts: dict[str, str]) -> list[tuple[str, str]]:
    """Every (file, probe) with the probe in the file's text, as ``probe in text`` over all pairs finds them, faster.

    A word that a probe holds strictly inside it (characters that are not word characters on both sides) is a whole
    word of any text that holds the probe, so a file whose words lack one of them cannot hold the probe: a probe is
    searched only in the files that have all its inner words (a probe without any is searched in every file). Files
    with the same text are searched once (:func:`probes_in`)."""
    anchored = tuple(
        (probe, frozenset(m.group() for m in re.finditer(r"\w+", probe) if m.start() > 0 and m.end() < len(probe)))
        for probe in probes
    )
    return [(name, probe) for name, text in texts.items() for probe in probes_in(text, anchored)]


@lru_cache(maxsize=None)
def probes_in(text: str, anchored: tuple[tuple[str, frozenset[str]], ...]) -> tuple[str, ...]:
    """The probes of ``anchored`` ((probe, its inner words) pairs) that ``text`` holds (see :func:`files_holding`)."""
    words = set(re.findall(r"\w+", text))
    return tuple(probe for probe, inner in anchored if inner <= words and probe in text)


def test_files_holding_finds_what_a_search_of_every_pair_finds():
    texts = {"a": "x = (mu_t - m)/s2; the prior's variance", "b": "variance prior", "c": "mu_t-m", "d": "gamma"}
    texts["e"] = "".join(list(texts["a"]))  # the same text in another file (another str object): found there too
    probes = ["(mu_t - m)/s2", "prior's variance", "the prior", "variance", "t-m", "amm", "mu_t - m)/s2;", "absent word"]
    brute = sorted((name, probe) for probe in probes for name, text in texts.items() if probe in text)
    assert sorted(files_holding(probes, texts)) == brute and ("c", "t-m") in brute and ("d", "amm") in brute


def test_no_file_of_the_student_edition_holds_a_solution(builds):
    """Issue 11: pages, _sources downloads, executed and shipped notebooks, search index, the student repository."""
    lines = [re.sub(r"\s+", " ", line) for line in solution_lines()]
    prose = solution_prose()
    assert len(solutions()) >= 28 and len(lines) >= 28 and len(prose) >= 60
    in_instructor = {probe for _, probe in files_holding(lines + prose, file_texts(builds["instructor"][0]))}
    for probe in lines + prose:
        assert probe in in_instructor, f"the probe does not find the solution in the full edition: {probe!r}"
    student = file_texts(builds["student"][0])
    assert any(name.startswith("repo/book/") and name.endswith(".ipynb") for name in student)
    assert any("_sources/" in name for name in student) and any(name.endswith("searchindex.js") for name in student)
    leaks = files_holding(lines + prose, student)
    assert not leaks, f"solutions in the student edition: {leaks[:5]}"
    html_pages = " ".join(text for name, text in student.items() if name.endswith(".html"))
    assert "exercise" in html_pages and 'class="solution' not in html_pages
    assert "student edition" in html_pages


def search_terms(site: Path) -> set[str]:
    index = (site / "searchindex.js").read_text()
    return set(json.loads(index[index.index("(") + 1 : index.rindex(")")])["terms"])


def test_the_student_search_index_knows_no_word_found_only_in_solutions(builds, editions):
    """Words (stemmed as Sphinx indexes them) that appear in solutions and nowhere else in the student sources."""
    from sphinx.search.en import SearchEnglish

    stem = SearchEnglish({}).stem
    words = lambda text, shortest=1: {stem(word.lower()) for word in re.findall(rf"[A-Za-z]{{{shortest},}}", text)}  # noqa: E731
    student_sources = " ".join(text for name, text in file_texts(builds["student"][0] / "repo").items() if name.endswith((".md", ".ipynb")))
    only_in_solutions = words(" ".join(solution for _, solution, _ in solutions()), 5) - words(student_sources)
    indexed = only_in_solutions & search_terms(editions["instructor"])
    assert len(indexed) >= 8, f"too few solution-only words in the full edition's index to test with: {sorted(indexed)}"
    assert not indexed & search_terms(editions["student"]), sorted(indexed & search_terms(editions["student"]))


COLAB = re.compile(r'href="https://colab\.research\.google\.com/github/([^/"]+)/([^/"]+)/blob/([^"]+?)/([^"]+\.ipynb)"')


@pytest.mark.parametrize("edition", ["student", "instructor"])
def test_colab_buttons_open_the_editions_own_notebooks_which_install_from_the_same_commit(builds, editions, edition):
    """Student: the student repository's notebooks (written by the build, no solutions); full edition: this repository's.
    Each notebook a button opens installs dgm from the repository and ref the button names."""
    url, ref = configured(student=edition == "student")
    tree = builds[edition][0] / "repo" if edition == "student" else ROOT
    site = editions[edition]
    pages = [page for page in site.rglob("*.html") if not page.relative_to(site).parts[0].startswith("_")]
    links = {m.groups() for page in pages for m in COLAB.finditer(page.read_text())}
    opened = {path for *_, path in links}
    notebooks = {  # every page built from a notebook has a button
        f"{page.parent.name}/{page.stem}.ipynb" for page in ROOT.glob("*/*.md")
        if page.parent.name in ("book", "notebooks") and "\nkernelspec:" in page.read_text()[:800]
        and (site / page.parent.name / f"{page.stem}.html").exists()
    }
    assert opened >= notebooks and len(opened) >= 13, sorted(notebooks - opened)
    for owner, name, link_ref, path in links:
        assert (f"https://github.com/{owner}/{name}", link_ref) == (url, ref), path
        assert cell_in(tree / path) == install_cell(url, ref), f"{tree / path} does not install from {url}@{ref}"
    if edition == "student":
        for notebook in tree.rglob("*.ipynb"):
            assert cell_in(notebook) == install_cell(url, ref), notebook


def test_a_page_whose_install_cell_names_another_ref_fails_the_build(tmp_path):
    """_ext/colab.py: a launch button and an install cell that disagree fail a -W build; the placeholder only warns."""
    results = {}
    for url, cell_ref in (("https://github.com/someone/book", "v1.0"), ("https://github.com/someone/book", "main"), (PLACEHOLDER_URL, "v1.0")):
        folder = tmp_path / f"{url.split('/')[-2]}-{cell_ref}"
        folder.mkdir()
        (folder / "_config.yml").write_text(
            f"title: t\nexecute:\n  execute_notebooks: 'off'\nrepository:\n  url: {url}\n  branch: v1.0\n"
            f"launch_buttons:\n  colab_url: https://colab.research.google.com\n"
            f"sphinx:\n  local_extensions:\n    colab: {ROOT / '_ext'}\n"
        )
        (folder / "_toc.yml").write_text("format: jb-book\nroot: page\n")
        page = PAGE.split("# A page")[0] + "# A page\n\n```{code-cell} ipython3\n:tags: [remove-cell]\n\n" + install_cell(url, cell_ref) + "\n```\n"
        (folder / "page.md").write_text(page)
        result = subprocess.run([JUPYTER_BOOK, "build", str(folder), "-W", "-n"], capture_output=True, text=True)
        results[(url, cell_ref)] = (result.returncode, result.stdout + result.stderr)
    good, stale, placeholder = results.values()
    assert good[0] == 0 and "placeholder" not in good[1], good[1][-2000:]
    assert stale[0] != 0 and "does not install from https://github.com/someone/book@v1.0" in stale[1], stale[1][-2000:]
    assert placeholder[0] == 0 and "still the placeholder" in placeholder[1], placeholder[1][-2000:]


def code_cells(text: str) -> list[str]:
    return [cell.source for cell in jupytext.reads(text, fmt="md:myst").cells if cell.cell_type == "code"]


def test_the_full_build_ran_every_page_without_an_error(editions):
    """Every page with code ran in the full edition's build (the build is where book/ runs in the tests; nbval runs
    notebooks/ only): its page shows cell outputs and no traceback."""
    pages = [page for page in notebook_sources() if page.parent.name == "book"]
    assert len(pages) >= 10
    for page in pages:
        built = editions["instructor"] / "book" / f"{page.stem}.html"
        assert built.exists(), f"{page.name} was not built"
        text = built.read_text()
        assert 'class="cell_output' in text, f"{page.name}: the build shows no cell output: was the page executed?"
        assert "output traceback" not in text and "ipythontb" not in text, f"{page.name}: the build shows a traceback"


def test_the_student_build_takes_the_full_editions_run_of_every_page_whose_code_is_the_same(builds):
    """A page of the table of contents whose code cells the two editions share (the solutions were cut from its prose
    only; the install cells name different refs) is not run a second time: the student build takes the full
    edition's run of it (tools/build_student.py, share_executions)."""
    full, student = builds["instructor"][0] / "repo", builds["student"][0] / "repo"
    toc = set(re.findall(r"file: (book/\w+)", (full / "_toc.yml").read_text()))
    pages = [page for page in full.glob("book/*.md") if f"book/{page.stem}" in toc and "\nkernelspec:" in page.read_text()[:800]]
    url, ref = configured(student=True)
    same = [
        page for page in pages
        if code_cells((student / "book" / page.name).read_text()) == [install_cell(url, ref), *code_cells(page.read_text())[1:]]
    ]
    shared = re.search(r"execution cache: (\d+) of (\d+) pages take the full edition's cached run", builds["student"][1])
    assert shared, builds["student"][1][-2000:]
    assert int(shared[1]) == len(same) >= 10 and int(shared[2]) >= len(pages), (shared[0], sorted(page.name for page in same))


def test_a_student_page_takes_a_cached_run_only_where_the_code_is_the_same(tmp_path):
    """tools/build_student.py's share_executions: the full page's run goes to the student page when their code cells
    differ in the install cell alone; not when a solution held a code cell, when a cell reads the install cell's
    DGM_SOURCE, or when the install cell printed something."""
    from jupyter_cache import get_cache
    from jupyter_cache.base import CacheBundleIn

    config = yaml.safe_load((ROOT / "_config.yml").read_text())
    full_ref, student_ref = configured(), configured(student=True)
    assert full_ref != student_ref
    header = PAGE.split("# A page")[0] + "# A page\n\nSome prose.\n"
    cells = lambda *sources: "".join(f"\n```{{code-cell}} ipython3\n{source}\n```\n" for source in sources)  # noqa: E731
    cases = {  # name: (full page's code, student page's code, what the install cell printed)
        "same": (["x = 1", "print(x)"], ["x = 1", "print(x)"], ""),
        "solution_code": (["x = 1", "print(x)", "solution = 2"], ["x = 1", "print(x)"], ""),
        "reads_source": (["print(DGM_SOURCE)"], ["print(DGM_SOURCE)"], ""),
        "install_printed": (["print(1)"], ["print(1)"], "installing"),
    }
    cache = get_cache(str(tmp_path / "cache"))
    pairs = []
    for name, (full_code, student_code, printed) in cases.items():
        full, student = tmp_path / "full" / f"{name}.md", tmp_path / "student" / f"{name}.md"
        for path, code, (url, ref), extra in ((full, full_code, full_ref, "A solution.\n"), (student, student_code, student_ref, "")):
            path.parent.mkdir(exist_ok=True)
            path.write_text(with_cell(header + extra + cells(f"case = {name!r}", *code), url, ref))
        executed = page_notebook(full.read_text(), full, config)
        for index, cell in enumerate(c for c in executed.cells if c.cell_type == "code"):
            text = printed if index == 0 else f"ran {name}, cell {index}\n"
            cell.outputs = [nbformat.v4.new_output("stream", name="stdout", text=text)] if text else []
        cache.cache_notebook_bundle(CacheBundleIn(executed, str(full)), check_validity=False)
        pairs.append((student, full.read_text()))
    assert share_executions(pairs, tmp_path / "cache", config, student_ref) == 1
    record = cache.match_cache_notebook(page_notebook(pairs[0][0].read_text(), pairs[0][0], config))
    outputs = [cell.outputs for cell in cache.get_cache_bundle(record.pk).nb.cells if cell.cell_type == "code"]
    assert [output[0]["text"] for output in outputs[1:]] == [f"ran same, cell {i}\n" for i in (1, 2, 3)] and outputs[0] == []
    for student, _ in pairs[1:]:
        with pytest.raises(KeyError):
            cache.match_cache_notebook(page_notebook(student.read_text(), student, config))


def test_the_build_warns_while_the_repository_is_a_placeholder(builds):
    url, _ = configured()
    for _, log in builds.values():
        assert ("still the placeholder" in log) == (url == PLACEHOLDER_URL)


def test_the_solution_cutter():
    page = "a\n```{solution-start} ex\n:class: dropdown\n```\nsecret\n```{code-cell}\nx = 1\n```\n```{solution-end}\n```\nb\n" \
        "::::{solution} ex2\n:::{note}\ninner\n:::\nmore\n::::\nc\n````{solution} ex3\n```python\ncode\n```\n````\nd\n"
    kept, cut = cut_page(page, "page")
    assert kept == "a\nb\nc\nd\n" and len(cut) == 3 and "secret" in cut[0] and "x = 1" in cut[0] and "inner" in cut[1]
    with pytest.raises(ValueError, match="not closed"):
        cut_page("```{solution} ex\nopen\n", "page")
    notebook = nbformat.v4.new_notebook(cells=[
        nbformat.v4.new_markdown_cell("text\n```{solution-start} ex\n```\nhidden"),
        nbformat.v4.new_code_cell("secret = 1"),
        nbformat.v4.new_markdown_cell("```{solution-end}\n```\nafter"),
        nbformat.v4.new_markdown_cell("```{solution} ex2\nonly a solution\n```"),
        nbformat.v4.new_code_cell("kept = 1"),
    ])
    assert len(cut_notebook(notebook, "n")) == 2
    assert [(c.cell_type, c.source) for c in notebook.cells] == [("markdown", "text"), ("markdown", "after"), ("code", "kept = 1")]


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


class InlineScripts(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.scripts: list[str] = []
        self.inside = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        attributes = dict(attrs)  # JavaScript only (a widget's view is a script of JSON, and may be shown twice)
        self.inside = tag == "script" and not attributes.get("src") and attributes.get("type") in (None, "text/javascript")
        if self.inside:
            self.scripts.append("")

    def handle_endtag(self, tag: str) -> None:
        self.inside = False

    def handle_data(self, data: str) -> None:
        if self.inside:
            self.scripts[-1] += data


def test_no_page_runs_an_inline_script_twice(editions):
    """Issue 11: sphinx-thebe's `const THEBE_JS_URL` listed twice was a console error on every page (_ext/offline_site.py)."""
    for site in editions.values():
        for page in site.rglob("*.html"):
            parser = InlineScripts()
            parser.feed(page.read_text())
            scripts = [script.strip() for script in parser.scripts if script.strip()]
            assert len(scripts) == len(set(scripts)), f"{page.relative_to(site)} repeats an inline script"
            assert page.read_text().count("const THEBE_JS_URL") <= 1, page.relative_to(site)


LIST_ITEM = re.compile(r"\s{0,3}([-+*]|\d+[.)])\s")


def sentences_broken_into_lists(solution: str) -> list[str]:
    """Lines of a solution's prose that continue a paragraph but start with a list marker (Markdown makes them a list)."""
    broken, previous, in_code = [], "", False
    for line in solution.splitlines()[1:-1]:
        if re.match(r"\s*(```|~~~)", line):
            in_code = not in_code
        if not in_code and LIST_ITEM.match(line) and previous.strip() and not LIST_ITEM.match(previous):
            broken.append(line)
        previous = line
    return broken


def test_no_solution_sentence_is_broken_into_a_list():
    """Issue 11: vi's Exercise 6 solution had a line of a sentence starting with "+", which Markdown makes a list item."""
    assert sentences_broken_into_lists("```{solution} ex\nthe divergence is\n+ \\mathrm{KL}(q \\,\\|\\, p).\n```") == [
        "+ \\mathrm{KL}(q \\,\\|\\, p)."
    ]
    assert sentences_broken_into_lists("```{solution} ex\nTwo cases:\n\n- one\n- two\n```") == []
    for page, solution, _ in solutions():
        assert not sentences_broken_into_lists(solution), f"{page}: {sentences_broken_into_lists(solution)}"


def test_no_solution_renders_as_a_list(editions):
    """The same in the built full edition: no solution's HTML holds a list (none of the book's solutions is one)."""
    from bs4 import BeautifulSoup  # (pydata-sphinx-theme's dependency)

    rendered = 0
    for page in sorted((editions["instructor"] / "book").glob("*.html")):
        for solution in BeautifulSoup(page.read_text(), "html.parser").select("div.solution"):
            rendered += 1
            assert not solution.find(["ul", "ol"]), f"{page.name}: {solution.get_text(' ', strip=True)[:200]}"
    built = [page for page, _, _ in solutions() if (editions["instructor"] / "book" / page).with_suffix(".html").exists()]
    assert rendered == len(built) >= 28
