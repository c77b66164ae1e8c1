"""Source-level mutation testing of a page's derivations, as an outside reviewer would run it.

Usage: python tools/mutate_pages.py book/NAME.md [--max 40] [--seed 0] [--jobs 2] [--timeout 120] [--out PATH] [--list]

``tests/mutations.py`` changes the *objects* a page built; this tool changes the
page's *source*, the way a reviewer (or a slip of the author's) would: it
reads the page with jupytext, finds the code that builds derivations — the
positional arguments of ``Derivation(...)`` and of its ``.eq/.le/.ge/.propto/
.const`` steps, and the definitions (assignments, helper functions, classes)
those arguments use, followed transitively — and rewrites one node of that
code with :mod:`ast`:

* ``flip``      a binary ``+`` into ``-`` and back, or the sign of one term of ``in_order(...)``;
* ``const``     a numeric constant ``n`` into ``n + 1`` (``2 → 3``, ``Rational(1, 2) → Rational(1, 3)``, ``/2 → /3``);
* ``kl-swap``   the two arguments of ``KL(...)``;
* ``sym-swap``  two symbols of the same assumptions, everywhere in one step argument (or one definition);
* ``square``    ``x**2`` into ``x``;   ``pos-sq``  a positive symbol ``s`` into ``s**2``;
* ``drop``      one term of a sum (a side of a binary ``+``/``-``, or an argument of ``in_order``);
* ``log-flip``  ``log(a/b)`` into ``log(b/a)``;
* ``gauss``     the mean (``+ 1``) or the variance (``* 2``) passed to ``gaussian``/``normal_logpdf``;
* ``rel``       a relation ``.le`` into ``.ge`` and back.

Plotting, training and table code is never touched: only what a chain uses.
Each mutant replaces its cell (``ast.unparse``) and the whole page runs in a
fresh subprocess (all code cells but the Colab install cell, magics through
IPython's ``TransformerManager``, matplotlib on Agg, ``display`` a no-op).
Verdicts:

* ``REJECTED``   a :class:`dgm.derivations.derive.StepError` stopped the page (the step it named is reported);
* ``ERROR``      another exception (the mutant broke the code; not the engine's catch);
* ``TIMEOUT``    the page did not finish within ``--timeout`` seconds;
* ``EQUIVALENT`` the page ran clean and an independent oracle finds every derivation's
  expressions, and the definitions of the names it shows, unchanged in value (each
  evaluated on the instance at fixed random points, 50 digits; for a swap of two
  symbols with the same assumptions and domain, unchanged once the two are renamed)
  — a legitimate rewrite. The report says when such a rewrite changed a display;
* ``SLIPPED``    the page ran clean although a value changed: a real escape, of one kind:
  ``false step`` (a step of a changed chain fails at the oracle's points: the engine
  missed it), ``name changed, chain blind`` (a name's displayed definition changed,
  the chain's values did not: the check does not reach what is shown),
  ``consistent, display changed`` (every step still holds; the page shows other
  formulas), ``consistent, display unchanged`` (every step holds and every display is
  identical: only the instance's internals changed).

When there are more mutants than ``--max``, they are sampled with ``--seed``,
stratified by operator (round robin over the operators, random within each),
so that every kind of change is tried. The table goes to stdout, a JSON report
to ``/tmp/mutations-NAME.json``.
"""

from __future__ import annotations

import argparse
import ast
import copy
import json
import os
import random
import subprocess
import sys
import tempfile
import time
from collections import Counter, defaultdict
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
RELATIONS = ("eq", "le", "ge", "propto", "const")
#: Calls whose arguments are structure, not mathematics (names, indices, loops).
STRUCTURAL_CALLS = {"symbols", "Symbol", "range", "len", "int", "float", "str", "print", "zip", "dict", "enumerate", "product"}
#: Methods of helper classes that only print (a display helper's math is what is evaluated; its printing is not).
PRINTING_METHODS = {"_latex", "sort_key", "__repr__", "_repr_latex_", "_repr_markdown_"}
ORACLE_POINTS = 8
TOLERANCE = 1e-9


# -- reading the page -----------------------------------------------------------------------------------------------


@dataclass
class Cell:
    index: int  # index in the notebook's cell list
    source: str  # the code as executed (magics transformed)
    line: int  # line of the .md file where the cell's code starts


def read_cells(page: Path) -> list[Cell]:
    import jupytext
    from IPython.core.inputtransformer2 import TransformerManager

    notebook = jupytext.read(page)
    text = page.read_text()
    transformer = TransformerManager()
    cells, position = [], 0
    for index, cell in enumerate(notebook.cells):
        if cell.cell_type != "code":
            continue
        fence = text.find("```{code-cell}", position)
        start = text.find(cell.source, fence) if cell.source else fence
        line = text.count("\n", 0, max(start, 0)) + 1
        position = max(start, fence) + len(cell.source)
        if "google.colab" in cell.source:
            continue
        cells.append(Cell(index, transformer.transform_cell(cell.source), line))
    return cells


# -- where to mutate ------------------------------------------------------------------------------------------------


def _call_name(node: ast.AST) -> str:
    if isinstance(node, ast.Call):
        node = node.func
    if isinstance(node, ast.Name):
        return node.id
    if isinstance(node, ast.Attribute):
        return node.attr
    return ""


def _is_chain(node: ast.AST, derivation_names: set[str]) -> bool:
    """Whether ``node`` evaluates to a Derivation: ``Derivation(...)``, a name bound to one, or a step of one."""
    if isinstance(node, ast.Call):
        if isinstance(node.func, ast.Name) and node.func.id == "Derivation":
            return True
        if isinstance(node.func, ast.Attribute) and node.func.attr in RELATIONS:
            return _is_chain(node.func.value, derivation_names)
        return False
    return isinstance(node, ast.Name) and node.id in derivation_names


def _bound_names(target: ast.AST) -> list[str]:
    if isinstance(target, ast.Name):
        return [target.id]
    if isinstance(target, (ast.Tuple, ast.List)):
        return [name for element in target.elts for name in _bound_names(element)]
    return []


def _loads(node: ast.AST) -> set[str]:
    return {n.id for n in ast.walk(node) if isinstance(n, ast.Name) and isinstance(n.ctx, ast.Load)}


@dataclass
class Site:
    """A region of one cell's tree where mutants are made: a step argument, or a definition's value."""

    cell: int  # position in the list of cells
    kind: str  # "step" (an argument of a chain), "definition", or "helper" (a function or class a chain uses)
    root: ast.AST  # the expression (or statement) to mutate, in the cell's tree
    label: str  # e.g. "step arg of .eq" or "definition of p_x_z1"


def _outside_printing(statement: ast.AST):
    """The nodes of a function or class, leaving out methods that only print."""
    stack = [statement]
    while stack:
        node = stack.pop()
        yield node
        stack.extend(
            child for child in ast.iter_child_nodes(node) if not (isinstance(child, ast.FunctionDef) and child.name in PRINTING_METHODS)
        )


def find_sites(cells: list[Cell]) -> tuple[list[ast.Module], list[Site]]:
    trees = [ast.parse(cell.source) for cell in cells]
    derivation_names: set[str] = set()
    sites: list[Site] = []
    chain_roots: set[int] = set()  # ids of statements' values that are chains
    used: set[str] = set()
    definitions: dict[str, list[tuple[int, ast.stmt]]] = defaultdict(list)
    for number, tree in enumerate(trees):
        for statement in tree.body:
            if isinstance(statement, ast.Assign) and _is_chain(statement.value, derivation_names):
                for target in statement.targets:
                    derivation_names.update(_bound_names(target))
            for node in ast.walk(statement):
                if isinstance(node, ast.Call) and _is_chain(node, derivation_names):
                    is_start = isinstance(node.func, ast.Name)
                    label = "Derivation start" if is_start else f"step arg of .{node.func.attr}"
                    for argument in node.args[:1]:
                        sites.append(Site(number, "step", argument, label))
                        used |= _loads(argument)
                    chain_roots.add(id(node))
            if isinstance(statement, (ast.Assign, ast.AnnAssign, ast.AugAssign)):
                targets = statement.targets if isinstance(statement, ast.Assign) else [statement.target]
                for target in targets:
                    for name in _bound_names(target):
                        definitions[name].append((number, statement))
            elif isinstance(statement, (ast.FunctionDef, ast.ClassDef)):
                definitions[statement.name].append((number, statement))
    # definitions the chains use, transitively (a statement whose value is a chain is already covered by its steps)
    seen: set[int] = set()
    work = sorted(used)
    while work:
        name = work.pop()
        for number, statement in definitions.get(name, []):
            if id(statement) in seen:
                continue
            seen.add(id(statement))
            if isinstance(statement, (ast.FunctionDef, ast.ClassDef)):
                for node in _outside_printing(statement):
                    if isinstance(node, (ast.Return, ast.Assign)) and node.value is not None:
                        sites.append(Site(number, "helper", node.value, f"helper {statement.name}"))
                work.extend(sorted(_loads(statement) - {name}))
                continue
            value = statement.value
            if value is None or any(id(n) in chain_roots for n in ast.walk(value)):
                continue
            names = [n for t in getattr(statement, "targets", [getattr(statement, "target", None)]) for n in _bound_names(t)]
            sites.append(Site(number, "definition", value, "definition of " + ", ".join(names)))
            work.extend(sorted(_loads(value) - set(names)))
    return trees, sites


# -- the mutation operators ------------------------------------------------------------------------------------------


@dataclass
class Mutant:
    id: int
    op: str
    what: str
    cell: int  # position in the list of cells
    md_line: int
    site: str
    kind: str
    source: str = ""  # the mutated cell
    renamed: list = field(default_factory=list)  # the two symbols a sym-swap exchanged (the oracle tries the renaming)
    verdict: str = ""
    step: str = ""  # the step a StepError named
    detail: str = ""
    oracle: dict = field(default_factory=dict)
    seconds: float = 0.0


def _short(node: ast.AST, limit: int = 70) -> str:
    text = ast.unparse(node)
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _walk_site(root: ast.AST):
    """Nodes of a site, skipping keyword values, subscript indices, strings and structural calls."""
    stack = [root]
    while stack:
        node = stack.pop()
        yield node
        for name, value in ast.iter_fields(node):
            if name in ("keywords", "slice", "decorator_list", "returns", "annotation"):
                continue
            if isinstance(node, ast.comprehension) and name == "iter":  # which atoms or rows a table has: structure
                continue
            if isinstance(node, ast.Call) and name == "func":
                continue
            if isinstance(node, ast.Call) and _call_name(node) in STRUCTURAL_CALLS:
                continue
            if isinstance(node, ast.FunctionDef) and name == "args":
                continue
            children = value if isinstance(value, list) else [value]
            stack.extend(reversed([c for c in children if isinstance(c, ast.AST)]))


def _negate(node: ast.expr) -> ast.expr:
    if isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.USub):
        return node.operand
    return ast.UnaryOp(ast.USub(), node)


def candidates(site: Site, symbols: dict[str, str]) -> list[tuple]:
    """(op, what, (target, edit)[, renamed pair]) for one site.

    ``edit`` gets the copy of ``target`` in a copy of the cell's tree and returns its replacement.
    """
    found: list[tuple[str, str, object]] = []
    nodes = list(_walk_site(site.root))
    parents = {id(child): parent for parent in nodes for child in ast.iter_child_nodes(parent)}

    def context(node: ast.AST) -> ast.AST:
        """The smallest call, operation or tuple around ``node`` (what a reader needs to find the change)."""
        parent = parents.get(id(node), node)
        while parent is not site.root and isinstance(parent, (ast.UnaryOp, ast.Constant)) and id(parent) in parents:
            parent = parents[id(parent)]
        return parent
    for node in nodes:
        if isinstance(node, ast.BinOp) and isinstance(node.op, (ast.Add, ast.Sub)):
            sign = "+" if isinstance(node.op, ast.Add) else "-"
            other = "-" if sign == "+" else "+"

            def flip(n):
                n.op = ast.Sub() if isinstance(n.op, ast.Add) else ast.Add()
                return n

            found.append(("flip", f"{sign} → {other} in {_short(node)}", (node, flip)))
            found.append(("drop", f"drop {_short(node.right, 40)} from {_short(node)}", (node, lambda n: n.left)))
            found.append(
                ("drop", f"drop {_short(node.left, 40)} from {_short(node)}",
                 (node, lambda n: n.right if isinstance(n.op, ast.Add) else _negate(n.right)))
            )
        if isinstance(node, ast.Call) and _call_name(node) == "in_order" and len(node.args) >= 2:
            for index, term in enumerate(node.args):
                if isinstance(term, ast.Starred):
                    continue

                def negate(n, i=index):
                    n.args[i] = _negate(n.args[i])
                    return n

                def drop(n, i=index):
                    del n.args[i]
                    return n

                found.append(("flip", f"flip the sign of term {index + 1} ({_short(term, 40)}) of in_order", (node, negate)))
                found.append(("drop", f"drop term {index + 1} ({_short(term, 40)}) of in_order", (node, drop)))
        if isinstance(node, ast.Constant) and type(node.value) in (int, float):
            value = node.value

            def bump(n):
                n.value = n.value + 1
                return n

            found.append(("const", f"{value!r} → {value + 1!r} in {_short(context(node), 60)}", (node, bump)))
        if isinstance(node, ast.Call) and _call_name(node) == "KL" and len(node.args) == 2:

            def swap(n):
                n.args = [n.args[1], n.args[0]]
                return n

            found.append(("kl-swap", f"KL({_short(node.args[0], 30)}, {_short(node.args[1], 30)}) → swapped", (node, swap)))
        if isinstance(node, ast.BinOp) and isinstance(node.op, ast.Pow) and isinstance(node.right, ast.Constant) and node.right.value == 2:
            found.append(("square", f"{_short(node, 40)} → {_short(node.left, 40)}", (node, lambda n: n.left)))
        if isinstance(node, ast.Name) and isinstance(node.ctx, ast.Load) and "positive" in symbols.get(node.id, ""):
            found.append(("pos-sq", f"{node.id} → {node.id}**2 in {_short(context(node), 60)}", (node, lambda n: ast.BinOp(n, ast.Pow(), ast.Constant(2)))))
        if isinstance(node, ast.Call) and _call_name(node) == "log" and len(node.args) == 1:
            argument = node.args[0]
            if isinstance(argument, ast.BinOp) and isinstance(argument.op, ast.Div):

                def invert(n):
                    n.args[0] = ast.BinOp(n.args[0].right, ast.Div(), n.args[0].left)
                    return n

                found.append(("log-flip", f"log({_short(argument, 50)}) → log of the inverse", (node, invert)))
        if isinstance(node, ast.Call) and _call_name(node) in ("gaussian", "normal_logpdf") and len(node.args) >= 3:

            def mean(n):
                n.args[1] = ast.BinOp(n.args[1], ast.Add(), ast.Constant(1))
                return n

            def variance(n):
                n.args[2] = ast.BinOp(ast.Constant(2), ast.Mult(), n.args[2])
                return n

            found.append(("gauss", f"mean {_short(node.args[1], 30)} → +1 in {_short(node, 50)}", (node, mean)))
            found.append(("gauss", f"variance {_short(node.args[2], 30)} → ×2 in {_short(node, 50)}", (node, variance)))
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr in ("le", "ge"):
            new = "ge" if node.func.attr == "le" else "le"

            def relation(n, new=new):
                n.func.attr = new
                return n

            found.append(("rel", f".{node.func.attr}(…) → .{new}(…) ({_short(node.args[0], 40) if node.args else ''})", (node, relation)))
    # two symbols of the same assumptions, swapped everywhere in the site
    names = sorted({n.id for n in nodes if isinstance(n, ast.Name) and isinstance(n.ctx, ast.Load) and n.id in symbols})
    for i, first in enumerate(names):
        for second in names[i + 1 :]:
            if symbols[first] != symbols[second]:
                continue
            places = [n for n in nodes if isinstance(n, ast.Name) and isinstance(n.ctx, ast.Load) and n.id in (first, second)]
            owners = {id(parents.get(id(n))) for n in places}
            owner = parents.get(id(places[0]))
            if (len(places) == 2 and len(owners) == 1 and isinstance(owner, ast.BinOp)
                    and isinstance(owner.op, (ast.Add, ast.Mult))):
                continue  # d * z1 → z1 * d: the same expression

            def swap_symbols(root, first=first, second=second):
                for n in _walk_site(root):
                    if isinstance(n, ast.Name) and isinstance(n.ctx, ast.Load) and n.id in (first, second):
                        n.id = second if n.id == first else first
                return root

            found.append(("sym-swap", f"swap {first} ↔ {second} in {_short(site.root, 50)}", (site.root, swap_symbols), (first, second)))
    return found


def _apply(tree: ast.Module, target: ast.AST, edit) -> str:
    """The cell's source with ``edit`` applied to (a copy of) ``target``."""
    nodes = list(ast.walk(tree))
    position = next(i for i, n in enumerate(nodes) if n is target)
    mutated = copy.deepcopy(tree)
    copies = list(ast.walk(mutated))
    node = copies[position]
    parents = {id(child): parent for parent in copies for child in ast.iter_child_nodes(parent)}
    replacement = edit(node)
    if replacement is not node:
        parent = parents[id(node)]
        for name, value in ast.iter_fields(parent):
            if value is node:
                setattr(parent, name, replacement)
            elif isinstance(value, list):
                for i, child in enumerate(value):
                    if child is node:
                        value[i] = replacement
    ast.fix_missing_locations(mutated)
    return ast.unparse(mutated)


def make_mutants(cells: list[Cell], symbols_by_cell: dict[int, dict[str, str]]) -> list[Mutant]:
    trees, sites = find_sites(cells)
    originals = [ast.unparse(tree) for tree in trees]
    mutants: list[Mutant] = []
    seen: set[tuple[int, str]] = set()
    for site in sites:
        symbols = symbols_by_cell.get(site.cell, {})
        for op, what, (target, edit), *renamed in candidates(site, symbols):
            try:
                source = _apply(trees[site.cell], target, edit)
                compile(source, "<mutant>", "exec")
            except (SyntaxError, ValueError, TypeError, AttributeError, IndexError):
                continue
            if source == originals[site.cell] or (site.cell, source) in seen:
                continue
            seen.add((site.cell, source))
            line = cells[site.cell].line + getattr(target, "lineno", 1) - 1
            mutants.append(Mutant(len(mutants), op, what, site.cell, line, site.label, site.kind, source,
                                  renamed=[str(n) for n in renamed[0]] if renamed else []))
    return mutants


def sample(mutants: list[Mutant], limit: int, seed: int) -> list[Mutant]:
    """At most ``limit`` mutants: round robin over the operators, random within each (stratified)."""
    if len(mutants) <= limit:
        return mutants
    rng = random.Random(seed)
    groups: dict[str, list[Mutant]] = defaultdict(list)
    for mutant in mutants:
        groups[mutant.op].append(mutant)
    for group in groups.values():
        rng.shuffle(group)
    order = sorted(groups)
    rng.shuffle(order)
    chosen: list[Mutant] = []
    while len(chosen) < limit:
        for op in order:
            if groups[op] and len(chosen) < limit:
                chosen.append(groups[op].pop())
    return sorted(chosen, key=lambda m: m.id)


# -- running a page (the child process) -----------------------------------------------------------------------------


def _symbol_key(symbol) -> str:
    return ",".join(sorted(k for k, v in symbol.assumptions0.items() if v))


def _draw(symbol, k: int, domain: dict) -> object:
    """The oracle's value of ``symbol`` at point ``k``: fixed by the symbol's name, so every run draws the same."""
    import sympy as sp

    rng = random.Random(f"{symbol.name}|{_symbol_key(symbol)}|{k}")
    wide = k >= ORACLE_POINTS - 2
    if symbol in domain:
        low, high = (float(v) for v in domain[symbol])
        if symbol.is_integer:
            return sp.Integer(rng.randint(int(low), int(high)))
        value = low + (high - low) * rng.uniform(0.05, 0.95)
    elif symbol.is_integer:
        return sp.Integer(rng.randint(1, 4) if symbol.is_positive else rng.randint(-2, 2))
    elif symbol.is_positive or symbol.is_nonnegative:
        value = 10 ** rng.uniform(-2, 2) if wide else rng.uniform(0.3, 2.5)
    else:
        value = rng.choice((-1, 1)) * 10 ** rng.uniform(-2, 2) if wide else rng.uniform(-2.0, 2.0)
    return sp.Float(repr(value), 50)


def _number(value) -> list | None:
    return None if value is None else [float(value.real), float(value.imag)]


def oracle_dump(derivations: list, renamed: list[str] = ()) -> list[dict]:
    """Each derivation's expressions evaluated on the instance at the oracle's points (and at moved points for ∝, =_c)."""
    from dgm.derivations.derive import _concrete, _Side
    from dgm.derivations.notation import latex

    dump = []
    for derivation in derivations:
        exprs = [derivation.start, *(step.expr for step in derivation.steps)]
        entry = {
            "title": derivation.title,
            "relations": [step.relation for step in derivation.steps],
            "checks": [step.check for step in derivation.steps],
            "wrt": [[str(s) for s in step.wrt] for step in derivation.steps],
            "latex": [latex(e)[:300] for e in exprs],
            "display": "\n".join([latex(derivation.start), *(f"{s.relation} {s.latex}" for s in derivation.steps)])
            + "\n" + derivation._definitions(),
            "values": [],
            "moved": [],
        }
        domain = dict(derivation.sampler.domain)
        try:
            names = derivation.names()
            concrete = [_concrete(e) for e in exprs]
            named = [_concrete(n) for n in names]
            symbols = sorted(set().union(*(c.free_symbols for c in concrete + named)), key=str)
            sides = [_Side(c, symbols) for c in concrete]
            points = [{s: _draw(s, k, domain) for s in symbols} for k in range(ORACLE_POINTS)]
            entry["values"] = [[_number(side.at(p)) for p in points] for side in sides]
            entry["named"] = {latex(n): [_number(_Side(c, symbols).at(p)) for p in points] for n, c in zip(names, named)}
            by_name = {str(s): s for s in symbols}
            present = [by_name[n] for n in renamed if n in by_name]
            if len(renamed) == 2 and present:
                import sympy as sp

                # the two have the same assumptions; one may not occur in this derivation: draw it as it would be drawn
                first, second = (by_name.get(n) or sp.Symbol(n, **present[0].assumptions0) for n in renamed)
                if domain.get(first) == domain.get(second):  # a renaming only if both range over the same values
                    swapped = [{**p, first: _draw(second, k, domain), second: _draw(first, k, domain)} for k, p in enumerate(points)]
                    swapped = [{s: v for s, v in p.items() if s in set(symbols)} for p in swapped]
                    entry["renamed_values"] = [[_number(side.at(p)) for p in swapped] for side in sides]
                    entry["renamed_named"] = {latex(n): [_number(_Side(c, symbols).at(p)) for p in swapped] for n, c in zip(names, named)}
            for number, step in enumerate(derivation.steps, start=1):
                if not step.wrt:
                    entry["moved"].append(None)
                    continue
                moved = [{**p, **{s: _draw(s, k + 100, domain) for s in step.wrt if s in p}} for k, p in enumerate(points)]
                entry["moved"].append([[_number(sides[number - 1].at(p)), _number(sides[number].at(p))] for p in moved])
            entry["points"] = [{str(s): float(v) for s, v in p.items()} for p in points[:3]]
        except Exception as error:  # noqa: BLE001 - the oracle reports what it could not evaluate
            entry["error"] = f"{type(error).__name__}: {error}"[:300]
        dump.append(entry)
    return dump


def child(job_path: str) -> None:
    job = json.loads(Path(job_path).read_text())
    import contextlib
    import io
    import traceback

    import matplotlib

    matplotlib.use("Agg")
    import IPython.display
    import sympy as sp

    def nothing(*args, **kwargs):
        return None

    IPython.display.display = nothing
    try:
        import IPython.core.display_functions as display_functions

        display_functions.display = nothing
    except ImportError:
        pass
    from dgm.derivations.derive import StepError, recording

    page = Path(job["page"])
    replace = {int(k): v for k, v in job.get("replace", {}).items()}
    cells = read_cells(page)
    namespace: dict = {"__name__": "__page__", "display": nothing}
    result: dict = {"status": "clean", "symbols": {}}
    started = time.time()
    with recording() as derivations:
        for number, cell in enumerate(cells):
            source = replace.get(number, cell.source)
            try:
                with contextlib.redirect_stdout(io.StringIO()):
                    exec(compile(source, f"{page.name}#cell{number}", "exec"), namespace)
            except StepError as error:
                first = str(error).splitlines()[0] if str(error) else ""
                result.update(status="rejected", cell=number, message=str(error)[:1500], step=first)
                break
            except Exception as error:  # noqa: BLE001 - every other failure is the mutant breaking the code
                frames = traceback.extract_tb(error.__traceback__)
                where = next((f"{f.filename}:{f.lineno}" for f in reversed(frames) if f.filename.startswith(page.name)), "")
                tb = error.__traceback__
                while tb is not None:  # was the engine checking a step when it failed? (it could not evaluate the mutant)
                    code = tb.tb_frame.f_code
                    if code.co_name == "_verify" and code.co_filename.endswith("derive.py"):
                        local = tb.tb_frame.f_locals
                        where += f"; while checking step {local.get('number')} of {getattr(local.get('self'), 'title', '')!r}"
                    tb = tb.tb_next
                result.update(
                    status="error", cell=number, type=type(error).__name__, message=f"{type(error).__name__}: {error}"[:600], where=where
                )
                break
            result["symbols"][number] = {
                name: _symbol_key(value) for name, value in namespace.items() if isinstance(value, sp.Symbol) and not name.startswith("_")
            }
        result["derivations_made"] = len(derivations)
        result["run_seconds"] = round(time.time() - started, 2)
        if result["status"] == "clean" and job.get("oracle", True):
            renamed = [str(namespace[n]) for n in job.get("renamed", []) if isinstance(namespace.get(n), sp.Symbol)]
            result["oracle"] = oracle_dump(derivations, renamed)
    Path(job["out"]).write_text(json.dumps(result))


def run_child(page: Path, replace: dict[int, str], timeout: float, renamed: list[str] = ()) -> dict:
    with tempfile.TemporaryDirectory(prefix="mutate-") as folder:
        job, out = Path(folder) / "job.json", Path(folder) / "out.json"
        job.write_text(json.dumps({"page": str(page), "replace": replace, "out": str(out), "renamed": list(renamed)}))
        env = {**os.environ, "MPLBACKEND": "Agg", "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1",
               "DGM_PROFILE": os.environ.get("DGM_PROFILE", "quick"), "DGM_PROGRESS": "0", "PYTHONHASHSEED": "0"}
        try:
            process = subprocess.run([sys.executable, __file__, "--child", str(job)], cwd=ROOT, env=env, timeout=timeout,
                                     capture_output=True, text=True)
        except subprocess.TimeoutExpired:
            return {"status": "timeout"}
        if not out.exists():
            return {"status": "error", "type": "crash", "message": (process.stderr or "")[-600:]}
        return json.loads(out.read_text())


# -- the oracle's verdict (parent) ----------------------------------------------------------------------------------


def _close(a, b) -> bool:
    if a is None or b is None:
        return a is None and b is None
    x, y = complex(*a), complex(*b)
    return abs(x - y) <= TOLERANCE * (1 + max(abs(x), abs(y)))


def _holds(relation: str, left, right) -> bool | None:
    if left is None or right is None:
        return None
    x, y = complex(*left), complex(*right)
    scale = TOLERANCE * (1 + max(abs(x), abs(y)))
    if relation == "=":
        return abs(x - y) <= scale
    if relation == "<=":
        return abs(x.imag) <= scale and abs(y.imag) <= scale and y.real - x.real >= -scale
    if relation == ">=":
        return abs(x.imag) <= scale and abs(y.imag) <= scale and x.real - y.real >= -scale
    return None


def _false_steps(after: dict) -> list[dict]:
    """The steps of a (changed) chain that fail at the oracle's points: an independent check, not the engine's."""
    found = []
    for number, relation in enumerate(after["relations"], start=1):
        lefts, rights = after["values"][number - 1], after["values"][number]
        if relation in ("=", "<=", ">="):
            bad = [k for k, (a, b) in enumerate(zip(lefts, rights)) if _holds(relation, a, b) is False]
            if bad:
                found.append({"step": number, "relation": relation, "check": after["checks"][number - 1], "point": bad[0],
                              "left": lefts[bad[0]], "right": rights[bad[0]]})
            continue
        moved = after["moved"][number - 1] or []
        for k, (a, b) in enumerate(zip(lefts, rights)):
            if k >= len(moved) or None in (a, b, *moved[k]):
                continue
            (a2, b2) = moved[k]
            x, y, x2, y2 = complex(*a), complex(*b), complex(*a2), complex(*b2)
            if relation == "propto":
                if y == 0 or y2 == 0:
                    continue
                first, second = x / y, x2 / y2
                bad = first.real <= 0 or abs(first - second) > 1e-7 * (1 + abs(first))
            else:
                first, second = x - y, x2 - y2
                bad = abs(first - second) > 1e-7 * (1 + abs(first))
            if bad:
                found.append({"step": number, "relation": relation, "check": after["checks"][number - 1], "point": k,
                              "ratio_or_difference": [str(first), str(second)]})
                break
    return found


def judge_accepted(original: list[dict], mutated: list[dict]) -> dict:
    """EQUIVALENT or SLIPPED for a page that ran clean, from the oracle's values (kinds as in the module docstring)."""
    if len(original) != len(mutated):
        return {"verdict": "SLIPPED", "kind": "count", "changed": [], "note": f"{len(mutated)} derivations made, not {len(original)}"}
    changed, renamed, display_only = [], False, []
    for index, (before, after) in enumerate(zip(original, mutated)):
        display = before.get("display") != after.get("display")
        if "error" in after or "error" in before:
            if before.get("error") != after.get("error"):
                changed.append({"derivation": index, "title": after["title"], "display_changed": display, "false_steps": [],
                                "note": f"oracle: {after.get('error') or before.get('error')}"})
            continue
        if len(before["values"]) != len(after["values"]) or before["relations"] != after["relations"]:
            entry = {"derivation": index, "title": after["title"], "display_changed": True, "note": "steps or relations changed"}
        else:
            differing = [j for j, (u, v) in enumerate(zip(before["values"], after["values"])) if not all(map(_close, u, v))]
            if not differing:
                renamed_named = after.get("renamed_named", {})
                shown = [n for n, v in after.get("named", {}).items()
                         if n in before.get("named", {}) and not all(map(_close, before["named"][n], v))
                         and not (n in renamed_named and all(map(_close, before["named"][n], renamed_named[n])))]
                if shown:  # the page shows a name with a changed definition, and the chain's values do not see it
                    changed.append({"derivation": index, "title": after["title"], "display_changed": display, "false_steps": [],
                                    "names_changed": shown, "note": "a name's definition changed; the chain's values did not",
                                    "display_before": before.get("display", "")[:600], "display_after": after.get("display", "")[:600]})
                elif display:
                    display_only.append(after["title"])
                continue
            if "renamed_values" in after and all(
                all(map(_close, u, v)) for u, v in zip(before["values"], after["renamed_values"])
            ):
                renamed = True
                continue
            entry = {"derivation": index, "title": after["title"], "display_changed": display, "exprs": differing}
        entry["false_steps"] = _false_steps(after)
        entry["checks"] = after["checks"]
        if display:
            entry["display_before"], entry["display_after"] = before.get("display", "")[:600], after.get("display", "")[:600]
        changed.append(entry)
    if not changed:
        note = "a renaming of two symbols" if renamed else "every value unchanged"
        if display_only:
            note += "; the display changed in " + ", ".join(map(repr, display_only)) + " (a rewrite: same values)"
        return {"verdict": "EQUIVALENT", "note": note, "display_changed": display_only}
    if any(c["false_steps"] for c in changed):
        kind = "false step"
    elif any(c.get("names_changed") for c in changed):
        kind = "name changed, chain blind"
    elif any(c.get("note", "").startswith("oracle") for c in changed):
        kind = "oracle could not evaluate"
    else:
        kind = "consistent, display " + ("changed" if any(c["display_changed"] for c in changed) else "unchanged")
    return {"verdict": "SLIPPED", "kind": kind, "changed": changed}


# -- the driver -----------------------------------------------------------------------------------------------------


def run_mutant(page: Path, mutant: Mutant, original: dict, timeout: float) -> Mutant:
    started = time.time()
    result = run_child(page, {mutant.cell: mutant.source}, timeout, mutant.renamed)
    mutant.seconds = round(time.time() - started, 1)
    status = result["status"]
    if status == "rejected":
        mutant.verdict, mutant.step = "REJECTED", result.get("step", "")
        mutant.detail = result.get("message", "").splitlines()[-1].strip()[:200] if result.get("message") else ""
    elif status == "error":
        mutant.verdict, mutant.detail = "ERROR", f"[{result.get('where', '')}] {result.get('message', '')}"[:400]
    elif status == "timeout":
        mutant.verdict = "TIMEOUT"
    else:
        verdict = judge_accepted(original["oracle"], result.get("oracle", []))
        mutant.verdict = verdict["verdict"]
        mutant.oracle = verdict
        if mutant.verdict == "SLIPPED":
            parts = []
            for change in verdict.get("changed", []):
                falses = ", ".join(f"[{f['step']}] {f['check']}" for f in change.get("false_steps", []))
                parts.append(f"{change['title']!r}" + (f": false {falses}" if falses else ": steps hold")
                             + ("" if change.get("display_changed") else ", display identical"))
            mutant.detail = f"{verdict['kind']}: " + "; ".join(parts)[:300]
    return mutant


def main() -> None:
    if len(sys.argv) == 3 and sys.argv[1] == "--child":
        child(sys.argv[2])
        return
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("page", type=Path)
    parser.add_argument("--max", type=int, default=40)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--jobs", type=int, default=2)
    parser.add_argument("--timeout", type=float, default=120)
    parser.add_argument("--out", type=Path)
    parser.add_argument("--ids", help="run only these mutant ids (comma-separated), e.g. to rerun a slip")
    parser.add_argument("--list", action="store_true", help="list the sampled mutants (and their sources with -v) and stop")
    parser.add_argument("-v", "--verbose", action="store_true")
    args = parser.parse_args()
    page = args.page.resolve()
    name = page.stem
    out = args.out or Path(f"/tmp/mutations-{name}.json")
    started = time.time()

    original = run_child(page, {}, max(args.timeout, 300))
    if original["status"] != "clean":
        sys.exit(f"the unmutated page does not run clean: {original.get('message', original['status'])}")
    cells = read_cells(page)
    symbols = {int(k): v for k, v in original["symbols"].items()}
    everything = make_mutants(cells, symbols)
    if args.ids:
        wanted = {int(i) for i in args.ids.split(",")}
        chosen = [m for m in everything if m.id in wanted]
    else:
        chosen = sample(everything, args.max, args.seed)
    by_op = Counter(m.op for m in everything)
    print(f"book/{name}.md: {original['derivations_made']} derivations, {len(everything)} mutants "
          f"({', '.join(f'{k} {v}' for k, v in sorted(by_op.items()))}); running {len(chosen)}, seed {args.seed}, jobs {args.jobs}")
    if args.list:
        for mutant in chosen:
            print(f"{mutant.id:4d} {mutant.op:8s} md:{mutant.md_line:<4d} {mutant.kind:10s} {mutant.what}")
        return

    with ThreadPoolExecutor(max_workers=max(1, args.jobs)) as pool:
        futures = [pool.submit(run_mutant, page, m, original, args.timeout) for m in chosen]
        for future in futures:
            m = future.result()
            print(f"  #{m.id:<4d} {m.op:8s} md:{m.md_line:<4d} {m.verdict:10s} {m.seconds:5.1f}s  {m.what[:90]}", flush=True)

    print()
    print(f"{'id':>5}  {'op':8}  {'line':>5}  {'verdict':10}  what / step named")
    for m in chosen:
        print(f"{m.id:>5}  {m.op:8}  {m.md_line:>5}  {m.verdict:10}  {m.what[:100]}")
        if m.step:
            print(f"{'':35}{m.step[:140]}")
        if m.verdict in ("ERROR", "SLIPPED") and m.detail:
            print(f"{'':35}{m.detail[:200]}")
    counts = Counter(m.verdict for m in chosen)
    order = ("REJECTED", "ERROR", "TIMEOUT", "EQUIVALENT", "SLIPPED")
    summary = " / ".join(f"{v} {counts.get(v, 0)}" for v in order)
    kinds = Counter(m.oracle.get("kind") for m in chosen if m.verdict == "SLIPPED")
    if kinds:
        summary += " (" + ", ".join(f"{k} {v}" for k, v in sorted(kinds.items())) + ")"
    print(f"\nbook/{name}.md: {summary}  ({len(chosen)} of {len(everything)} mutants, {time.time() - started:.0f} s)")
    report = {
        "page": f"book/{name}.md",
        "seed": args.seed,
        "max": args.max,
        "mutants_total": len(everything),
        "mutants_by_op": dict(by_op),
        "derivations": original["derivations_made"],
        "counts": {v: counts.get(v, 0) for v in order},
        "slipped_kinds": dict(kinds),
        "seconds": round(time.time() - started, 1),
        "mutants": [asdict(m) for m in chosen],
    }
    out.write_text(json.dumps(report, indent=1, ensure_ascii=False))
    print(f"report: {out}")


if __name__ == "__main__":
    main()
