"""Build the student edition: the same book with every exercise solution removed.

Usage: python tools/build_student.py [--output _build/student]   (the HTML lands in OUTPUT/_build/html)

It reads _config.yml, switches on sphinx-exercise's ``hide_solutions`` and
builds into its own folder, reusing the execution cache of the main build.
Solutions are written as plain ``{solution}`` directives (not the gated
``solution-start``/``solution-end`` form, which hide_solutions cannot remove),
so nothing of them reaches the student HTML; tests/test_book.py
checks that.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--output", type=Path, default=ROOT / "_build" / "student")
    parser.add_argument("--keep-solutions", action="store_true", help="build the full edition the same way (for tests)")
    args = parser.parse_args()
    config = yaml.safe_load((ROOT / "_config.yml").read_text())
    if not args.keep_solutions:
        config["title"] = f"{config['title']} (student edition)"
    config.setdefault("sphinx", {}).setdefault("config", {})["hide_solutions"] = not args.keep_solutions
    config["execute"]["cache"] = str(ROOT / config["execute"]["cache"])
    # Paths in a _config.yml are read relative to it: this one is written elsewhere.
    extensions = config["sphinx"].get("local_extensions", {})
    config["sphinx"]["local_extensions"] = {name: str(ROOT / path) for name, path in extensions.items()}
    config_path = args.output / "_config.yml"
    config_path.parent.mkdir(parents=True, exist_ok=True)
    config_path.write_text(yaml.safe_dump(config, sort_keys=False, allow_unicode=True))
    command = [
        str(Path(sys.executable).parent / "jupyter-book"), "build", str(ROOT), "--config", str(config_path),
        "--path-output", str(args.output), "-W", "-n", "--keep-going",
    ]
    sys.exit(subprocess.run(command).returncode)


if __name__ == "__main__":
    main()
