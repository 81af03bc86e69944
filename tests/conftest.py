"""Shared paths and problem lists for the PDDL-core tests (plain constants; import with `from conftest import ...`)."""

from __future__ import annotations

import signal
import sys
from pathlib import Path

import pytest

# A shell starts background jobs (`pytest &`, nohup) with SIGINT ignored, and every process they
# start inherits that, so the Ctrl-C tests' children would never see their SIGINT. Handled
# signals are reset to the default in a child; ignored ones are not, so handle it here.
if signal.getsignal(signal.SIGINT) is signal.SIG_IGN:
    signal.signal(signal.SIGINT, signal.default_int_handler)

ROOT = Path(__file__).resolve().parent.parent
DOMAINS = ROOT / "domains"
FIXTURES = ROOT / "tests" / "fixtures"
CLASSIC = FIXTURES / "classic"
BAD = FIXTURES / "bad"

COOKING_PROBLEMS = sorted(p for p in DOMAINS.glob("*.pddl") if p.name != "cooking.pddl")
# Classic fixtures small enough for blind search in about a second each; the larger sizes
# (gripper/p08, logistics/p04) are for bench/planner.py.
CLASSIC_PROBLEMS = [CLASSIC / name for name in (
    "blocksworld/p00.pddl", "blocksworld/p01.pddl", "blocksworld/p02.pddl", "blocksworld/p03.pddl", "blocksworld/p04.pddl",
    "gripper/p01.pddl", "gripper/p02.pddl", "gripper/p03.pddl", "gripper/p04.pddl", "gripper/p06.pddl",
    "logistics/p01.pddl", "logistics/p02.pddl", "logistics/p03.pddl", "ferry/p01.pddl", "ferry/p02.pddl",
)]
ALL_PROBLEMS = COOKING_PROBLEMS + CLASSIC_PROBLEMS


@pytest.fixture(autouse=True)
def own_length_cache(tmp_path_factory, monkeypatch):
    """Each test gets an empty optimal-length cache (`plannerl.planning.lengths`), so no test
    answers from another's searches and none writes to the user's cache."""
    monkeypatch.setenv("PLANNERL_CACHE", str(tmp_path_factory.mktemp("length_cache")))


def problem_id(path: Path) -> str:
    """`burger`, `gripper/p02`: short test ids."""
    return path.stem if path.parent == DOMAINS else f"{path.parent.name}/{path.stem}"


def run_cli(args, capsys):
    """Run `plannerl ARGS` in-process through the real entry point: (exit code, stdout, stderr)."""
    from plannerl.cli.main import run

    argv = sys.argv
    sys.argv = ["plannerl", *map(str, args)]
    try:
        with pytest.raises(SystemExit) as exit_info:
            run()
            raise SystemExit(0)
    finally:
        sys.argv = argv
    captured = capsys.readouterr()
    return exit_info.value.code, captured.out, captured.err


def revisits(task, actions) -> list[tuple[bool, bool]]:
    """Per step of an episode (`actions`: its actions' PDDL names): did it step back to a state
    it had been in, and did every valid action there lead back?"""
    state, seen, steps = task.init, {task.init}, []
    for name in actions:
        every = all(task.apply(state, a) in seen for a in task.applicable(state))
        state = task.apply(state, task.find_action(name))
        steps.append((state in seen, every))
        seen.add(state)
    return steps
