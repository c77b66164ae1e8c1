"""Refresh the site's vendored JavaScript in _vendor/ (MathJax, RequireJS, the widget manager).

Usage: python tools/vendor_web.py   (needs npm and the npm registry; run it only to change a version)

The built site loads nothing from the network (issue 11): MathJax, its fonts,
RequireJS and the embed script of @jupyter-widgets/html-manager are served
from the site itself, out of _vendor/, which is committed so that a build, the
tests and the finished site all work offline. This script is how _vendor/ is
made: it fetches each pinned package with ``npm pack``, refuses a tarball whose
sha512 is not the pinned one, and copies in only the files a page can ask for.
_ext/offline_site.py serves _vendor/ as static files and loads each script only
on the pages that need it.

What is left out, and why nothing asks for it: MathJax's other combined
components and its SVG output (the site uses tex-mml-chtml); the speech maps of
languages other than English (the speech explorer is off unless a reader turns
it on in the formula menu, and speaks English); the widget manager's
unbundled builds and its EOT/TTF/SVG copies of Font Awesome (browsers take the
WOFF2 listed before them).
"""

from __future__ import annotations

import base64
import hashlib
import shutil
import subprocess
import tarfile
import tempfile
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
VENDOR = ROOT / "_vendor"


@dataclass(frozen=True)
class Package:
    name: str
    version: str
    integrity: str  # the registry's sha512 of the tarball
    licence: str
    target: str  # folder under _vendor/
    files: tuple[str, ...]  # globs inside the tarball's package/ folder


PACKAGES = (
    Package(
        "mathjax", "3.2.2",
        "sha512-Bt+SSVU8eBG27zChVewOicYs7Xsdt40qm4+UpHyX7k0/O9NliPc+x77k1/FEsPsjKPZGJvtRZM1vO+geW0OhGw==",
        "Apache-2.0", "mathjax",
        (
            "LICENSE",
            "es5/tex-mml-chtml.js",  # the component Sphinx loads by default
            "es5/output/chtml/fonts/woff-v2/*.woff",
            "es5/input/tex/extensions/**/*.js",  # \boldsymbol, \cancel, ... are fetched on first use
            "es5/a11y/*.js",  # the formula menu's accessibility options
            "es5/sre/mathmaps/base.json",
            "es5/sre/mathmaps/en.json",
            "es5/sre/mathmaps/nemeth.json",
        ),
    ),
    Package(
        "requirejs", "2.3.8",
        "sha512-7/cTSLOdYkNBNJcDMWf+luFvMriVm7eYxp4BcFCsAX0wF421Vyce5SXP17c+Jd5otXKGNehIonFlyQXSowL6Mw==",
        "MIT", "requirejs",
        ("require.js",),
    ),
    Package(
        "@jupyter-widgets/html-manager", "1.0.15",
        "sha512-5thBIV6ymNgmPVOHvzx+gGy8ZSKmSazhtGw4/c4xJDVzRhG9PTeQsRjF3FUTopvFi//SABeNz1yp47bCrJ3CQA==",
        "BSD-3-Clause (bundled: see embed.js.LICENSE.txt; Font Awesome Free: OFL-1.1 fonts, MIT code)",
        "jupyter-widgets",
        ("dist/embed-amd.js", "dist/embed.js.LICENSE.txt", "dist/*.woff2", "dist/*.woff"),
    ),
)


def sri(data: bytes) -> str:
    return "sha512-" + base64.b64encode(hashlib.sha512(data).digest()).decode()


def fetch(package: Package, work: Path) -> Path:
    """Download the pinned tarball with npm, check its hash, unpack it; returns its package/ folder."""
    spec = f"{package.name}@{package.version}"
    result = subprocess.run(["npm", "pack", spec, "--silent"], cwd=work, check=True, capture_output=True, text=True)
    tarball = work / result.stdout.strip().splitlines()[-1]
    if (found := sri(tarball.read_bytes())) != package.integrity:
        raise SystemExit(f"{spec}: the tarball's hash is {found}, not the pinned {package.integrity}")
    unpacked = work / package.target
    with tarfile.open(tarball) as archive:
        archive.extractall(unpacked, filter="data")
    return unpacked / "package"


def main() -> None:
    if shutil.which("npm") is None:
        raise SystemExit("npm not found: it is needed only to refresh _vendor/ (Debian: apt-get install npm)")
    with tempfile.TemporaryDirectory() as temporary:
        work = Path(temporary)
        lines = [
            "# Vendored web assets",
            "",
            "Written by `tools/vendor_web.py`; do not edit by hand. Served by `_ext/offline_site.py`.",
            "",
            "| folder | package | version | licence | sha512 of the npm tarball |",
            "|---|---|---|---|---|",
        ]
        shutil.rmtree(VENDOR, ignore_errors=True)
        for package in PACKAGES:
            source = fetch(package, work)
            copied = 0
            for pattern in package.files:
                matches = sorted(p for p in source.glob(pattern) if p.is_file())
                if not matches:
                    raise SystemExit(f"{package.name}@{package.version} has no file matching {pattern!r}")
                for path in matches:
                    destination = VENDOR / package.target / path.relative_to(source)
                    destination.parent.mkdir(parents=True, exist_ok=True)
                    shutil.copyfile(path, destination)
                    copied += 1
            lines.append(
                f"| `{package.target}/` | `{package.name}` | {package.version} | {package.licence}"
                f" | `{package.integrity}` |"
            )
            print(f"{package.name}@{package.version}: {copied} files")
        (VENDOR / "SOURCES.md").write_text("\n".join(lines) + "\n")
    size = sum(p.stat().st_size for p in VENDOR.rglob("*") if p.is_file())
    print(f"_vendor/: {size / 2**20:.1f} MiB")


if __name__ == "__main__":
    main()
