"""Check the built site in a real headless browser (Chromium).

Usage: python tools/check_site.py [_build/html] [--screenshots DIR]

For every page of the book it loads the HTML in headless Chromium, lets
MathJax typeset, and fails when a page shows a math error, leaves TeX
unrendered (a literal ``$$`` or ``\\begin{aligned}`` in the text), or shows a
Python traceback. It also writes a screenshot of each
page for a person to look at.

MathJax normally comes from a CDN; so that the check works offline, the site is
copied and pointed at a local MathJax (``npm pack mathjax@3``, cached under
~/.cache/dgm/mathjax).
"""

from __future__ import annotations

import argparse
import functools
import http.server
import re
import shutil
import subprocess
import sys
import tarfile
import tempfile
import threading
from pathlib import Path

CDN = re.compile(r"https://cdn\.jsdelivr\.net/npm/mathjax@3/es5/([\w-]+\.js)")
CHROMIUM_FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--hide-scrollbars",
    "--virtual-time-budget=15000",
]


def local_mathjax() -> Path:
    """The ``es5`` folder of MathJax 3, fetched once with npm."""
    cache = Path.home() / ".cache" / "dgm" / "mathjax"
    es5 = cache / "package" / "es5"
    if not es5.exists():
        cache.mkdir(parents=True, exist_ok=True)
        subprocess.run(["npm", "pack", "mathjax@3", "--silent"], cwd=cache, check=True, capture_output=True)
        tarball = next(cache.glob("mathjax-*.tgz"))
        with tarfile.open(tarball) as archive:
            archive.extractall(cache, filter="data")
    return es5


def find_chromium() -> str:
    for name in ("chromium", "chromium-browser", "google-chrome"):
        if path := shutil.which(name):
            return path
    sys.exit("no Chromium found: install it (Debian: apt-get install chromium)")


def problems(dom: str, has_math: bool) -> list[str]:
    found = []
    text = re.sub(r"<(script|style)\b.*?</\1>", "", dom, flags=re.S)
    text = re.sub(r"<mjx-assistive-mml.*?</mjx-assistive-mml>", "", text, flags=re.S)
    if has_math and "<mjx-container" not in dom:
        found.append("math was not typeset (no mjx-container)")
    if "<mjx-merror" in text or "Math input error" in text:
        found.append("MathJax reports a TeX error")
    visible = re.sub(r"<[^>]+>", " ", text)
    for marker in ("$$", r"\begin{aligned}", "Traceback (most recent call last)"):
        if marker in visible:
            found.append(f"unrendered or unexpected text: {marker!r}")
    return found


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("site", type=Path, nargs="?", default=Path("_build/html"))
    parser.add_argument("--screenshots", type=Path, default=Path("_build/screenshots"))
    args = parser.parse_args()
    if not (args.site / "index.html").exists():
        sys.exit(f"no built site at {args.site}: run `make book` first")
    chromium = find_chromium()
    work = Path(tempfile.mkdtemp(prefix="dgm-site-"))
    site = work / "site"
    shutil.copytree(args.site, site)
    shutil.copytree(local_mathjax(), site / "_mathjax")
    pages = sorted(p for p in site.rglob("*.html") if p.parent.name in ("book", "notebooks") or p.name == "index.html")
    for page in pages:
        depth = len(page.relative_to(site).parts) - 1
        page.write_text(CDN.sub(lambda match: "../" * depth + "_mathjax/" + match.group(1), page.read_text()))

    class QuietHandler(http.server.SimpleHTTPRequestHandler):
        def log_message(self, *args: object) -> None:
            pass

    handler = functools.partial(QuietHandler, directory=str(site))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)

    threading.Thread(target=server.serve_forever, daemon=True).start()
    base = f"http://127.0.0.1:{server.server_address[1]}"
    args.screenshots.mkdir(parents=True, exist_ok=True)
    failures = 0
    for page in pages:
        relative = page.relative_to(site).as_posix()
        url = f"{base}/{relative}"
        profile = ["--user-data-dir=" + str(work / "profile")]
        dom = subprocess.run([chromium, *CHROMIUM_FLAGS, *profile, "--dump-dom", url], capture_output=True, text=True, timeout=120).stdout
        has_math = 'class="math' in page.read_text()
        issues = problems(dom, has_math)
        shot = args.screenshots / (relative.replace("/", "_").removesuffix(".html") + ".png")
        subprocess.run(
            [chromium, *CHROMIUM_FLAGS, *profile, "--window-size=1280,9000", f"--screenshot={shot}", url],
            capture_output=True, timeout=120,
        )
        count = dom.count("<mjx-container")
        print(f"{'FAIL' if issues else 'ok  '} {relative}: {count} formulas typeset" + "".join(f"\n     - {i}" for i in issues))
        failures += bool(issues)
    server.shutdown()
    print(f"screenshots in {args.screenshots}")
    sys.exit(1 if failures else 0)


if __name__ == "__main__":
    main()
