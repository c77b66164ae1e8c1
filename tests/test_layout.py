"""The library's shape: imports point one way, and the derivation engine needs no torch."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

SOURCE = Path(__file__).resolve().parents[1] / "src" / "dgm"

# A module may import modules of its own group and of groups with a lower rank, never above.
RANK = {
    "profile": 0,
    "derivations": 1,
    "distributions": 1,
    "networks": 1,
    "data": 2,
    "training": 2,
    "grading": 2,
    "latent": 3,
    "adversarial": 3,
    "diffusion": 3,
    "evaluation": 4,
    "plots": 5,
}


def group_of(dotted: str) -> str:
    """``dgm.latent.vae`` → ``latent``; ``dgm.plots`` → ``plots``."""
    return dotted.split(".")[1]


def library_modules() -> list[Path]:
    return sorted(p for p in SOURCE.rglob("*.py") if p.name != "__init__.py")


def dgm_imports(path: Path) -> list[str]:
    tree = ast.parse(path.read_text())
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("dgm."):
            found.append(node.module)
        elif isinstance(node, ast.ImportFrom) and node.module == "dgm":
            found += [f"dgm.{alias.name}" for alias in node.names if alias.name != "__version__"]
        elif isinstance(node, ast.Import):
            found += [alias.name for alias in node.names if alias.name.startswith("dgm.")]
    return found


def test_every_module_belongs_to_a_ranked_group():
    groups = {group_of("dgm." + ".".join(p.relative_to(SOURCE).with_suffix("").parts)) for p in library_modules()}
    assert groups <= set(RANK), f"groups without a rank in tests/test_layout.py: {groups - set(RANK)}"


@pytest.mark.parametrize("path", library_modules(), ids=lambda p: str(p.relative_to(SOURCE)))
def test_imports_point_down(path: Path):
    own = group_of("dgm." + ".".join(path.relative_to(SOURCE).with_suffix("").parts))
    upward = [m for m in dgm_imports(path) if group_of(m) != own and RANK[group_of(m)] >= RANK[own]]
    assert not upward, f"{path.name} ({own}, rank {RANK[own]}) imports from a group at or above its rank: {upward}"


def test_the_derivations_need_no_torch():
    for path in (SOURCE / "derivations").glob("*.py"):
        tree = ast.parse(path.read_text())
        names = [a.name for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names]
        names += [n.module or "" for n in ast.walk(tree) if isinstance(n, ast.ImportFrom)]
        assert not [n for n in names if n.split(".")[0] == "torch"], f"{path.name} imports torch"
