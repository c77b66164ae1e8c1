"""Bayesian networks: the graph's d-separations against the joint table's independences."""

import numpy as np
import pytest

from dgm.derivations.graphs import BayesNet, pairwise_statements

ALARM = [("A", "T"), ("O", "T"), ("T", "M"), ("T", "S")]
DIAMOND = [("C", "R"), ("C", "S"), ("R", "W"), ("S", "W"), ("W", "G")]


@pytest.mark.parametrize("edges", [ALARM, DIAMOND], ids=["alarm", "diamond"])
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_random_tables_make_the_dag_a_perfect_map(edges, seed):
    net = BayesNet(edges, seed=seed)
    assert np.isclose(net.joint().sum(), 1.0)
    for x, y, z in pairwise_statements(net):
        assert net.d_separated([x], [y], z) == net.independent([x], [y], z), (x, y, z)


def test_the_independence_check_can_say_no():
    net = BayesNet([("X", "Y")], seed=0)
    assert not net.independent(["X"], ["Y"])
    net.tables["Y"] = np.array([0.3, 0.3])  # Y no longer depends on X
    assert net.independent(["X"], ["Y"])


def test_marginal_keeps_the_requested_axis_order():
    net = BayesNet(ALARM, seed=3)
    forward, backward = net.marginal(["A", "M"]), net.marginal(["M", "A"])
    assert np.allclose(forward, backward.T)
    assert np.isclose(net.marginal(["A"])[1], net.tables["A"])


def test_markov_blanket_and_moral_graph():
    net = BayesNet(ALARM + [("M", "W")])
    assert net.markov_blanket("A") == {"O", "T"}
    assert net.markov_blanket("T") == {"A", "O", "M", "S"}
    assert net.markov_blanket("M") == {"T", "W"}
    moral = net.moral_graph()
    assert moral.has_edge("A", "O") and not moral.has_edge("M", "S")


def test_a_cycle_is_refused():
    with pytest.raises(ValueError, match="acyclic"):
        BayesNet([("X", "Y"), ("Y", "X")])
