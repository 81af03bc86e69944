"""Huge inputs and huge state spaces are stopped with one clear line, through the real CLI.

`plannerl plan` on a logistics problem far too large to solve must stop at `--time-limit`
seconds or `--max-states` states (exit 4); a PDDL file over the reader's size cap is refused
before it is read (exit 2); a process that runs out of memory says so in one line (exit 4)
instead of a MemoryError traceback.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from plannerl.errors import PlannerlError
from plannerl.pddl.reader import MAX_FILE_BYTES
from plannerl.seeds import parse_seeds

ROOT = Path(__file__).resolve().parent.parent
LOGISTICS_DOMAIN = ROOT / "tests" / "fixtures" / "classic" / "logistics" / "domain.pddl"
LARGE = ROOT / "tests" / "fixtures" / "bad" / "large_logistics.pddl"
DOMAINS = ROOT / "domains"
ENV = {**os.environ, "COLUMNS": "200", "PYTHONUNBUFFERED": "1"}


def _plannerl(*args: str, timeout: float = 120) -> tuple[subprocess.CompletedProcess, float]:
    start = time.perf_counter()
    done = subprocess.run([sys.executable, "-m", "plannerl.cli", *args], capture_output=True, text=True, timeout=timeout, env=ENV,
                          cwd=ROOT)
    return done, time.perf_counter() - start


def _one_error_line(done: subprocess.CompletedProcess) -> str:
    assert "Traceback" not in done.stderr, done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("plannerl: error: "), done.stderr
    return lines[0]


def test_time_limit_stops_a_huge_search():
    done, wall = _plannerl("plan", str(LOGISTICS_DOMAIN), str(LARGE), "--time-limit", "0.5")
    assert done.returncode == 4
    line = _one_error_line(done)
    assert "time limit of 0.5 s" in line
    assert int(re.search(r"\((\d+) states seen\)", line).group(1)) > 0
    assert wall < 60  # start-up plus half a second of search; a hang would run for hours


def test_state_limit_stops_a_huge_search():
    done, _ = _plannerl("plan", str(LOGISTICS_DOMAIN), str(LARGE), "--max-states", "2000", "--format", "json")
    assert done.returncode == 4
    assert "stopped after 2000 states (state limit)" in _one_error_line(done)
    assert done.stdout == ""


def test_state_limit_is_refused_for_external_planners():
    done, _ = _plannerl("plan", str(LOGISTICS_DOMAIN), str(LARGE), "--planner", "pyperplan", "--max-states", "10")
    assert done.returncode == 2
    assert "--max-states applies to the builtin planner only" in _one_error_line(done)


@pytest.mark.parametrize("value", ["-1", "0", "many"])
def test_bad_limit_values_are_usage_errors(value):
    done, _ = _plannerl("plan", str(LOGISTICS_DOMAIN), str(LARGE), "--max-states", value)
    assert done.returncode == 2
    assert "Traceback" not in done.stderr and "--max-states" in done.stderr


def test_huge_pddl_file_is_refused_before_reading(tmp_path):
    """A sparse problem file just over the reader's cap: refused from its size, nothing allocated."""
    huge = tmp_path / "huge.pddl"
    with open(huge, "wb") as handle:
        handle.truncate(MAX_FILE_BYTES + 1)
    done, _ = _plannerl("plan", str(LOGISTICS_DOMAIN), str(huge))
    assert done.returncode == 2
    line = _one_error_line(done)
    assert str(huge) in line and "byte limit" in line


# Runs `plannerl plan` with the address space capped at what the process already uses plus
# a little headroom, set after the imports so only the search can hit the cap.
MEMORY_CAPPED = """
import resource, sys
from plannerl.cli.main import run
pages = int(open("/proc/self/statm").read().split()[0])
cap = pages * resource.getpagesize() + 48 * 2**20
resource.setrlimit(resource.RLIMIT_AS, (cap, cap))
sys.argv = ["plannerl", *sys.argv[1:]]
run()
"""


def test_running_out_of_memory_is_one_line_not_a_traceback():
    start = time.perf_counter()
    done = subprocess.run([sys.executable, "-c", MEMORY_CAPPED, "plan", str(LOGISTICS_DOMAIN), str(LARGE), "--time-limit", "90"],
                          capture_output=True, text=True, timeout=120, env=ENV, cwd=ROOT)
    assert time.perf_counter() - start < 100
    assert done.returncode == 4, done.stderr[-2000:]
    assert "out of memory" in _one_error_line(done)


@pytest.mark.slow
@pytest.mark.parametrize("planner", ["fast-downward", "pyperplan"])
def test_time_limit_stops_external_planners(planner):
    done, wall = _plannerl("plan", str(LOGISTICS_DOMAIN), str(LARGE), "--planner", planner, "--time-limit", "1")
    assert done.returncode == 4
    assert "time limit of 1 s" in _one_error_line(done)
    assert wall < 60


# Seed specs arrive on the command line of generate, data, eval and train.
SEED_SPEC_TEXT = st.text(alphabet="0123456789:, -+x", max_size=24).filter(lambda s: all(len(n) <= 4 for n in re.split(r"[^0-9]", s)))


@settings(max_examples=300, deadline=1000)
@given(spec=SEED_SPEC_TEXT)
def test_any_seed_spec_is_parsed_or_refused_in_one_line(spec):
    try:
        seeds = parse_seeds(spec)
    except PlannerlError as exc:
        assert str(exc) and "\n" not in str(exc)
        return
    assert seeds and len(seeds) == len(set(seeds)) and min(seeds) >= 0


@pytest.mark.parametrize("spec", ["0:99999999999999999999", "0:10000000", "5:4", "1:9:0", "1:2:3:4", "-1", "1e3", "１２"])
def test_huge_or_malformed_seed_specs_are_refused_before_allocating(spec):
    start = time.perf_counter()
    with pytest.raises(PlannerlError, match="seed spec"):
        parse_seeds(spec)
    assert time.perf_counter() - start < 0.5


def _grounding_bomb(folder: Path, objects: int = 300) -> tuple[Path, Path]:
    """A 4 KB problem whose one 4-parameter action grounds to objects**4 actions."""
    domain = folder / "domain.pddl"
    domain.write_text("(define (domain bomb) (:requirements :strips) (:predicates (p ?a) (q ?a ?b ?c ?d))\n"
                      "  (:action a4 :parameters (?a ?b ?c ?d) :precondition (and (p ?a) (p ?b) (p ?c) (p ?d))"
                      " :effect (q ?a ?b ?c ?d)))\n")
    problem = folder / "p.pddl"
    names = [f"o{i}" for i in range(objects)]
    problem.write_text(f"(define (problem bomb1) (:domain bomb) (:objects {' '.join(names)})\n"
                       f"  (:init {' '.join(f'(p {n})' for n in names)}) (:goal (q o1 o2 o3 o4)))\n")
    return domain, problem


def test_grounding_explosion_is_stopped_with_a_limit_error(tmp_path, monkeypatch):
    """The cap's mechanism, with the cap lowered so the test stays fast (the real cap is 1,000,000)."""
    import plannerl.pddl.grounding
    from plannerl.errors import LimitError
    from plannerl.planning.planner import load_task

    domain, problem = _grounding_bomb(tmp_path, objects=40)  # 2.56 million groundings
    monkeypatch.setattr(plannerl.pddl.grounding, "MAX_GROUND_ACTIONS", 20_000)
    with pytest.raises(LimitError, match=r"problem bomb1: more than 20000 ground actions, too large to plan"):
        load_task(domain, problem)


@pytest.mark.slow
def test_grounding_explosion_through_the_cli(tmp_path):
    """300 objects: 8.1e9 groundings; was unbounded (past 60 s and 700 MB, --time-limit ignored)."""
    domain, problem = _grounding_bomb(tmp_path)
    done, _ = _plannerl("plan", str(domain), str(problem), "--time-limit", "3", timeout=300)
    assert done.returncode == 4
    assert "more than 1000000 ground actions" in _one_error_line(done)


def test_templates_with_huge_format_specs_are_refused(tmp_path):
    """A templates file beside a domain comes from strangers too: `{0:>300000000}` would build a
    300 MB string per sentence (`plannerl data` reached 5 GB before the fix)."""
    shutil.copy(DOMAINS / "cooking.pddl", tmp_path)
    shutil.copy(DOMAINS / "burger.pddl", tmp_path)
    shipped = (DOMAINS / "cooking.templates.toml").read_text()
    hostile = re.sub(r'(?m)^robot = ".*"$', 'robot = "{0:>300000000}"', shipped)
    assert hostile != shipped
    (tmp_path / "cooking.templates.toml").write_text(hostile)
    done, _ = _plannerl("data", str(tmp_path / "burger.pddl"), "--out", str(tmp_path / "out"))
    assert done.returncode == 2
    assert _one_error_line(done).endswith("types.robot: placeholder {0} may not have a format spec or conversion")
    assert not (tmp_path / "out" / "summary.json").exists()
