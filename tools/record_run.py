"""Execute a training notebook and keep its outputs: the recorded run the website shows.

Usage: python tools/record_run.py notebooks/NAME.ipynb [--profile full|quick] [--output PATH] [--timeout SECONDS] [--resume]
       python tools/record_run.py --drop-cpu-warning notebooks/*.ipynb

The notebook runs top to bottom in a fresh kernel with DGM_PROFILE set and
progress bars off (DGM_PROGRESS=0), so no bar litters the page. It trains
afresh: the notebook's own checkpoints from an earlier run are moved aside
first (``--resume`` continues from them instead, after an interruption). Its own first
and last cells print the profile, device, commit and wall time; this tool also
writes them into the notebook's metadata under "dgm_run". The warning that
the full profile is slow on a CPU (dgm.profile.start_run) is meant for a
reader running the notebook; the kernel of a recording ignores it
(PYTHONWARNINGS), since the first cell prints the device anyway;
``--drop-cpu-warning`` removes it from the outputs of older recordings where
an output is that warning and nothing else.
"""

from __future__ import annotations

import argparse
import os
import re
import sys
import time
from collections.abc import Mapping
from pathlib import Path

import nbformat
from nbclient import NotebookClient

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))
from dgm.profile import git_commit, run_path  # noqa: E402

# The start of the message of dgm.profile.start_run's warning (PYTHONWARNINGS matches the start of a message).
CPU_WARNING = "the full profile on a CPU takes long"


def recording_environment(profile: str, environment: dict | None = None) -> dict:
    """The environment variables a recording's kernel starts with."""
    environment = dict(os.environ if environment is None else environment)
    ignored = f"ignore:{CPU_WARNING}:UserWarning"
    warnings = ",".join(filter(None, [environment.get("PYTHONWARNINGS"), ignored]))
    return environment | {"DGM_PROFILE": profile, "DGM_PROGRESS": "0", "PYTHONWARNINGS": warnings}


# An output that is nothing but the warning, as older recordings carry it: "<file>:<line>: UserWarning: ...\n  run = start_run()\n".
CPU_WARNING_OUTPUT = re.compile(rf"[^\n]*:\d+: UserWarning: {re.escape(CPU_WARNING)}[^\n]*\n(  [^\n]*\n?)?")


def drop_cpu_warning(path: Path) -> int:
    """Remove the stderr outputs of a recorded notebook that are only the CPU warning; the number removed."""
    notebook = nbformat.read(path, as_version=4)
    removed = 0
    for cell in notebook.cells:
        if cell.cell_type != "code":
            continue
        kept = [o for o in cell.outputs if not (o.output_type == "stream" and o.name == "stderr" and CPU_WARNING_OUTPUT.fullmatch(o.text))]
        removed += len(cell.outputs) - len(kept)
        cell.outputs = kept
    if removed:
        nbformat.write(notebook, path)
    return removed


def set_aside_checkpoints(path: Path, profile: str, environment: Mapping[str, str] | None = None) -> Path | None:
    """Move the notebook's own checkpoints (``<runs>/<notebook name>/<profile>``, see ``dgm.profile.run_dir``) aside.

    A recording is a fresh run: a checkpoint left by an earlier run (other settings, other steps, an older library)
    would otherwise be resumed or read back as if this run had trained it. The folder is renamed, not deleted
    (``<profile>-before-<time>``), and returned; ``None`` where there was nothing to move. Checkpoints of other
    notebooks that this one loads on purpose (ddim_sampling loads ddpm_mnist's U-Net) stay where they are."""
    # relative to the notebook's folder, where its kernel runs
    folder = run_path(path.stem, profile, root=path.parent, environment=environment)
    if not folder.is_dir() or not any(folder.iterdir()):
        return None
    aside = folder.with_name(f"{profile}-before-{time.strftime('%Y%m%d-%H%M%S', time.gmtime())}")
    folder.rename(aside)
    return aside


def record(path: Path, profile: str, output: Path, timeout: int, resume: bool = False) -> None:
    notebook = nbformat.read(path, as_version=4)
    if not resume and (aside := set_aside_checkpoints(path, profile)):
        print(f"{path}: earlier checkpoints moved to {aside} (a recording trains afresh; --resume keeps them)")
    os.environ.update(recording_environment(profile))
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
    parser.add_argument("notebook", type=Path, nargs="+")
    parser.add_argument("--profile", choices=["quick", "full"], default="full")
    parser.add_argument("--output", type=Path, default=None, help="where to write (default: in place)")
    parser.add_argument("--timeout", type=int, default=4 * 3600, help="seconds allowed per cell")
    parser.add_argument(
        "--resume", action="store_true",
        help="continue from the notebook's own checkpoints (an interrupted recording); by default they are moved aside",
    )
    parser.add_argument(
        "--drop-cpu-warning", action="store_true",
        help="run nothing: remove the outputs that are only the CPU warning from these recorded notebooks",
    )
    args = parser.parse_args()
    if args.drop_cpu_warning:
        for path in args.notebook:
            print(f"{path}: {drop_cpu_warning(path)} warning output(s) removed")
        return
    if len(args.notebook) > 1:
        parser.error("record one notebook at a time")
    record(args.notebook[0], args.profile, args.output or args.notebook[0], args.timeout, resume=args.resume)


if __name__ == "__main__":
    main()
