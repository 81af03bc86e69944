"""Multi-turn evaluation: the episode loop, invalid-answer modes, metrics, reports, CLI."""

from __future__ import annotations

import functools
import json
import math
import re
import sys
from pathlib import Path

import pytest
from conftest import run_cli

from plannerl.agents.evaluate import (
    MAX_TRIES,
    Trace,
    build_report,
    evaluate_policies,
    make_problem,
    metrics,
    play,
    problems_from_files,
    problems_from_tasks,
    sr_matrix,
)
from plannerl.agents.policies import OraclePolicy, RandomPolicy, ScriptedPolicy, answer_text
from plannerl.errors import NoPlanError, PlannerlError
from plannerl.planning.planner import load_task
from plannerl.planning.search import breadth_first_search
from plannerl.tasks.generate import list_tasks, paper_step_limit

ROOT = Path(__file__).resolve().parent.parent
DOMAINS = ROOT / "domains"
# lettuce_tomato_sandwich's blind search takes seconds: its base layout is covered per task below
SHIPPED = sorted(p for p in DOMAINS.glob("*.pddl") if p.stem not in ("cooking", "lettuce_tomato_sandwich"))
BAD = ROOT / "tests" / "fixtures" / "bad"
PAPER_TASKS = ("cheese_sandwich", "burger", "cheese_burger", "double_cheese_burger")


@functools.cache
def base_problem(task_name: str):
    """The task's unrandomised layout, labelled once for the whole module (its search is the slow part)."""
    [problem] = problems_from_tasks([task_name], [None])
    return problem


@pytest.fixture(scope="module")
def burger():
    return problems_from_files([DOMAINS / "burger.pddl"])[0]


@pytest.fixture(scope="module")
def cheese_burger():
    return problems_from_files([DOMAINS / "cheese_burger.pddl"])[0]


def scripted(wrong: dict[int, list[str]]) -> ScriptedPolicy:
    """The oracle's answers, except the listed wrong answers first at the given (1-based) steps."""
    given: dict[tuple[int, int, int], int] = {}

    def script(obs):
        key = (obs.episode, obs.run, obs.step)
        count = given.get(key, 0)
        due = wrong.get(obs.step + 1, [])
        if count < len(due):
            given[key] = count + 1
            return due[count]
        return OraclePolicy().act([obs])[0]

    return ScriptedPolicy(script)


# --- oracle and random ----------------------------------------------------------------------


@pytest.mark.parametrize("path", SHIPPED, ids=lambda p: p.stem)
def test_oracle_solves_every_shipped_problem_in_optimal_steps(path):
    problem = problems_from_files([path])[0]
    optimal = len(breadth_first_search(problem.task).plan)  # an independent search
    [result] = play([problem], OraclePolicy())
    assert problem.optimal_length == optimal
    assert result.success and result.end == "goal"
    assert result.steps == optimal and result.optimal_success
    assert result.invalid_answers == 0 and result.answers == optimal
    state = problem.task.init
    for action in result.actions:
        state = problem.task.apply(state, problem.task.find_action(action))
    assert problem.task.is_goal(state)


# Generated seeds whose optimal search is quick with the blind search; every task's base layout
QUICK_SEEDS = {"burger": [1, 2, 42], "cheese_sandwich": [1, 2, 42], "cheese_burger": [2], "cooked_burger": [2]}


@pytest.mark.parametrize("path", sorted((ROOT / "tests" / "fixtures" / "classic").glob("*/p02.pddl")), ids=lambda p: p.parent.name)
def test_problem_files_of_other_domains(path):
    problem = problems_from_files([path])[0]
    assert problem.group == problem.task.domain_name and problem.task.domain_name != "cooking"
    [oracle] = play([problem], OraclePolicy())
    [walk] = play([problem], RandomPolicy(seed=1))
    assert oracle.optimal_success and oracle.steps == len(breadth_first_search(problem.task).plan)
    assert walk.invalid_answers == 0 and walk.steps <= problem.step_limit == math.ceil(1.5 * problem.optimal_length)


# labelling double_cheese_burger's base layout is the generator's slowest search (~30 s here)
@pytest.mark.parametrize("task_name", [pytest.param(t, marks=pytest.mark.slow) if t == "double_cheese_burger" else t
                                       for t in list_tasks()])
def test_oracle_scores_sr_one_with_optimal_steps_on_every_task(task_name):
    seeds = QUICK_SEEDS.get(task_name, [])
    problems = [base_problem(task_name)] + (problems_from_tasks([task_name], seeds) if seeds else [])
    results = play(problems, OraclePolicy())
    m = metrics(results)
    assert m["sr"] == {"mean": 1.0, "std": 0.0}
    assert m["optimal_sr"]["mean"] == 1.0
    assert m["invalid_rate"]["mean"] == 0.0
    lengths = [p.optimal_length for p in problems]
    assert [r.steps for r in results] == lengths
    assert m["asat"]["mean"] == pytest.approx(sum(lengths) / len(lengths))


@pytest.mark.parametrize("task_name", ["cheese_burger", "double_cheese_burger"])
def test_random_policy_fails_long_tasks(task_name):
    problems = [base_problem(task_name)]
    results = play(problems, RandomPolicy(seed=0), runs=3)
    m = metrics(results)
    assert m["sr"]["mean"] < 1.0
    assert m["invalid_answers"] == 0  # it only picks valid actions
    for result in results:
        if not result.success:
            assert result.end == "step_limit" and result.steps == result.problem.step_limit


def test_random_policy_is_seeded_per_episode(burger, cheese_burger):
    one = play([burger, cheese_burger], RandomPolicy(seed=5))
    again = play([burger, cheese_burger], RandomPolicy(seed=5))
    alone = play([cheese_burger], RandomPolicy(seed=5))
    other = play([burger, cheese_burger], RandomPolicy(seed=6))
    actions = [r.actions for r in one]
    assert actions == [r.actions for r in again]
    assert actions[1] == alone[0].actions  # independent of the other episodes
    assert actions != [r.actions for r in other]


# --- step limits ----------------------------------------------------------------------------


def test_step_limit_is_the_papers_for_its_tasks_else_one_and_a_half_optimal():
    for task_name in PAPER_TASKS:
        problem = base_problem(task_name)
        assert problem.step_limit == paper_step_limit(task_name)
    assert [paper_step_limit(t) for t in PAPER_TASKS] == [15, 15, 23, 35]
    problem = problems_from_files([DOMAINS / "double_cheese_burger.pddl"])[0]
    assert problem.optimal_length == 23 and problem.step_limit == 35  # ceil(1.5 * 23)
    problem = problems_from_files([DOMAINS / "cheese_burger.pddl"], max_steps=4)[0]
    assert problem.step_limit == 4


def test_a_problem_file_may_state_its_own_step_limit(tmp_path, capsys):
    """`; step-limit: N` in the file replaces ceil(1.5 x optimal); --max-steps still overrides it."""
    text = (DOMAINS / "burger.pddl").read_text()
    stated = tmp_path / "burger.pddl"
    stated.write_text("; Step-Limit: 5\n" + text)
    [problem] = problems_from_files([stated], domain=DOMAINS / "cooking.pddl")
    assert problem.optimal_length == 8 and problem.step_limit == 5
    [result] = play([problem], OraclePolicy())
    assert not result.success and result.end == "step_limit" and result.steps == 5
    assert problems_from_files([stated], domain=DOMAINS / "cooking.pddl", max_steps=9)[0].step_limit == 9
    bad = tmp_path / "bad.pddl"
    for header, message in (("; step-limit: zero\n", ":1: step-limit must be a positive integer, got 'zero'"),
                            (";; step limit = 0\n", ":1: step-limit must be a positive integer, got '0'"),
                            ("; step-limit: 5\n; step-limit: 6\n", ":2: step-limit 6 disagrees with line 1 (5)")):
        bad.write_text(header + text)
        with pytest.raises(PlannerlError, match=re.escape(f"{bad}{message}")):
            problems_from_files([bad], domain=DOMAINS / "cooking.pddl")
    code, _, err = run_cli(["eval", "--policy", "oracle", str(bad), "--domain", str(DOMAINS / "cooking.pddl")], capsys)
    assert code != 0 and err.strip().splitlines() == [f"plannerl: error: {bad}:2: step-limit 6 disagrees with line 1 (5)"]


def test_max_steps_cuts_the_oracle_short(burger):
    short = problems_from_files([DOMAINS / "burger.pddl"], max_steps=3)
    [result] = play(short, OraclePolicy())
    assert not result.success and result.end == "step_limit" and result.steps == 3
    with pytest.raises(PlannerlError, match="--max-steps"):
        problems_from_files([DOMAINS / "burger.pddl"], max_steps=0)


# --- invalid answers under each mode ----------------------------------------------------------


def test_retry_mode_invalid_answers_do_not_use_steps(burger):
    [result] = play([burger], scripted({1: ["nonsense", ""], 4: ["Action: fly to the moon"]}), invalid="retry")
    assert result.success and result.steps == burger.optimal_length and result.optimal_success
    assert result.answers == burger.optimal_length + 3
    assert result.invalid_answers == 3
    assert [t.uses_step for t in result.turns if not t.valid] == [False, False, False]
    assert [t.step for t in result.turns if not t.valid] == [1, 1, 4]


def test_retry_mode_fails_on_the_fifth_invalid_try_and_counts_steps_used(burger):
    [result] = play([burger], scripted({3: ["junk"] * MAX_TRIES}), invalid="retry")
    assert not result.success and result.end == "invalid_tries"
    assert result.steps == 2  # two actions applied before the step that failed
    assert result.answers == 2 + MAX_TRIES and result.invalid_answers == MAX_TRIES
    four = play([burger], scripted({3: ["junk"] * (MAX_TRIES - 1)}), invalid="retry")[0]
    assert four.success and four.invalid_answers == MAX_TRIES - 1


def test_step_mode_invalid_answers_use_a_step(burger):
    [result] = play([burger], scripted({1: ["nonsense"], 5: ["nonsense"]}), invalid="step")
    assert result.success and result.steps == burger.optimal_length + 2
    assert not result.optimal_success
    assert result.invalid_answers == 2 and result.answers == burger.optimal_length + 2
    [garbage] = play([burger], ScriptedPolicy(lambda obs: "garbage"), invalid="step")
    assert garbage.end == "step_limit" and garbage.steps == burger.step_limit
    assert garbage.answers == garbage.invalid_answers == burger.step_limit


def test_stop_mode_ends_on_the_first_invalid_answer(burger):
    [result] = play([burger], scripted({4: ["nonsense"]}), invalid="stop")
    assert not result.success and result.end == "invalid_answer"
    assert result.steps == 3 and result.answers == 4 and result.invalid_answers == 1


def test_inapplicable_action_feedback_names_unmet_preconditions(burger):
    task = burger.task
    # the top bun lies on table2 but the robot starts at table1: picking it up is inapplicable
    pick = next(a for a in range(len(task.actions)) if task.actions[a].schema == "pick-up"
                and not task.is_applicable(task.init, a) and task.unmet_preconditions(task.init, a) == ["(at robot1 table2)"])
    seen = []

    def script(obs):
        seen.append(obs)
        return answer_text(task, pick) if obs.step == 0 and not obs.feedback else OraclePolicy().act([obs])[0]

    [result] = play([burger], ScriptedPolicy(script), invalid="retry")
    bad = result.turns[0]
    assert bad.kind == "not_applicable" and bad.action == task.actions[pick].pddl
    assert "(at robot1 table2)" in bad.feedback
    assert seen[1].feedback == [bad.feedback]  # the retry sees the feedback ...
    assert bad.feedback in seen[1].prompt()  # ... in its prompt
    assert seen[2].feedback == []  # and a valid action clears it
    assert result.success and result.steps == burger.optimal_length


def test_answers_that_are_not_text_count_as_invalid(burger):
    [result] = play([burger], ScriptedPolicy(lambda obs: None), invalid="stop")
    assert result.end == "invalid_answer" and result.turns[0].kind == "unparseable"


def test_bad_mode_and_runs_are_refused(burger):
    with pytest.raises(PlannerlError, match="--invalid"):
        play([burger], OraclePolicy(), invalid="ignore")
    with pytest.raises(PlannerlError, match="--runs"):
        play([burger], OraclePolicy(), runs=0)


def test_goal_already_true_is_success_in_zero_steps(burger):
    task = burger.task
    plan = burger.oracle.canonical_plan()
    state = task.init
    for action in plan:
        state = task.apply(state, action)
    task_at_goal = load_task(None, DOMAINS / "burger.pddl")
    task_at_goal.init = state
    problem = make_problem(task_at_goal, name="done")
    [result] = play([problem], ScriptedPolicy(lambda obs: pytest.fail("asked in a goal state")))
    assert result.success and result.steps == 0 and result.answers == 0


# --- metrics and reports -----------------------------------------------------------------------


def test_metrics_follow_their_definitions(burger, cheese_burger):
    results = play([burger, cheese_burger], scripted({2: ["x", "y"]}), invalid="retry")
    results += play([burger, cheese_burger], scripted({2: ["x"] * MAX_TRIES}), invalid="retry")
    # success 8 and 15 steps with 2 invalid answers each; failures after 1 step with 5 invalid of 6
    m = metrics(results)
    assert m["episodes"] == 4 and m["successes"] == 2
    assert m["sr"] == {"mean": 0.5, "std": 0.5}
    assert m["asat"]["mean"] == pytest.approx((8 + 15 + 1 + 1) / 4)
    assert m["asst"]["mean"] == pytest.approx((8 + 15) / 2)
    assert m["asst"]["std"] == pytest.approx(3.5)
    assert m["optimal_sr"]["mean"] == 0.5
    assert m["answers"] == 10 + 17 + 6 + 6 and m["invalid_answers"] == 2 + 2 + 5 + 5
    assert m["invalid_rate"]["mean"] == pytest.approx(14 / 39, abs=1e-6)
    none = metrics(results[2:])
    assert none["asst"] == {"mean": None, "std": None}
    assert metrics([])["sr"]["mean"] is None


def test_report_is_deterministic_and_holds_every_episode(tmp_path, burger, cheese_burger):
    config = {"policies": ["random"]}
    paths = []
    for name in ("a.json", "b.json"):
        results = evaluate_policies([RandomPolicy(seed=3)], [burger, cheese_burger], runs=2, report=tmp_path / name, config=config)
        paths.append(tmp_path / name)
    assert paths[0].read_bytes() == paths[1].read_bytes()
    report = json.loads(paths[0].read_text())
    assert report["interrupted"] is False
    assert len(report["episodes"]) == 4
    episode = report["episodes"][1]
    assert episode["instance"] == cheese_burger.name and episode["run"] == 0
    assert episode["optimal_length"] == 15 and episode["step_limit"] == 23
    assert episode["steps"] == len(episode["actions"]) == sum(t["uses_step"] for t in episode["turns"])
    assert set(episode["turns"][0]) >= {"step", "answer", "action", "valid", "kind", "feedback", "goals_unmet"}
    assert report["metrics"] == metrics(results)
    evaluate_policies([RandomPolicy(seed=4)], [burger, cheese_burger], runs=2, report=tmp_path / "c.json", config=config)
    assert (tmp_path / "c.json").read_bytes() != paths[0].read_bytes()


def test_interrupted_evaluation_keeps_finished_episodes(tmp_path, burger, cheese_burger):
    def script(obs):
        if obs.episode == 2:
            raise KeyboardInterrupt
        return OraclePolicy().act([obs])[0]

    with pytest.raises(KeyboardInterrupt):
        evaluate_policies([ScriptedPolicy(script)], [burger, cheese_burger, burger], report=tmp_path / "r.json")
    report = json.loads((tmp_path / "r.json").read_text())
    assert report["interrupted"] is True
    assert [e["success"] for e in report["episodes"]] == [True, True]


def test_matrix_rows_are_policies_and_columns_tasks(burger, cheese_burger):
    results = play([burger], OraclePolicy()) + play([burger], ScriptedPolicy(lambda obs: "", name="mute"))
    matrix = sr_matrix(results)
    assert matrix == {"rows": ["oracle", "mute"], "columns": ["cooking"], "sr": [[1.0], [0.0]]}
    report = build_report(results, {})
    assert [g["policy"] for g in report["groups"]] == ["oracle", "mute"]


def test_matrix_png_is_a_deterministic_png(tmp_path):
    from plannerl.agents.plots import save_matrix_png

    rows, columns = ["burger", "double"], ["burger", "cheese_burger", "double"]
    values = [[0.7, 0.0, None], [0.5, 0.4, 0.3]]
    one = save_matrix_png(tmp_path / "m1.png", rows, columns, values).read_bytes()
    two = save_matrix_png(tmp_path / "m2.png", rows, columns, values).read_bytes()
    assert one[:8] == b"\x89PNG\r\n\x1a\n" and one == two


# --- bad input ----------------------------------------------------------------------------------


def test_unknown_task_and_empty_seed_list_are_clear_errors():
    with pytest.raises(PlannerlError, match="unknown task 'pizza'"):
        problems_from_tasks(["pizza"], [1])
    with pytest.raises(PlannerlError, match="no instances"):
        problems_from_tasks(["burger"], [])


def test_unsolvable_problem_is_refused():
    with pytest.raises(NoPlanError, match="unsolvable.pddl"):
        problems_from_files([BAD / "unsolvable.pddl"], domain=BAD / "domain.pddl")


def test_cli_eval_writes_report_and_prints_summary(tmp_path, capsys):
    report = tmp_path / "r.json"
    png = tmp_path / "m.png"
    code, out, err = run_cli(["eval", "--policy", "oracle", "--policy", "random", DOMAINS / "burger.pddl",
                              DOMAINS / "cheese_sandwich.pddl", "--report", report, "--matrix-png", png], capsys)
    assert code == 0, err
    assert "ok" in out and "Evaluation summary" in out and "success in 8 steps" in out
    data = json.loads(report.read_text())
    assert data["config"]["policies"] == ["oracle", "random"]
    assert len(data["episodes"]) == 4 and data["matrix"]["rows"] == ["oracle", "random"]
    assert png.read_bytes()[:4] == b"\x89PNG"


def test_cli_eval_tasks_quiet(capsys):
    code, out, err = run_cli(["eval", "--policy", "oracle", "--task", "burger", "--seeds", "1:2", "--quiet"], capsys)
    assert code == 0, err
    assert "Evaluation summary" in out and " ok " not in out


@pytest.mark.parametrize("args, message", [
    (["--policy", "orcale", "--task", "burger", "--seeds", "1"], "unknown policy 'orcale'"),
    (["--policy", "./no/such/model", "--task", "burger", "--seeds", "1"], "no such model"),
    (["--policy", "oracle", BAD / "unbalanced.pddl", "--domain", BAD / "domain.pddl"], "unbalanced.pddl"),
    (["--policy", "oracle", "--task", "pizza"], "unknown task 'pizza'"),
    (["--policy", "oracle", "--task", "burger", "--seeds", ""], "seed spec is empty"),
    (["--policy", "oracle", "--task", "burger", "--seeds", "1", "--invalid", "skip"], "--invalid"),
    (["--policy", "oracle"], "nothing to evaluate"),
])
def test_cli_eval_bad_input_is_one_clear_line(args, message, capsys):
    code, out, err = run_cli(["eval", *args], capsys)
    assert code != 0
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("plannerl: error:") and message in lines[0], err


def test_quiet_trace_is_silent(burger, capsys):
    play([burger], OraclePolicy(), trace=Trace())
    assert capsys.readouterr().out == ""


def test_ctrl_c_in_the_cli_keeps_finished_episodes_in_the_report(tmp_path):
    import signal
    import subprocess

    report = tmp_path / "r.json"
    command = [sys.executable, "-m", "plannerl.cli", "eval", "--policy", "random", DOMAINS / "burger.pddl", "--runs", "100000",
               "--report", report]
    process = subprocess.Popen(list(map(str, command)), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=ROOT)
    try:
        for line in process.stdout:
            if "failed (step limit)" in line or "success in" in line:
                break  # the first episode has finished
        process.send_signal(signal.SIGINT)
        _, err = process.communicate(timeout=60)
    finally:
        process.kill()
    assert process.returncode == 130, err
    assert "interrupted" in err and "Traceback" not in err
    data = json.loads(report.read_text())
    assert data["interrupted"] is True
    assert 1 <= len(data["episodes"]) < 100000
    assert data["metrics"]["episodes"] == len(data["episodes"])


def test_lazy_problems_are_labelled_as_reached_and_reported_in_order(tmp_path, burger, cheese_burger):
    events = []

    def lazy():
        for problem in (burger, cheese_burger, burger):
            events.append(("labelled", problem.name))
            yield problem

    class Recorder(Trace):
        def episode_end(self, result):
            events.append(("played", result.policy, result.problem.name))

    policies = [OraclePolicy(), RandomPolicy(seed=2)]
    lazy_results = evaluate_policies(policies, lazy(), trace=Recorder(), report=tmp_path / "lazy.json")
    evaluate_policies(policies, [burger, cheese_burger, burger], report=tmp_path / "eager.json")
    assert (tmp_path / "lazy.json").read_bytes() == (tmp_path / "eager.json").read_bytes()
    assert [(r.policy, r.episode) for r in lazy_results] == [("oracle", 0), ("oracle", 1), ("oracle", 2),
                                                             ("random", 0), ("random", 1), ("random", 2)]
    assert events[:4] == [("labelled", "burger"), ("played", "oracle", "burger"), ("played", "random", "burger"),
                          ("labelled", "cheese_burger")]
    with pytest.raises(PlannerlError, match="nothing to evaluate"):
        evaluate_policies(policies, iter([]))
    with pytest.raises(PlannerlError, match="--invalid"):
        evaluate_policies(policies, lazy(), invalid="skip")


def test_repeats_a_cycle_finds_two_to_four_actions_run_twice():
    from plannerl.agents.metrics import repeats_a_cycle

    assert repeats_a_cycle(list("xabab")) and repeats_a_cycle(list("abcabc")) and repeats_a_cycle(list("qabcdabcd"))
    assert not repeats_a_cycle(list("abcabd")) and not repeats_a_cycle(list("aab")) and not repeats_a_cycle([])
    assert not repeats_a_cycle(list("abcdeabcde"))  # a five-action cycle is longer than LONGEST_CYCLE


def test_failure_causes_and_lines_say_why_episodes_failed():
    """Real burger episodes: an agent that moves back and forth fails in a loop, one that writes
    nonsense fails on its invalid tries, the oracle never fails; the CLI-facing lines say so."""
    from plannerl.agents.display import failure_lines
    from plannerl.agents.metrics import failure_causes

    problems = problems_from_tasks(["burger"], [1, 2])

    def back_and_forth(obs):
        moves = [obs.task.actions[a].pddl for a in obs.valid_actions() if obs.task.actions[a].pddl.startswith("(move")]
        if obs.history:
            last = obs.task.actions[obs.history[-1]].pddl.strip("()").split()
            back = f"(move {last[1]} {last[3]} {last[2]})"
            if back in moves:
                return back
        return moves[0]

    looping = play(problems, ScriptedPolicy(back_and_forth, name="dither"))
    babbling = play(problems, ScriptedPolicy(lambda obs: "make me a sandwich", name="babble"))
    solved = play(problems, OraclePolicy())
    assert failure_causes(looping) == {"loop": 2} and failure_causes(babbling) == {"invalid_tries": 2}
    assert failure_causes(solved) == {}
    lines = failure_lines(looping + babbling + solved)
    assert lines == ["dither on burger: 2 of 2 failed: 2 in a loop (the same 2-4 actions twice in a row)",
                     "babble on burger: 2 of 2 failed: 2 after 5 invalid tries at one step"]


def test_cli_eval_prints_why_the_failures_failed(capsys):
    code, out, _ = run_cli(["eval", "-p", "random", "-p", "oracle", "--task", "burger", "--seeds", "1:2", "--quiet"], capsys)
    assert code == 0 and "random on burger: 2 of 2 failed: " in out and "oracle on burger" not in out
