"""The answer checker under hostile and malformed input: a verdict within the time limit, nothing run, nothing written.

Every answer in ``HOSTILE`` must come back as a verdict that is not "correct" (nor "up to" anything),
within ``TIME_LIMIT`` plus a margin, with a short message that says what was wrong, while
``os.system``, ``os.popen`` and ``subprocess.Popen`` are replaced by a tripwire that leaves a file
(so a call in the grading child shows too) and the working directory is an empty temporary one.
Answers that would shell out try to ``touch`` a canary file there.

The time limit is one on the CPU time of the comparison, not on the clock: the last section checks that a
right answer is accepted while other processes spin on the grading child's CPU (its check takes longer on
the clock than the limit), that a hostile one is still refused after the limit's worth of CPU time, and that
a child that makes no progress is stopped at the wall-clock ceiling.
"""

import math
import multiprocessing
import os
import resource
import subprocess
import time
from contextlib import contextmanager

import pytest
import sympy as sp

from dgm.derivations import answers
from dgm.derivations.answers import MAX_LENGTH, QUOTE_LENGTH, TIME_LIMIT, WALL_LIMIT, check, check_set, parse_answer
from dgm.derivations.exercises import EXERCISES, check_answer

mu = sp.Symbol("mu", real=True)
sigma = sp.Symbol("sigma", positive=True)
KL = (mu**2 + sigma**2 - 1) / 2 - sp.log(sigma)
MARGIN = 2.0  # seconds beyond the time limit a verdict may take (fork, join, a loaded machine)
# correct, but SymPy needs minutes to show it: five sin²+cos² identities to the 7th power
ONES = "*".join(f"(sin({a})**2 + cos({a})**2)**7" for a in ("mu", "sigma", "mu*sigma", "mu+sigma", "mu-sigma"))
SLOW_RIGHT = f"(mu**2 + sigma**2 - 1)/2 - log(sigma) + {ONES} - 1"
# correct, and a few tenths of a second of CPU time to show it (0.20-0.23 s here): sin² + cos² = 1 once
SOME_WORK = "(mu**2 + sigma**2 - 1)/2 - log(sigma)*(sin(mu)**2 + cos(mu)**2)"
SHELL = "touch CANARY"
VALID_10K = "+".join(["mu"] * 3334)  # a formula, but 10,000 characters

# (answer, status, a phrase the message must hold)
HOSTILE = [
    # shell-outs: globals, chr, getattr, __class__, lambda, attributes, subscripts, comprehensions, f-strings
    (f"globals()[chr(95)*2+'imp'+'ort'+chr(95)*2]('os').system('{SHELL}')", "malformed", "not a formula"),
    (f"__import__('os').system('{SHELL}')", "malformed", "not a formula"),
    (f"getattr(__import__('os'), 'system')('{SHELL}')", "malformed", "not a formula"),
    ("().__class__.__bases__[0].__subclasses__()", "malformed", "not a formula"),
    ("mu.__class__.__mro__[-1].__subclasses__()", "malformed", "attribute"),
    (f"(lambda: __import__('os').system('{SHELL}'))()", "malformed", "lambda"),
    ("lambda: 3", "malformed", "lambda"),
    ("[c for c in ().__class__.__base__.__subclasses__()]", "malformed", "comprehension"),
    ("{k: 1 for k in range(3)}", "malformed", "comprehension"),
    ("(k for k in range(10**9))", "malformed", "generator"),
    (f"f\"{{__import__('os').system('{SHELL}')}}\"", "malformed", "f-string"),
    ("(mu := 3)", "malformed", "assignment"),
    ("log(*[mu])", "malformed", "one argument"),
    ("log(mu, 2)", "malformed", "one argument"),
    ("log(x=mu)", "malformed", "one argument"),
    ("mu[0]", "malformed", "indexing"),
    ("mu.conjugate()", "malformed", "attribute"),
    ("sigma.func", "malformed", "attribute"),
    ("*mu", "malformed", "could not read"),
    (f"mu; import os; os.system('{SHELL}')", "malformed", "'import' is Python"),
    ("import os", "malformed", "'import' is Python"),
    ("mu\nimport os", "malformed", "'import' is Python"),
    ("yield mu", "malformed", "'yield' is Python"),
    # builtins that read, write, print or stop
    (f"exec(\"import os; os.system('{SHELL}')\")", "malformed", "exec(...) is not a function"),
    ("eval('1+1')", "malformed", "eval(...) is not a function"),
    ("open('CANARY', 'w')", "malformed", "open(...) is not a function"),
    ("open('CANARY', 'w').write('x')", "malformed", "attribute"),
    ("print(mu)", "malformed", "print(...) is not a function"),
    ("input()", "malformed", "input(...) is not a function"),
    ("breakpoint()", "malformed", "breakpoint(...) is not a function"),
    ("compile('1', 'a', 'eval')", "malformed", "not a function"),
    ("exit()", "malformed", "not a function"),
    ("type(mu)", "malformed", "not a function"),
    # Python that is not arithmetic
    ("mu if mu else sigma", "malformed", "if/else"),
    ("mu == sigma", "malformed", "comparison"),
    ("mu and sigma", "malformed", "and/or"),
    ("not mu", "malformed", "operator not"),
    ("~mu", "malformed", "operator ~"),
    ("mu % 2", "malformed", "operator %"),
    ("mu // 2", "malformed", "operator //"),
    ("mu @ sigma", "malformed", "operator @"),
    ("mu << 2", "malformed", "operator <<"),
    ("'mu'", "malformed", "not a formula"),
    ("b'mu'", "malformed", "not a formula"),
    ("True", "malformed", "not a formula"),
    ("None", "malformed", "not a formula"),
    ("... + 1", "malformed", "not a formula"),
    ("[1, 2]", "malformed", "a list"),
    ("mu, sigma", "malformed", "tuple"),
    # huge numbers, powers, towers, factorial
    ("(mu+1)**1000", "malformed", "larger than 100"),
    ("(mu+1)**(10*10*10)", "malformed", "larger than 100"),
    ("9**9**9**9", "malformed", "power tower"),
    ("2**2**2**2**2", "malformed", "power tower"),
    ("10**10**10", "malformed", "larger than 100"),
    ("mu**(10**12)", "malformed", "larger than 100"),
    ("(mu**100)**100", "malformed", "power above 100"),
    ("((10**12)**100)**100", "malformed", "too large"),
    ("factorial(10**9)", "malformed", "factorial is not offered"),
    ("gamma(10**12)", "malformed", "not a function"),
    ("99999999999999999999", "malformed", "up to 1,000,000,000,000"),
    ("1e400", "malformed", "up to 1,000,000,000,000"),
    # deep nesting and length
    ("(" * 5000 + "mu" + ")" * 5000, "malformed", "too long"),
    ("(" * 60 + "mu" + ")" * 60, "malformed", "nested more than 50"),
    ("log(" * 60 + "mu" + ")" * 60, "malformed", "nested more than 50"),
    ("-" * 60 + "mu", "malformed", "nested more than 50"),
    ("-" * 1500 + "mu", "malformed", "nested"),
    ("mu+" * 3000 + "mu", "malformed", "too long"),
    (VALID_10K, "malformed", "too long"),
    ("x" * (MAX_LENGTH + 1), "malformed", "too long"),
    # not finite
    ("oo", "malformed", "infinity"),
    ("-oo", "malformed", "infinity"),
    ("nan", "malformed", "nan"),
    ("zoo", "malformed", "infinity"),
    ("exp(oo)", "malformed", "infinity"),
    ("1/0", "malformed", "undefined"),
    ("mu/0", "malformed", "undefined"),
    ("0**-1", "malformed", "undefined"),
    ("log(0)", "malformed", "undefined"),
    ("log(0)*0", "malformed", "undefined"),
    ("I", "malformed", "imaginary"),
    ("1j", "malformed", "imaginary"),
    # LaTeX, brackets, empty, odd characters
    (r"\frac{\mu^2}{2}", "malformed", "not LaTeX"),
    ("$mu^2$", "malformed", "not LaTeX"),
    ("(mu+1", "malformed", "1 '(' but 0 ')'"),
    ("mu+1)", "malformed", "closes a bracket"),
    (")(", "malformed", "closes a bracket"),
    ("", "unanswered", "write your answer"),
    ("   ", "unanswered", "write your answer"),
    ("mu\x00", "malformed", "character"),
    ("mu\u202e", "malformed", "character"),
    ("mu + ∞", "malformed", "infinity"),
    ("∑ mu", "malformed", "closed form"),
    ("mu ≤ 1", "malformed", "comparison"),
    ("mu 😀", "malformed", "character"),
    ("\ud800", "malformed", "character"),
    # implicit products, calls of symbols
    ("2mu", "malformed", "2*x"),
    ("2 mu", "malformed", "2*x"),
    ("mu sigma", "malformed", "mu*sigma"),
    ("2(mu + 1)", "malformed", "2*(x + 1)"),
    ("sigma(2)", "malformed", "not a function"),
    ("musigma", "malformed", "mu*sigma"),
]


@pytest.fixture
def tripwire(tmp_path, monkeypatch):
    """An empty working directory; a call of os.system, os.popen or subprocess.Popen leaves a file in it."""
    monkeypatch.chdir(tmp_path)

    def trip(*args, **kwargs):
        (tmp_path / "TRIPPED").write_text(repr(args))
        raise AssertionError(f"the checker ran a command: {args}")

    monkeypatch.setattr(os, "system", trip)
    monkeypatch.setattr(os, "popen", trip)
    monkeypatch.setattr(subprocess, "Popen", trip)
    return tmp_path


@pytest.mark.parametrize("answer, status, hint", HOSTILE, ids=[f"{i:03d}" for i in range(len(HOSTILE))])
def test_hostile_answer_gets_a_verdict_in_time_and_runs_nothing(answer, status, hint, tripwire):
    answer = answer.replace("CANARY", str(tripwire / "CANARY"))
    start = time.perf_counter()
    verdict = check(answer, KL)
    elapsed = time.perf_counter() - start
    assert list(tripwire.iterdir()) == []  # no canary, no tripwire file, nothing written
    assert multiprocessing.active_children() == []  # the grading child is gone
    assert elapsed < TIME_LIMIT + MARGIN
    assert (verdict.status, hint in verdict.message) == (status, True), verdict
    assert not verdict
    assert len(verdict.message) < 400
    assert len(answer) <= QUOTE_LENGTH or answer not in verdict.message  # a long answer is quoted by a prefix


def test_the_table_is_large():
    assert len(HOSTILE) >= 40


@pytest.mark.parametrize("answer", [b"mu", None, ["mu"], {"mu": 1}, True])
def test_an_answer_that_is_not_text_is_malformed(answer):
    verdict = check(answer, KL)
    assert verdict.status == "malformed" and "as text" in verdict.message


def test_a_long_answer_is_quoted_by_a_short_prefix_only():
    verdict = check(VALID_10K, KL)
    assert verdict.message.count("mu") <= QUOTE_LENGTH // 2 + 1 and "…" in verdict.message


def children_cpu_seconds() -> float:
    """CPU seconds (user + system) of this process's children that have ended and been waited for."""
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def test_a_comparison_past_the_time_limit_is_too_complex_and_leaves_no_process():
    limit = 1.0  # CPU seconds; the default TIME_LIMIT behaves alike, 5 s of CPU time later
    before, start = children_cpu_seconds(), time.perf_counter()
    verdict = check(SLOW_RIGHT, KL, time_limit=limit)
    elapsed, spent = time.perf_counter() - start, children_cpu_seconds() - before
    assert verdict.status == "too complex" and f"{limit:g} s of computing" in verdict.message and not verdict
    assert 0.9 * limit <= spent < limit + 0.5  # stopped by its CPU time (rusage ticks may read a little under)
    assert 0.9 * limit <= elapsed < WALL_LIMIT  # the clock: at least the CPU time, never past the ceiling
    assert multiprocessing.active_children() == []


def test_a_short_time_limit_stops_even_an_ordinary_comparison():
    verdict = check("log(1/(1 - rho**2))/2", -sp.log(1 - sp.Symbol("rho", real=True) ** 2) / 2, time_limit=0.001)
    assert verdict.status == "too complex"
    assert multiprocessing.active_children() == []


def test_an_ordinary_verdict_is_fast():
    check("(mu**2 + sigma**2 - 1)/2 - log(sigma)", KL)  # warm the imports
    start, before = time.process_time(), children_cpu_seconds()
    assert check("mu**2/2 + sigma**2/2 - 1/2 - ln(sigma)", KL).status == "correct"
    assert check("mu**2/2 + sigma**2/2 - ln(sigma)", KL).status == "up to a constant"
    # CPU time of this process and the grading children, which load on the machine does not inflate:
    # typically 10-250 ms a check, the fork ~10 ms of it
    assert time.process_time() - start + children_cpu_seconds() - before < 1.0


# -- Unicode students type ------------------------------------------------------------------------


@pytest.mark.parametrize(
    "answer",
    [
        "(μ² + σ² − 1)/2 − log(σ)",
        "½·(μ² + σ² − 1) − ln(σ)",
        "μ×μ/2 + σ²/2 − ½ − log(√(σ²))",
        "(mu^2 + sigma^2 - 1)/2 - log(sigma)",
        "(µ² + σ² − 1)/2 − log(σ)",  # the micro sign, not the Greek letter
        "(μ² + σ² − 1)/2 + log(σ⁻¹)",
        "(μ² + σ² − 1)/2 − log(√σ) − log(√σ)",
        "0.5*(mu**2 + sigma**2 - 1) - log(sigma)",  # a decimal is read exactly
        "(mu**2 + sigma**2 - 1)/2\u00a0-\u00a0log(sigma)",  # non-breaking spaces
    ],
)
def test_unicode_and_decimals_are_read(answer):
    assert check(answer, KL).status == "correct"


@pytest.mark.parametrize(
    "answer, guidance",
    [
        ("2μ", "2*x"),
        ("½(μ² + σ² − 1) − log(σ)", "2*(x + 1)"),
        ("(μ² + σ² − 1)/2 − ln σ", "ln(σ)"),
        ("μσ", "mu*sigma"),
        ("μ ∞", "infinity is not an answer"),
        ("μ → 0", "U+2192"),
        ("σ²⁄2", "U+2044"),
        ("λ + μ", "uses λ"),
    ],
)
def test_unicode_that_is_not_read_says_what_to_type(answer, guidance):
    verdict = check(answer, KL)
    assert verdict.status == "malformed" and guidance in verdict.message


def test_greek_letters_are_the_questions_symbols():
    assert check_answer("ex-vi-kl", "(v/v_p + (μ - μ_p)²/v_p − 1 − log(v/v_p))/2").status == "correct"
    assert parse_answer("ρ²", [sp.Symbol("rho", real=True)]) == sp.Symbol("rho", real=True) ** 2


# -- domains ----------------------------------------------------------------------------------------


def test_every_domain_names_symbols_of_its_exercise():
    for label, exercise in EXERCISES.items():
        for symbol, (low, high) in getattr(exercise, "domain", {}).items():  # a set exercise has none
            assert symbol in exercise.symbols and low < high, label


# -- sets of names: the same rules -------------------------------------------------------------------

NODES = tuple("DIGSLJH")
HOSTILE_SETS = [
    (f"__import__('os').system('{SHELL}')", "'('"),
    (f"{{G, __import__('os').system('{SHELL}')}}", "'('"),
    ("{G, J}.__class__.__mro__", "'.'"),
    (f"{{G for G in exec('{SHELL}')}}", "'('"),
    ("{G for G in range}", "is not one of this question's names"),
    ("{'G', 'J'}", "\"'\""),
    ('{"G"}', "'\"'"),
    ("{G: 1}", "':'"),
    ("[G, J]", "'['"),
    ("(G, J)", "'('"),
    ("{{G}, {J}}", "set of sets"),
    ("{G, {J}}", "set of sets"),
    ("{" * 5000 + "G" + "}" * 5000, "too long"),
    ("G, " * 1000, "too long"),
    ("G" * (MAX_LENGTH + 1), "too long"),
    ("G\x00", "'\\x00'"),
    ("G\u202e, J", "U+202E"),
    ("G 😀", "U+1F600"),
    ("\ud800", "U+D800"),
    ("Ｇ", "U+FF27"),
    ("G; import os", "';'"),
    ("G\nimport os", "is not one of this question's names"),
    ("G, J}", "needs a '}'"),
    ("{G, J", "needs a '}'"),
    ("}{", "needs a '}'"),
    ("G,,J", "missing between two commas"),
    ("_", "is not one of this question's names"),
    ("1e400", "not a name"),
    ("X" * 500, "is not one of this question's names"),
]


@pytest.mark.parametrize("answer, hint", HOSTILE_SETS, ids=[f"set{i:03d}" for i in range(len(HOSTILE_SETS))])
def test_hostile_set_answer_gets_a_verdict_fast_and_runs_nothing(answer, hint, tripwire):
    answer = answer.replace("CANARY", str(tripwire / "CANARY"))
    start = time.perf_counter()
    verdict = check_set(answer, {"G", "J", "S"}, NODES)
    elapsed = time.perf_counter() - start
    assert list(tripwire.iterdir()) == []
    assert elapsed < 0.5  # read with string operations, in this process
    assert (verdict.status, hint in verdict.message) == ("malformed", True), verdict
    assert not verdict
    assert len(verdict.message) < 400
    assert len(answer) <= QUOTE_LENGTH or answer not in verdict.message


@pytest.mark.parametrize("answer", [b"G", None, ["G"], {"G"}, True, 3])
def test_a_set_answer_that_is_not_text_is_malformed(answer):
    verdict = check_set(answer, {"G"}, NODES)
    assert verdict.status == "malformed" and "as text" in verdict.message


# -- the limit is on CPU time, not on the clock ------------------------------------------------------------


SPINNERS = 6  # the child's check takes about 7 times its CPU time on the clock


def spin() -> None:
    while True:
        pass


@contextmanager
def busy_cpu():
    """Pin this thread (so the grading child it forks too) to one CPU and start ``SPINNERS`` processes that spin
    on that CPU at the same priority: the child gets about 1/(SPINNERS + 1) of it, far less on the clock than
    its CPU time. The spinners are killed and the affinity restored afterwards."""
    if not hasattr(os, "sched_setaffinity") or "fork" not in multiprocessing.get_all_start_methods():
        pytest.skip("pinning to one CPU needs Linux")
    allowed = os.sched_getaffinity(0)
    os.sched_setaffinity(0, {min(allowed)})
    context = multiprocessing.get_context("fork")
    spinners = [context.Process(target=spin, daemon=True) for _ in range(SPINNERS)]
    try:
        for spinner in spinners:
            spinner.start()
        yield
    finally:
        os.sched_setaffinity(0, allowed)
        for spinner in spinners:
            spinner.kill()  # our own processes, by their handles
        for spinner in spinners:
            spinner.join()


def test_a_right_answer_is_accepted_on_a_busy_machine_and_a_hostile_one_still_refused():
    check(SOME_WORK, KL)  # warm the imports
    before = children_cpu_seconds()
    assert check(SOME_WORK, KL).status == "correct"
    work = children_cpu_seconds() - before  # the CPU time this check needs: 0.20-0.23 s here
    limit = max(3 * work, 0.05)  # three times what the check needs, a fraction of what it takes on the clock below
    with busy_cpu():
        before, start = children_cpu_seconds(), time.perf_counter()
        verdict = check(SOME_WORK, KL, time_limit=limit)
        elapsed, spent = time.perf_counter() - start, children_cpu_seconds() - before
        assert verdict.status == "correct", verdict
        assert spent < limit
        assert elapsed > limit, (elapsed, limit)  # the load was real: a clock limit of that size would have refused it

        limit = max(work, 0.05)  # enough for the right answer unloaded; SLOW_RIGHT needs minutes
        before, start = children_cpu_seconds(), time.perf_counter()
        verdict = check(SLOW_RIGHT, KL, time_limit=limit)
        elapsed, spent = time.perf_counter() - start, children_cpu_seconds() - before
        assert verdict.status == "too complex" and f"{limit:g} s of computing" in verdict.message, verdict
        assert 0.8 * limit <= spent < limit + 0.5  # refused after the limit's CPU time, however slow the clock
        assert elapsed < WALL_LIMIT
    assert multiprocessing.active_children() == []


def test_a_child_that_waits_is_not_charged_for_the_clock(monkeypatch):
    # the grading child sleeps 1.5 s on the clock (no CPU time) before it grades: a 0.5 s CPU limit lets it finish
    grade = answers._grade
    monkeypatch.setattr(answers, "_grade", lambda job: (time.sleep(1.5), grade(job))[1])
    start = time.perf_counter()
    assert check("mu**2/2 + sigma**2/2 - 1/2 - ln(sigma)", KL, time_limit=0.5).status == "correct"
    assert time.perf_counter() - start >= 1.5


def test_a_child_that_makes_no_progress_is_stopped_at_the_wall_clock_ceiling(monkeypatch):
    monkeypatch.setattr(answers, "_grade", lambda job: time.sleep(600))  # stuck: no CPU time, no verdict
    start = time.perf_counter()
    verdict = check("mu**2/2 + sigma**2/2 - 1/2 - ln(sigma)", KL, time_limit=0.5, wall_limit=1.0)
    elapsed = time.perf_counter() - start
    assert verdict.status == "too complex" and "within 1 s on the clock" in verdict.message
    assert "try again" in verdict.message
    assert 1.0 <= elapsed < 1.0 + MARGIN
    assert multiprocessing.active_children() == []


def test_the_default_ceiling_is_far_above_the_cpu_limit():
    assert answers._limits(TIME_LIMIT, None) == (TIME_LIMIT, WALL_LIMIT) and WALL_LIMIT >= 10 * TIME_LIMIT
    assert answers._limits(30.0, None) == (30.0, 120.0)  # a long CPU limit (dgm-grade --time-limit) lifts it


def test_without_a_cpu_timer_the_limit_is_on_the_clock(monkeypatch):
    monkeypatch.setattr(answers, "_CPU_TIMER", False)  # as on Windows
    start = time.perf_counter()
    verdict = check(SLOW_RIGHT, KL, time_limit=0.5)
    assert verdict.status == "too complex" and "in 0.5 s;" in verdict.message
    assert 0.5 <= time.perf_counter() - start < 0.5 + MARGIN
    assert multiprocessing.active_children() == []


@pytest.mark.parametrize(
    "limits, phrase",
    [({"time_limit": 0}, "time_limit must be a positive"), ({"time_limit": -1.0}, "time_limit must be a positive"),
     ({"time_limit": math.nan}, "time_limit must be"), ({"time_limit": math.inf}, "finite"),
     ({"time_limit": "5"}, "not '5'"), ({"time_limit": True}, "not True"), ({"wall_limit": 0.0}, "wall_limit must be"),
     ({"time_limit": 10.0, "wall_limit": 5.0}, "must be at least time_limit")],
)  # fmt: skip
def test_bad_limits_are_refused_with_a_message(limits, phrase):
    with pytest.raises(ValueError, match=phrase):
        check("mu", KL, **limits)
