"""Bayesian networks on a few binary variables: the graph statements of book/pgm, checked two ways.

A :class:`BayesNet` holds a DAG (a ``networkx.DiGraph``) and one conditional
probability table per node. Statements *about the graph* (d-separation,
Markov blankets, moralisation, chordality) come from networkx; statements
*about the distribution* (is X independent of Y given Z?) are decided
numerically from the full joint table. The chapter checks that the two agree:
every d-separation holds in the distribution (the DAG is an I-map), and with
random tables nothing else does (it is a perfect map).
"""

from __future__ import annotations

import itertools
from collections.abc import Iterable, Sequence

import networkx as nx
import numpy as np


class BayesNet:
    """A DAG over binary variables with a random conditional table ``P(node = 1 | parents)`` per node.

    Args:
        edges: ``[(parent, child), ...]``; the nodes are those the edges name, plus ``nodes``.
        nodes: extra nodes without edges.
        seed: seed of the random tables (probabilities drawn uniformly from [0.1, 0.9]).
    """

    def __init__(self, edges: Iterable[tuple[str, str]], nodes: Iterable[str] = (), seed: int = 0) -> None:
        self.graph = nx.DiGraph()
        self.graph.add_nodes_from(nodes)
        self.graph.add_edges_from(edges)
        if not nx.is_directed_acyclic_graph(self.graph):
            raise ValueError(f"a Bayesian network needs an acyclic graph; {list(nx.find_cycle(self.graph))} is a cycle")
        self.order: list[str] = list(nx.topological_sort(self.graph))
        rng = np.random.default_rng(seed)
        # tables[v][parent values] = P(v = 1 | parents), one entry per assignment of the parents
        self.tables = {v: rng.uniform(0.1, 0.9, size=(2,) * len(self.parents(v))) for v in self.order}

    def parents(self, node: str) -> list[str]:
        return sorted(self.graph.predecessors(node))

    def joint(self) -> np.ndarray:
        """The joint table ``P(x_1, ..., x_n)``, one axis per node in :attr:`order`: the product of the tables."""
        joint = np.ones((2,) * len(self.order))
        for values in itertools.product((0, 1), repeat=len(self.order)):
            assignment = dict(zip(self.order, values))
            for v in self.order:
                p_one = self.tables[v][tuple(assignment[u] for u in self.parents(v))]
                joint[values] *= p_one if assignment[v] == 1 else 1 - p_one
        return joint

    def marginal(self, nodes: Sequence[str]) -> np.ndarray:
        """``P(nodes)``, axes in the order given."""
        keep = [self.order.index(v) for v in nodes]
        dropped = tuple(i for i in range(len(self.order)) if i not in keep)
        table = self.joint().sum(axis=dropped)
        kept_sorted = sorted(keep)
        return np.transpose(table, [kept_sorted.index(i) for i in keep])

    def independent(self, x: Iterable[str], y: Iterable[str], given: Iterable[str] = (), tol: float = 1e-10) -> bool:
        """Whether ``P(x, y | given) = P(x | given) P(y | given)`` for every assignment, from the joint table."""
        x, y, z = list(x), list(y), list(given)
        table = self.marginal(x + y + z)  # axes: x..., y..., z...
        nx_, ny = len(x), len(y)
        p_z = table.sum(axis=tuple(range(nx_ + ny)))
        p_xz = table.sum(axis=tuple(range(nx_, nx_ + ny)))
        p_yz = table.sum(axis=tuple(range(nx_)))
        # P(x, y, z) P(z) = P(x, z) P(y, z) for all x, y, z
        lhs = table * p_z
        rhs = p_xz.reshape(p_xz.shape[:nx_] + (1,) * ny + p_z.shape) * p_yz.reshape((1,) * nx_ + p_yz.shape)
        return bool(np.abs(lhs - rhs).max() < tol)

    def d_separated(self, x: Iterable[str], y: Iterable[str], given: Iterable[str] = ()) -> bool:
        """Whether the graph d-separates ``x`` from ``y`` given ``given`` (networkx)."""
        return nx.is_d_separator(self.graph, set(x), set(y), set(given))

    def markov_blanket(self, node: str) -> set[str]:
        """Parents, children, and the children's other parents."""
        children = set(self.graph.successors(node))
        co_parents = {p for child in children for p in self.graph.predecessors(child)}
        return (set(self.graph.predecessors(node)) | children | co_parents) - {node}

    def moral_graph(self) -> nx.Graph:
        """The undirected graph with the parents of each node married and the directions dropped."""
        return nx.moral_graph(self.graph)


def pairwise_statements(net: BayesNet) -> list[tuple[str, str, tuple[str, ...]]]:
    """Every statement ``X ⊥ Y | Z`` with X, Y single nodes (X before Y) and Z any subset of the other nodes."""
    statements = []
    for x, y in itertools.combinations(net.order, 2):
        others = [v for v in net.order if v not in (x, y)]
        for size in range(len(others) + 1):
            statements.extend((x, y, z) for z in itertools.combinations(others, size))
    return statements
