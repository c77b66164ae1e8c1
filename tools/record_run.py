"""Execute a training notebook and keep its outputs: the recorded run the website shows.

Usage: python tools/record_run.py notebooks/NAME.ipynb [--profile full|quick] [--output PATH] [--timeout SECONDS]

The notebook runs top to bottom in a fresh kernel with DGM_PROFILE set and
progress bars off (DGM_PROGRESS=0), so no bar litters the page. Its own first
and last cells print the profile, device, commit and wall time; this tool also
writes them into the notebook's metadata under "dgm_run". The warning that
the full profile is slow on a CPU (dgm.profile.start_run) is meant for a
reader running the notebook; the kernel of a recording ignores it
(PYTHONWARNINGS), since the first cell prints the device anyway.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

import nbformat
from nbclient import NotebookClient

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))
from dgm.profile import git_commit  # noqa: E402

# The start of the message of dgm.profile.start_run's warning (PYTHONWARNINGS matches the start of a message).
CPU_WARNING = "the full profile on a CPU takes long"


def record(path: Path, profile: str, output: Path, timeout: int) -> None:
    notebook = nbformat.read(path, as_version=4)
    os.environ["DGM_PROFILE"] = profile
    os.environ["DGM_PROGRESS"] = "0"
    ignored = f"ignore:{CPU_WARNING}:UserWarning"
    os.environ["PYTHONWARNINGS"] = ",".join(filter(None, [os.environ.get("PYTHONWARNINGS"), ignored]))
    commit = git_commit()  # the code the run starts from, not what the checkout holds when it ends
    started = time.time()
    NotebookClient(notebook, timeout=timeout, kernel_name="python3", resources={"metadata": {"path": str(path.parent)}}).execute()
    notebook.metadata["dgm_run"] = {
        "profile": profile,
        "commit": commit,
        "wall_time_s": round(time.time() - started, 1),
        "recorded": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
    }
    nbformat.write(notebook, output)
    print(f"recorded {path} ({profile}) in {time.time() - started:.0f} s -> {output}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("notebook", type=Path)
    parser.add_argument("--profile", choices=["quick", "full"], default="full")
    parser.add_argument("--output", type=Path, default=None, help="where to write (default: in place)")
    parser.add_argument("--timeout", type=int, default=4 * 3600, help="seconds allowed per cell")
    args = parser.parse_args()
    record(args.notebook, args.profile, args.output or args.notebook, args.timeout)


if __name__ == "__main__":
    main()
