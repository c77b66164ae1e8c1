"""Bayesian and Markov networks: the graph's (d-)separations against the joint table's independences; the pgm exercise keys."""

import networkx as nx
import numpy as np
import pytest

from dgm.derivations.exercises import EXERCISES
from dgm.derivations.graphs import (
    SEVEN_NODE_MARKOV_NETWORK,
    STUDENT_NETWORK,
    BayesNet,
    ClaimError,
    MarkovNet,
    agree,
    claims_table,
    pairwise_statements,
    separations,
)

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


# -- Markov networks --------------------------------------------------------------------------------

CYCLE = [("X1", "X2"), ("X2", "X3"), ("X3", "X4"), ("X1", "X4")]


@pytest.mark.parametrize("edges", [CYCLE, SEVEN_NODE_MARKOV_NETWORK], ids=["4-cycle", "seven"])
@pytest.mark.parametrize("seed", [0, 1])
def test_random_potentials_make_the_undirected_graph_a_perfect_map(edges, seed):
    net = MarkovNet(edges, seed=seed)
    assert np.isclose(net.joint().sum(), 1.0)
    for (x, y, z), separated in separations(net, pairwise_statements(net)).items():
        assert separated == net.independent([x], [y], z), (x, y, z)


def test_exact_independence_agrees_with_the_graph_for_every_table():
    cycle = MarkovNet(CYCLE)
    assert all(graph == exact for graph, exact in agree(cycle, pairwise_statements(cycle), exact=True).values())
    chain = BayesNet([("X", "W"), ("W", "Y")])
    assert chain.independent(["X"], ["Y"], ["W"], exact=True) and not chain.independent(["X"], ["Y"], exact=True)
    collider = BayesNet([("X", "W"), ("Y", "W")])
    assert collider.independent(["X"], ["Y"], exact=True) and not collider.independent(["X"], ["Y"], ["W"], exact=True)


def test_special_potentials_add_an_independence_that_the_exact_check_does_not_claim():
    cycle = MarkovNet(CYCLE, seed=0)
    cycle.potentials[("X1", "X2")] = np.array([[1.0, 1.0], [2.0, 2.0]])  # ψ12 ignores x2
    assert cycle.independent(["X1"], ["X2"], ["X3", "X4"])  # true for these numbers
    assert not cycle.independent(["X1"], ["X2"], ["X3", "X4"], exact=True)  # not for every potential
    assert not cycle.separated(["X1"], ["X2"], ["X3", "X4"])


def test_separation_and_blankets_in_an_undirected_graph():
    net = MarkovNet(SEVEN_NODE_MARKOV_NETWORK)
    assert net.separated(["A"], ["G"], ["F"]) and not net.separated(["D"], ["C"], ["B"])
    assert net.markov_blanket("F") == {"D", "E", "G"}
    assert net.cliques() == [("A", "B", "C"), ("B", "D"), ("C", "E"), ("D", "E", "F"), ("F", "G")]


def test_a_potential_off_a_clique_and_bad_statements_are_refused():
    net = MarkovNet(CYCLE)
    net.potentials[("X1", "X3")] = np.ones((2, 2))
    with pytest.raises(ValueError, match="needs a clique, but X1 – X3 is no edge"):
        net.joint()
    net = MarkovNet(CYCLE)
    net.potentials[("X1", "X2")] = -np.ones((2, 2))
    with pytest.raises(ValueError, match="positive"):
        net.joint()
    with pytest.raises(ValueError, match="Q is no node"):
        net.independent(["X1"], ["Q"])
    with pytest.raises(ValueError, match="disjoint"):
        net.separated(["X1"], ["X2"], ["X2"])
    with pytest.raises(ValueError, match="at least one node"):
        net.independent([], ["X2"])
    with pytest.raises(ValueError, match="no node"):
        BayesNet(ALARM).d_separated(["A"], ["Z"])


def test_moralisation_loses_the_independence_of_the_causes():
    net = BayesNet(ALARM, seed=0)
    moral = MarkovNet(net.moral_graph().edges())
    statements = pairwise_statements(net)
    dag, undirected = separations(net, statements), separations(moral, statements)
    assert all(dag[s] for s in statements if undirected[s])  # an I-map
    assert [s for s in statements if dag[s] and not undirected[s]] == [("A", "O", ())]


def test_claims_table_shows_true_claims_and_refuses_a_false_one():
    text = claims_table([("A ⊥ O", "networkx", True)])
    assert "A ⊥ O" in text and "✓" in text
    with pytest.raises(ClaimError, match="A ⊥ O ∣ M"):
        claims_table([("A ⊥ O", "networkx", True), ("A ⊥ O ∣ M", "networkx", False)])
    with pytest.raises(TypeError, match="not True or False"):
        claims_table([("A ⊥ O", "networkx", 0.5)])


# -- the graded exercises of book/pgm: each key against the graphs ---------------------------------


def test_the_markov_network_exercise_keys_follow_from_the_graph():
    net = MarkovNet(SEVEN_NODE_MARKOV_NETWORK, seed=5)
    statements = {"a": ("A", "E", "BC"), "b": ("D", "C", "B"), "c": ("A", "G", "F"), "d": ("B", "F", "CD"),
                  "e": ("E", "B", "CF"), "f": ("G", "E", "D")}  # fmt: skip
    holding = {letter for letter, (x, y, z) in statements.items() if net.separated([x], [y], list(z))}
    assert all(net.separated([x], [y], list(z)) == net.independent([x], [y], list(z)) for x, y, z in statements.values())
    assert EXERCISES["ex-pgm-mn-separation"].expected == holding
    assert EXERCISES["ex-pgm-mn-blanket"].expected == net.markov_blanket("F")
    rest = [v for v in net.order if v not in net.markov_blanket("F") | {"F"}]
    assert net.independent(["F"], rest, sorted(net.markov_blanket("F")))
    assert EXERCISES["ex-pgm-mn-cliques"].expected == sum(2 ** len(clique) for clique in net.cliques())


def test_the_student_network_exercise_keys_follow_from_the_graph():
    student = BayesNet(STUDENT_NETWORK, seed=4)
    assert EXERCISES["ex-pgm-student-parameters"].expected == sum(2 ** len(student.parents(v)) for v in student.order)
    assert EXERCISES["ex-pgm-student-blanket"].expected == student.markov_blanket("L")
    moral_graph = student.moral_graph()
    assert EXERCISES["ex-pgm-student-moral"].expected == set(moral_graph.neighbors("S"))
    moral = MarkovNet(moral_graph.edges())
    statements = pairwise_statements(student)
    dag, undirected = separations(student, statements), separations(moral, statements)
    facts = {
        "a": student.d_separated(["D"], ["I"]) and student.independent(["D"], ["I"]),
        "b": student.d_separated(["D"], ["I"], ["L"]),
        "c": student.d_separated(["S"], ["G"], ["I"]) and student.independent(["S"], ["G"], ["I"]),
        "d": nx.is_chordal(moral_graph),
        "e": all(undirected[s] == student.independent([s[0]], [s[1]], s[2]) for s in statements),
        "f": all(dag[s] for s in statements if undirected[s]),
    }
    assert EXERCISES["ex-pgm-student-maps"].expected == {letter for letter, holds in facts.items() if holds}
