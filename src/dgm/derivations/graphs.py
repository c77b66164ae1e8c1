"""Graphical models on a few binary variables: the graph statements of book/pgm, checked two ways.

A :class:`BayesNet` holds a DAG (a ``networkx.DiGraph``) and one conditional
probability table per node; a :class:`MarkovNet` holds an undirected graph
(a ``networkx.Graph``) and one positive potential per clique, its joint the
Gibbs distribution $p(x) = \\frac1Z \\prod_C \\psi_C(x_C)$. Statements *about
the graph* (d-separation, separation, Markov blankets, moralisation,
chordality) come from networkx; statements *about the distribution* (is X
independent of Y given Z?) are decided from the full joint table: numerically
for the numbers in the tables, or exactly, with every table entry a free
symbol (:meth:`independent` with ``exact=True``: the independence is then a
polynomial identity, true for every choice of the tables or for almost none).
The chapter checks that the two agree: every separation holds in the
distribution (the graph is an I-map), and with random tables nothing else
does (it is a perfect map).

:func:`claims_table` shows a page's statements with how each was checked, and
refuses one that does not hold.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterable, Sequence

import networkx as nx
import numpy as np
import sympy as sp

#: The student network of book/pgm's exercises (after Koller and Friedman): Difficulty, Intelligence, Grade,
#: SAT score, Letter, Job, Happy. A v-structure D → G ← I and a chain G → L → J.
STUDENT_NETWORK = [("D", "G"), ("I", "G"), ("I", "S"), ("G", "L"), ("L", "J"), ("S", "J"), ("G", "H"), ("J", "H")]
#: The seven-node Markov network of book/pgm's exercises: triangles A–B–C and D–E–F, the chordless
#: 4-cycle B–D–E–C, and a leaf G on F.
SEVEN_NODE_MARKOV_NETWORK = [("A", "B"), ("A", "C"), ("B", "C"), ("B", "D"), ("C", "E"), ("D", "E"), ("D", "F"),
                             ("E", "F"), ("F", "G")]  # fmt: skip


class _JointTable:
    """What a model on binary variables shares: a joint table from its factors, marginals, independence."""

    order: list[str]

    def _factors(self, exact: bool) -> list[tuple[tuple[str, ...], np.ndarray]]:
        """``(scope, table)`` pairs whose product over the scopes is the joint (up to a constant)."""
        raise NotImplementedError

    def _check_nodes(self, *groups: Iterable[str]) -> list[list[str]]:
        groups = [list(group) for group in groups]
        known = set(self.order)
        for group in groups:
            unknown = [v for v in group if v not in known]
            if unknown:
                raise ValueError(f"{', '.join(map(str, unknown))} is no node of this graph; its nodes are {', '.join(self.order)}")
        for first, second in itertools.combinations(groups, 2):
            shared = set(first) & set(second)
            if shared:
                raise ValueError(f"{', '.join(sorted(shared))} appears on two sides of the statement; the sets must be disjoint")
        return groups

    @staticmethod
    def _graph(graph: nx.Graph, edges: Iterable[tuple[str, str]], nodes: Iterable[str]) -> nx.Graph:
        """``graph`` (empty, directed or not) with ``nodes`` and the nodes and edges that ``edges`` name."""
        graph.add_nodes_from(nodes)
        graph.add_edges_from(edges)
        return graph

    def joint(self, exact: bool = False) -> np.ndarray:
        """The joint table, one axis per node in :attr:`order`.

        With ``exact=False`` the numbers, normalised; with ``exact=True`` an object array of SymPy
        expressions in the free table entries: the product of the factors (for a Markov network this is
        the unnormalised $\\prod_C \\psi_C$, proportional to the joint).
        """
        n = len(self.order)
        joint = np.full((2,) * n, sp.Integer(1), dtype=object) if exact else np.ones((2,) * n)
        for scope, table in self._factors(exact):
            # the factor's axes moved to its nodes' places in the joint, broadcast over the others
            places = [self.order.index(v) for v in scope]
            shape = [2 if axis in places else 1 for axis in range(n)]
            joint = joint * np.transpose(table, np.argsort(places)).reshape(shape)
        return joint if exact else joint / joint.sum()

    def marginal(self, nodes: Sequence[str], exact: bool = False) -> np.ndarray:
        """``P(nodes)``, axes in the order given (``exact``: as :meth:`joint`)."""
        (nodes,) = self._check_nodes(nodes)
        keep = [self.order.index(v) for v in nodes]
        dropped = tuple(i for i in range(len(self.order)) if i not in keep)
        table = self.joint(exact).sum(axis=dropped) if dropped else self.joint(exact)
        kept_sorted = sorted(keep)
        return np.transpose(table, [kept_sorted.index(i) for i in keep])

    def independent(
        self, x: Iterable[str], y: Iterable[str], given: Iterable[str] = (), tol: float = 1e-10, exact: bool = False
    ) -> bool:
        """Whether ``P(x, y | given) = P(x | given) P(y | given)`` for every assignment, from the joint table.

        ``exact=False``: for the numbers in the tables, to ``tol``. ``exact=True``: for every choice of the
        tables, as an identity between polynomials in their free entries (expanded and compared with 0).
        """
        x, y, z = self._check_nodes(x, y, given)
        if not x or not y:
            raise ValueError("an independence statement needs at least one node on each side")
        table = self.marginal(x + y + z, exact)  # axes: x..., y..., z...
        nx_, ny = len(x), len(y)
        p_z, p_xz, p_yz = (  # arrays even when a sum leaves a single entry (a SymPy scalar, with exact)
            np.asarray(table.sum(axis=axes), dtype=table.dtype)
            for axes in (tuple(range(nx_ + ny)), tuple(range(nx_, nx_ + ny)), tuple(range(nx_)))
        )
        # P(x, y, z) P(z) = P(x, z) P(y, z) for all x, y, z (both sides homogeneous: a constant Z cancels)
        lhs = table * p_z
        rhs = p_xz.reshape(p_xz.shape[:nx_] + (1,) * ny + p_z.shape) * p_yz.reshape((1,) * nx_ + p_yz.shape)
        if exact:
            return all(sp.expand(left - right) == 0 for left, right in zip(lhs.ravel(), np.broadcast_to(rhs, lhs.shape).ravel()))
        return bool(np.abs(lhs - rhs).max() < tol)


class BayesNet(_JointTable):
    """A DAG over binary variables with a random conditional table ``P(node = 1 | parents)`` per node.

    Args:
        edges: ``[(parent, child), ...]``; the nodes are those the edges name, plus ``nodes``.
        nodes: extra nodes without edges.
        seed: seed of the random tables (probabilities drawn uniformly from [0.1, 0.9]).
    """

    def __init__(self, edges: Iterable[tuple[str, str]], nodes: Iterable[str] = (), seed: int = 0) -> None:
        self.graph = self._graph(nx.DiGraph(), edges, nodes)
        if not nx.is_directed_acyclic_graph(self.graph):
            raise ValueError(f"a Bayesian network needs an acyclic graph; {list(nx.find_cycle(self.graph))} is a cycle")
        self.order: list[str] = list(nx.topological_sort(self.graph))
        rng = np.random.default_rng(seed)
        # tables[v][parent values] = P(v = 1 | parents), one entry per assignment of the parents
        self.tables = {v: rng.uniform(0.1, 0.9, size=(2,) * len(self.parents(v))) for v in self.order}

    def parents(self, node: str) -> list[str]:
        return sorted(self.graph.predecessors(node))

    def _factors(self, exact: bool) -> list[tuple[tuple[str, ...], np.ndarray]]:
        factors = []
        for v in self.order:
            parents = self.parents(v)
            table = np.empty((2,) * (len(parents) + 1), dtype=object if exact else float)  # axes: parents..., v
            for key in itertools.product((0, 1), repeat=len(parents)):
                if exact:  # θ_{v | key} = P(v = 1 | parents = key), a free symbol
                    label = rf"{v} \mid {''.join(map(str, key))}" if parents else v
                    p_one = sp.Symbol(rf"\theta_{{{label}}}", positive=True)
                else:
                    p_one = self.tables[v][key]
                table[key + (0,)], table[key + (1,)] = 1 - p_one, p_one
            factors.append(((*parents, v), table))
        return factors

    def d_separated(self, x: Iterable[str], y: Iterable[str], given: Iterable[str] = ()) -> bool:
        """Whether the graph d-separates ``x`` from ``y`` given ``given`` (networkx)."""
        x, y, z = self._check_nodes(x, y, given)
        return nx.is_d_separator(self.graph, set(x), set(y), set(z))

    def markov_blanket(self, node: str) -> set[str]:
        """Parents, children, and the children's other parents."""
        children = set(self.graph.successors(node))
        co_parents = {p for child in children for p in self.graph.predecessors(child)}
        return (set(self.graph.predecessors(node)) | children | co_parents) - {node}

    def moral_graph(self) -> nx.Graph:
        """The undirected graph with the parents of each node married and the directions dropped."""
        return nx.moral_graph(self.graph)


class MarkovNet(_JointTable):
    """An undirected graph over binary variables with a positive potential on each maximal clique.

    The joint is the Gibbs distribution $\\frac1Z \\prod_C \\psi_C(x_C)$. :attr:`potentials` maps a
    clique (a tuple of nodes, the axes of its table in that order) to its table of shape ``(2,) * size``;
    replace or add entries to set other potentials, on any cliques (a scope that is not a clique is refused
    when the joint is built).

    Args:
        edges: ``[(u, v), ...]``; the nodes are those the edges name, plus ``nodes``, in sorted order.
        nodes: extra nodes without edges.
        seed: seed of the random potentials (entries drawn uniformly from [0.2, 5]).
    """

    def __init__(self, edges: Iterable[tuple[str, str]], nodes: Iterable[str] = (), seed: int = 0) -> None:
        self.graph = self._graph(nx.Graph(), edges, nodes)
        if nx.number_of_selfloops(self.graph):
            raise ValueError(f"a Markov network has no self-loops; {list(nx.selfloop_edges(self.graph))} are")
        self.order: list[str] = sorted(self.graph.nodes)
        rng = np.random.default_rng(seed)
        self.potentials: dict[tuple[str, ...], np.ndarray] = {
            clique: rng.uniform(0.2, 5.0, size=(2,) * len(clique)) for clique in self.cliques()
        }

    def cliques(self) -> list[tuple[str, ...]]:
        """The maximal cliques, each sorted, in sorted order (networkx's ``find_cliques``)."""
        return sorted(tuple(sorted(clique)) for clique in nx.find_cliques(self.graph))

    def _factors(self, exact: bool) -> list[tuple[tuple[str, ...], np.ndarray]]:
        factors = []
        for scope, table in self.potentials.items():
            self._check_nodes(scope)
            missing = [(u, v) for u, v in itertools.combinations(scope, 2) if not self.graph.has_edge(u, v)]
            if missing:
                raise ValueError(f"a potential on {scope} needs a clique, but {missing[0][0]} – {missing[0][1]} is no edge")
            if np.shape(table) != (2,) * len(scope):
                raise ValueError(f"the potential on {scope} needs shape {(2,) * len(scope)}, not {np.shape(table)}")
            if exact:  # ψ_scope(values), a free positive symbol per entry
                table = np.empty((2,) * len(scope), dtype=object)
                for key in itertools.product((0, 1), repeat=len(scope)):
                    table[key] = sp.Symbol(rf"\psi_{{{''.join(scope)}}}({', '.join(map(str, key))})", positive=True)
            elif not np.all(np.asarray(table) > 0):
                raise ValueError(f"the potential on {scope} must be positive everywhere")
            factors.append((tuple(scope), table))
        return factors

    def separated(self, x: Iterable[str], y: Iterable[str], given: Iterable[str] = ()) -> bool:
        """Whether every path from ``x`` to ``y`` passes through ``given`` (graph separation)."""
        x, y, z = self._check_nodes(x, y, given)
        rest = self.graph.subgraph(set(self.order) - set(z))
        return not any(nx.has_path(rest, u, v) for u in x for v in y)

    def markov_blanket(self, node: str) -> set[str]:
        """The neighbours."""
        self._check_nodes([node])
        return set(self.graph.neighbors(node))


def pairwise_statements(net: BayesNet | MarkovNet) -> list[tuple[str, str, tuple[str, ...]]]:
    """Every statement ``X ⊥ Y | Z`` with X, Y single nodes (X before Y) and Z any subset of the other nodes."""
    statements = []
    for x, y in itertools.combinations(net.order, 2):
        others = [v for v in net.order if v not in (x, y)]
        for size in range(len(others) + 1):
            statements.extend((x, y, z) for z in itertools.combinations(others, size))
    return statements


def statement(x: str, y: str, given: Iterable[str] = ()) -> str:
    """``X ⊥ Y | Z`` as the page writes it (``X ⊥ Y`` for an empty Z)."""
    given = list(given)
    return f"{x} ⊥ {y}" + (f" ∣ {', '.join(given)}" if given else "")


class ClaimError(AssertionError):
    """A statement the page makes that its check refutes."""


def claims_table(claims: Iterable[tuple[str, str, object]], header: Sequence[str] = ("claim", "checked by")) -> str:
    """A Markdown table of the page's claims, each with how it was checked; :class:`ClaimError` for the first false one.

    Args:
        claims: ``(statement, how it was checked, whether the check found it true)``; the last must be a bool.
    """
    rows = list(claims)
    if not rows:
        raise ValueError("no claims to show")
    for text, how, holds in rows:
        if not isinstance(holds, (bool, np.bool_)):
            raise TypeError(f"the check of {text!r} gave {holds!r}, not True or False")
        if not holds:
            raise ClaimError(f"the page claims {text!r}, but {how} says it does not hold")
    lines = [f"| {' | '.join(header)} | |", "|:--|:--|:-:|"]
    lines += [f"| {text} | {how} | ✓ |" for text, how, _ in rows]
    return "\n".join(lines)


def separations(net: BayesNet | MarkovNet, statements: Iterable[tuple[str, str, tuple[str, ...]]]) -> dict:
    """What the graph says of each statement: d-separation for a DAG, separation for an undirected graph."""
    says = net.d_separated if isinstance(net, BayesNet) else net.separated
    return {s: says([s[0]], [s[1]], s[2]) for s in statements}


def agree(net: BayesNet | MarkovNet, statements: Iterable[tuple[str, str, tuple[str, ...]]], exact: bool = False) -> dict:
    """For each statement, ``(graph says, distribution says)``; ``exact`` as in :meth:`_JointTable.independent`."""
    graph = separations(net, statements)
    return {s: (graph[s], net.independent([s[0]], [s[1]], s[2], exact=exact)) for s in graph}
