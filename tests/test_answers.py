"""The answer checker: right, wrong, up to a constant or a factor, malformed; never a traceback."""

import pytest
import sympy as sp

from dgm.derivations.answers import check, check_set, read_set
from dgm.derivations.exercises import EXERCISES, SetExercise, check_answer

mu = sp.Symbol("mu", real=True)
sigma = sp.Symbol("sigma", positive=True)
KL = (mu**2 + sigma**2 - 1) / 2 - sp.log(sigma)


@pytest.mark.parametrize(
    "answer",
    ["(mu**2 + sigma**2 - 1)/2 - log(sigma)", "(mu^2 + sigma^2 - 1 - log(sigma^2))/2", "mu**2/2 + sigma**2/2 - 1/2 - ln(sigma)"],
)
def test_equivalent_forms_are_correct(answer):
    verdict = check(answer, KL)
    assert verdict.status == "correct" and verdict


def test_wrong_answer_says_where():
    verdict = check("(mu**2 - sigma**2 - 1)/2 - log(sigma)", KL)
    assert verdict.status == "wrong" and not verdict
    assert "at mu = " in verdict.message and "your formula gives" in verdict.message


def test_up_to_a_constant_and_a_factor():
    assert check("(mu**2 + sigma**2)/2 - log(sigma)", KL).status == "up to a constant"
    assert check("mu**2 + sigma**2 - 1 - 2*log(sigma)", KL).status == "up to a factor"
    assert "2" in check("mu**2 + sigma**2 - 1 - 2*log(sigma)", KL).message
    # a constant in the variables that matter only: wrt
    assert check("mu**2/2 + sigma**2/2 - log(sigma)", KL, wrt=[mu]).status == "up to a constant"
    assert check("mu**2 + sigma**2", KL, wrt=[mu]).status == "wrong"


@pytest.mark.parametrize(
    "answer, hint",
    [
        ("(mu**2 + sigma**2 - 1/2 - log(sigma)", "'(' but"),
        ("x + mu", "uses x"),
        (r"\frac{\mu^2}{2}", "not LaTeX"),
        ("mu ==", "could not read"),
        ("import os", "not a formula"),
        ("__import__('os').getcwd()", "not a formula"),
        ("[1, 2]", "not a formula"),
        ("1/0", "undefined"),
        ("lambda: 3", "not a formula"),
        ("sigma.foo", "not a formula"),  # attribute access is refused by name now, no longer a failed evaluation
    ],
)
def test_malformed_answers_get_a_message_not_a_traceback(answer, hint):
    verdict = check(answer, KL)
    assert verdict.status == "malformed"
    assert hint in verdict.message


def test_unanswered_placeholder():
    assert check("...", KL).status == "unanswered"
    assert check("  ", KL).status == "unanswered"


def test_verdict_renders_for_jupyter():
    assert check("(mu**2 + sigma**2 - 1)/2 - log(sigma)", KL)._repr_markdown_().startswith("✓ **Correct.**")
    assert check("mu", KL)._repr_markdown_().startswith("✗ **Wrong.**")


@pytest.mark.parametrize("label", sorted(EXERCISES))
def test_every_registered_exercise_accepts_its_answer_and_rejects_a_perturbed_one(label):
    exercise = EXERCISES[label]
    if isinstance(exercise, SetExercise):
        names = sorted(exercise.expected)
        assert check_answer(label, "{" + ", ".join(names) + "}").status == "correct"
        assert check_answer(label, ", ".join(reversed(names)) or "{}").status == "correct"
        other = next(name for name in exercise.elements if name not in exercise.expected)
        assert check_answer(label, "{" + ", ".join([*names, other]) + "}").status == "wrong"
        if names:
            assert check_answer(label, "{" + ", ".join(names[1:]) + "}").status == "wrong"
        return
    assert check_answer(label, str(exercise.expected)).status == "correct"
    variables = exercise.wrt or exercise.symbols
    perturbation = f"{variables[0]}**3" if variables else "1"  # a number-valued answer is perturbed by adding 1
    assert check_answer(label, f"{exercise.expected} + {perturbation}").status == "wrong"


def test_a_numeric_answer_is_right_or_wrong_never_up_to_a_constant():
    assert check("8/2", sp.Integer(4), symbols=()).status == "correct"
    verdict = check("2", sp.Integer(4), symbols=())
    assert verdict.status == "wrong" and "2" in verdict.message
    assert "the answer is a number" in check("h", sp.Integer(4), symbols=()).message


def test_unknown_exercise_label():
    with pytest.raises(KeyError, match="ex-vi-kl"):
        check_answer("ex-nope", "1")


def test_exercise_labels_exist_on_the_pages():
    from pathlib import Path

    text = "".join(p.read_text() for p in (Path(__file__).parents[1] / "book").glob("*.md"))
    for label in EXERCISES:
        assert f":label: {label}" in text and f'check_answer("{label}"' in text


@pytest.mark.parametrize(
    "answer",
    ["log(1/((1 - rho)**2*(1 + 2*rho)))/2", "-log((1 - rho)^2*(1 + 2*rho))/2", "-log(1 - rho) - log(1 + 2*rho)/2"],
)
def test_total_correlation_is_correct_on_its_domain(answer):
    # rho is the common correlation of three dimensions: outside (-1/2, 1) the forms differ by i*pi, which read as
    # "up to a constant"
    assert check_answer("ex-beta-tc", answer).status == "correct"


PIXEL, LOGIT = sp.Symbol("x", integer=True), sp.Symbol("l", real=True)  # a binary pixel: domain (0, 1)
BINARY_BERNOULLI = PIXEL * LOGIT - sp.log(1 + sp.exp(LOGIT))  # log Bern(x; sigmoid(l)), eq. (bernoulli-bce) of book/vae.md


@pytest.mark.parametrize(
    "answer",
    [
        "x*l - log(1 + exp(l))",
        "-log(1 + exp((1 - 2*x)*l))",  # -softplus(-(2x - 1) l): equal for x in {0, 1} only
        "x**2*l - log(1 + exp(l))",
        "x*(-log(1 + exp(-l))) + (1 - x)*(-log(1 + exp(l)))",
    ],
)
def test_bernoulli_logit_forms_are_correct_for_a_binary_pixel(answer):
    # an integer symbol on the domain (0, 1) is checked at x in {0, 1} only
    assert check(answer, BINARY_BERNOULLI, symbols=(PIXEL, LOGIT), domain={PIXEL: (0, 1)}).status == "correct"


def test_bernoulli_logit_for_one_pixel_value_only_is_wrong():
    verdict = check("-log(1 + exp(-l))", BINARY_BERNOULLI, symbols=(PIXEL, LOGIT), domain={PIXEL: (0, 1)})
    assert verdict.status == "wrong"  # right for x = 1 only


@pytest.mark.parametrize(
    "answer",
    [
        "x*log(x) + (1 - x)*log(1 - x)",
        "log(x**x*(1 - x)**(1 - x))",  # equal on the grey levels 0 < x < 1
        "x*log(x/(1 - x)) + log(1 - x)",  # the value x*l - log(1 + exp(l)) at the best logit l = log(x/(1 - x))
    ],
)
def test_grey_pixel_bernoulli_optimum_forms_are_correct(answer):
    assert check_answer("ex-vae-bernoulli-logit", answer).status == "correct"


@pytest.mark.parametrize("answer", ["-x*log(x) - (1 - x)*log(1 - x)", "0", "log(x/(1 - x))"])
def test_grey_pixel_bernoulli_entropy_sign_zero_or_logit_is_wrong(answer):
    # the binary entropy (a sign slip), the 'perfect reconstruction' 0 and the best logit itself are not the value
    assert check_answer("ex-vae-bernoulli-logit", answer).status == "wrong"


def test_the_domain_reaches_the_checks():
    x = sp.Symbol("x", real=True)
    assert check("sqrt(x**2)", x, symbols=[x], domain={x: (0, 1)}).status == "correct"
    assert check("sqrt(x**2)", x, symbols=[x]).status == "wrong"
    assert check_answer("ex-gan-optimal-d", "2*sqrt(x**2)/(2*x + 1)").status == "correct"  # x in [0, 1]


# -- sets of names ----------------------------------------------------------------------------------

NODES = tuple("DIGSLJH")


@pytest.mark.parametrize("answer", ["{G, J, S}", "G, J, S", "S,J,G", "{ S J G }", "g, j, s", "{G, J, S, G}", "G, J, S,"])
def test_a_set_in_any_order_and_spelling_is_correct(answer):
    verdict = check_set(answer, {"G", "J", "S"}, NODES)
    assert verdict.status == "correct" and verdict


@pytest.mark.parametrize(
    "answer, counts",
    [("{G, J}", "1 name is missing"), ("{G, J, S, H}", "1 of your names does not belong"),
     ("{D, I}", "2 of your names do not belong and 3 names are missing"), ("{}", "3 names are missing")],
)  # fmt: skip
def test_a_wrong_set_says_how_many_names_are_too_many_or_missing(answer, counts):
    verdict = check_set(answer, {"G", "J", "S"}, NODES)
    assert verdict.status == "wrong" and counts in verdict.message and not verdict


def test_the_empty_set():
    for answer in ("{}", "∅", "{ }"):
        assert check_set(answer, set(), NODES).status == "correct"
    assert check_set("{G}", set(), NODES).status == "wrong"


@pytest.mark.parametrize(
    "answer, hint",
    [("{G, X}", "'X' is not one of this question's names, which are D, I, G"), ("{G, J", "needs a '}'"),
     ("G, J}", "needs a '}'"), ("G,,J", "missing between two commas"), ("[G, J]", "'['"), ("{{G}}", "set of sets"),
     ("G; J", "';'"), ("1G", "not a name"), (",", "missing between two commas"), ("{,}", "missing between")],
)  # fmt: skip
def test_a_malformed_set_says_what_to_type(answer, hint):
    verdict = check_set(answer, {"G"}, NODES)
    assert verdict.status == "malformed" and hint in verdict.message, verdict


def test_names_that_differ_in_case_only_are_matched_exactly():
    assert read_set("a, A", ("a", "A")) == {"a", "A"}
    assert check_set("{b}", {"B"}, ("b", "B")).status == "wrong"  # b is a name of its own here
    assert read_set("{x1, Y}") == {"x1", "Y"}  # any names, when the question does not list them


def test_a_set_exercise_key_must_be_among_its_elements():
    with pytest.raises(ValueError, match="subset"):
        SetExercise(frozenset("Z"), ("A", "B"))
    with pytest.raises(ValueError, match="not among the elements"):
        check_set("{A}", {"Z"}, ("A", "B"))


def test_a_set_exercise_is_graded_as_a_set_and_a_formula_exercise_as_a_formula():
    assert check_answer("ex-pgm-student-blanket", "{S, J, G}").status == "correct"
    assert check_answer("ex-pgm-student-blanket", "...").status == "unanswered"
    assert "D, I, G" in check_answer("ex-pgm-student-blanket", "...").message
    assert check_answer("ex-pgm-mn-separation", "{A, C, D}").status == "correct"  # letters in either case
    assert check_answer("ex-pgm-student-parameters", "2 + 16").status == "correct"
