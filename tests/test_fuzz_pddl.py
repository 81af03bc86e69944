"""Hostile PDDL: random and mutated inputs never raise anything but PlannerlError, and finish fast."""

from __future__ import annotations

from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from plannerl.errors import PlannerlError
from plannerl.pddl.reader import parse_domain, parse_problem
from plannerl.pddl.task import compile_task

DOMAINS = Path(__file__).resolve().parent.parent / "domains"
DOMAIN_TEXT = (DOMAINS / "cooking.pddl").read_text()
PROBLEM_TEXT = (DOMAINS / "cheese_burger.pddl").read_text()
FUZZ = settings(max_examples=150, deadline=2000, suppress_health_check=[HealthCheck.function_scoped_fixture])


def _load(tmp_path: Path, domain_text: str | bytes, problem_text: str | bytes) -> None:
    domain_file, problem_file = tmp_path / "d.pddl", tmp_path / "p.pddl"
    for path, text in ((domain_file, domain_text), (problem_file, problem_text)):
        path.write_bytes(text if isinstance(text, bytes) else text.encode("utf-8", "surrogatepass"))
    try:
        domain = parse_domain(domain_file)
        compile_task(domain, parse_problem(problem_file, domain))
    except PlannerlError as exc:
        assert "\n" not in str(exc) and str(exc)


def _mutate(text: str, edits: list[tuple[int, int, str]]) -> str:
    """Apply (position, length to delete, insertion) edits to the text."""
    for position, length, insertion in edits:
        position %= len(text) + 1
        text = text[:position] + insertion + text[position + length:]
    return text


EDITS = st.lists(st.tuples(st.integers(0, 10_000), st.integers(0, 40),
                           st.sampled_from(["", "(", ")", "?x", " - ", "not", "(and", "object", ":typing", "\x00", "é", "-"])),
                 min_size=1, max_size=6)


@FUZZ
@given(edits=EDITS)
def test_mutated_domain_is_loaded_or_refused_cleanly(tmp_path, edits):
    _load(tmp_path, _mutate(DOMAIN_TEXT, edits), PROBLEM_TEXT)


@FUZZ
@given(edits=EDITS)
def test_mutated_problem_is_loaded_or_refused_cleanly(tmp_path, edits):
    _load(tmp_path, DOMAIN_TEXT, _mutate(PROBLEM_TEXT, edits))


@FUZZ
@given(data=st.binary(max_size=2000))
def test_random_bytes_are_refused_cleanly(tmp_path, data):
    _load(tmp_path, data, PROBLEM_TEXT)


@FUZZ
@given(text=st.text(alphabet="()?-: abcdefine;\n", max_size=400))
def test_random_pddl_like_text_is_refused_cleanly(tmp_path, text):
    _load(tmp_path, DOMAIN_TEXT, text)


def test_absurd_nesting_is_refused_without_recursion(tmp_path):
    deep = "(define (domain d) " + "(" * 100_000 + ")" * 100_000 + ")"
    _load(tmp_path, deep, PROBLEM_TEXT)
