"""`plannerl eval` as a library call (plannerl.agents.eval_run), `plannerl play`'s target, and
evaluation output that stays whole in an 80-column terminal (plannerl.agents.display)."""

from __future__ import annotations

import io
import json
from dataclasses import replace
from pathlib import Path

import pytest
from conftest import BAD, DOMAINS, run_cli
from rich.console import Console

from plannerl.agents.display import RichTrace, matrix_table, summary_table
from plannerl.agents.distributed import EpisodeRecord
from plannerl.agents.eval_run import EvalSpec, run_evaluation
from plannerl.agents.evaluate import Trace, evaluate_policies, play, problems_for_target, problems_from_files, sr_matrix
from plannerl.agents.policies import OraclePolicy, RandomPolicy
from plannerl.errors import PlannerlError

FILES = [DOMAINS / "burger.pddl", DOMAINS / "cheese_sandwich.pddl"]
LONG_TASKS = ("double_cheese_burger", "lettuce_tomato_sandwich")
LONG_POLICY = "runs/lettuce_tomato_sandwich/models/sft"


@pytest.fixture(scope="module")
def results():
    return play(problems_from_files(FILES), OraclePolicy()) + play(problems_from_files(FILES), RandomPolicy(seed=1))


def test_run_evaluation_writes_the_report_evaluate_policies_writes(tmp_path):
    spec = EvalSpec(policies=["oracle", "random"], problems=FILES, report=tmp_path / "run.json", matrix_png=tmp_path / "m.png")
    said = []
    outcome = run_evaluation(spec, say=said.append)
    assert said == [] and outcome.report == spec.report and outcome.matrix_png == spec.matrix_png
    assert [(r.policy, r.problem.name) for r in outcome.results] == [
        ("oracle", "burger"), ("oracle", "cheese_sandwich"), ("random", "burger"), ("random", "cheese_sandwich")]
    assert outcome.matrix == sr_matrix(outcome.results) and outcome.matrix["rows"] == ["oracle", "random"]
    assert (tmp_path / "m.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    config = spec.config(["oracle", "random"], 5)
    evaluate_policies([OraclePolicy(), RandomPolicy()], problems_from_files(FILES), report=tmp_path / "direct.json", config=config)
    assert (tmp_path / "run.json").read_bytes() == (tmp_path / "direct.json").read_bytes()
    assert json.loads((tmp_path / "run.json").read_text())["config"]["problems"] == [str(p) for p in FILES]


def test_run_evaluation_plays_generated_tasks_on_their_seeds():
    outcome = run_evaluation(EvalSpec(tasks=["burger"], seeds="1:2", runs=2))
    assert [(r.problem.task_name, r.problem.seed, r.run) for r in outcome.results] == [
        ("burger", 1, 0), ("burger", 2, 0), ("burger", 1, 1), ("burger", 2, 1)]
    assert all(r.success for r in outcome.results) and outcome.report is None
    config = EvalSpec(tasks=["burger"], seeds="1:2", base=True).config(["oracle"], 5)
    assert (config["seeds"], config["base"], config["temperature"]) == (None, True, None)


@pytest.mark.parametrize("spec, message", [
    (EvalSpec(), "nothing to evaluate"),
    (EvalSpec(tasks=["burger"], seeds="1", domain=BAD / "domain.pddl"), "--domain applies to PROBLEM files"),
    (EvalSpec(policies=["orcale"], tasks=["pizza"]), "unknown task 'pizza'"),  # instances are checked before any policy
    (EvalSpec(policies=["orcale"], tasks=["burger"], seeds="1"), "unknown policy 'orcale'"),
    (EvalSpec(tasks=["burger"], seeds=""), "seed spec is empty"),
    (EvalSpec(problems=FILES, invalid="skip"), "--invalid"),
    (EvalSpec(problems=FILES, history_len=-1), "--history-len must be 0 or more, got -1"),
])
def test_bad_requests_are_one_line_errors_naming_the_value(spec, message):
    with pytest.raises(PlannerlError, match=message):
        run_evaluation(spec)


def test_interrupted_run_says_where_its_episodes_are(tmp_path):
    class CtrlCAfterFirstEpisode(Trace):
        def episode_end(self, result):
            raise KeyboardInterrupt

    said = []
    spec = EvalSpec(policies=["random"], problems=FILES, report=tmp_path / "r.json")
    with pytest.raises(KeyboardInterrupt):
        run_evaluation(spec, trace=CtrlCAfterFirstEpisode(), say=said.append)
    assert said == [f"[yellow]interrupted: the episodes finished so far are in {spec.report}[/]"]
    data = json.loads(spec.report.read_text())
    assert data["interrupted"] is True and len(data["episodes"]) == 1


def test_play_target_is_a_problem_file_or_a_task_name():
    [from_file] = problems_for_target(DOMAINS / "burger.pddl")
    assert (from_file.source, from_file.task_name) == (str(DOMAINS / "burger.pddl"), None)
    [from_task] = problems_for_target("burger", seed=7)
    assert (from_task.task_name, from_task.seed) == ("burger", 7)
    with pytest.raises(PlannerlError, match="unknown task 'pizza'"):
        problems_for_target("pizza")
    with pytest.raises(PlannerlError, match="no_such.pddl: no such file"):
        problems_for_target(BAD / "no_such.pddl")


# --- 80 columns ---------------------------------------------------------------------------------


def _relabelled(results, groups: tuple[str, ...], policy_names: dict[str, str]) -> list[EpisodeRecord]:
    """The episodes as gathered records, counted under long task names and policy names."""
    return [EpisodeRecord({**r.to_json(), "group": group, "policy": policy_names.get(r.policy, r.policy)}, r.episode)
            for group in groups for r in results]


def _render(*renderables, width: int = 80) -> str:
    console = Console(width=width, file=io.StringIO(), record=True)
    for renderable in renderables:
        console.print(renderable)
    return console.export_text()


def test_summary_and_matrix_keep_every_name_whole_in_80_columns(results):
    records = _relabelled(results, LONG_TASKS, {"random": LONG_POLICY})
    text = _render(summary_table(records), matrix_table(sr_matrix(records)))
    assert "…" not in text
    assert max(len(line) for line in text.splitlines()) <= 80
    for name in (*LONG_TASKS, LONG_POLICY, "oracle", "optimal length", "invalid rate", "optimal SR", "mean ± std"):
        assert name in text, name


def test_wide_terminals_get_one_row_per_group(results):
    text = _render(summary_table(results), width=200)
    header = next(line for line in text.splitlines() if "policy" in line)
    assert all(column in header for column in ("task", "episodes", "SR", "ASAT", "ASST", "optimal SR", "invalid rate"))
    assert sum("cooking" in line for line in text.splitlines()) == 2


def test_trace_titles_are_never_cut(results):
    console = Console(width=80, file=io.StringIO(), record=True)
    trace = RichTrace(console)
    problem = replace(results[0].problem, source="burger.pddl")
    trace.episode_start(problem, f"{LONG_POLICY}/checkpoint-1000", 0)  # too long for a rule's title: a rule, then the title
    trace.episode_start(problem, "oracle", 0)
    lines = console.export_text().splitlines()
    assert "…" not in "".join(lines) and set(lines[0]) == {"─"} and lines[1].startswith(f"{LONG_POLICY}/checkpoint-1000 on ")
    assert lines[-1].startswith("oracle on burger.pddl: optimal 8 steps, limit 12, 2 goals unmet ─")


def test_cli_eval_output_fits_80_columns(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("COLUMNS", "80")
    report = tmp_path.joinpath(*["a_long_folder_name"] * 6) / "evaluation_report.json"
    code, out, err = run_cli(["eval", "--policy", "oracle", "--policy", f"{LONG_POLICY}=random", *FILES, "--report", report,
                              "--quiet"], capsys)
    assert code == 0, err
    assert "…" not in out and f"report: {report}\n" in out
    assert Path(report).exists()


def test_an_instance_past_the_state_limit_is_skipped_and_named_not_a_crash(monkeypatch, tmp_path):
    """A generated instance the planner cannot solve within its state limit has no optimal
    length: the evaluation leaves it out, says so and lists it in the report; the other
    instances' episodes are those of an evaluation without it."""
    from plannerl.agents.problems import iter_problems_from_tasks
    from plannerl.planning import search

    monkeypatch.setattr(search, "DEFAULT_MAX_STATES", 12)  # most burger layouts fit; the rest stand for huge ones
    said = []
    outcome = run_evaluation(EvalSpec(tasks=["burger"], seeds="0:5", report=tmp_path / "r.json"), say=said.append)
    played = [r.problem.seed for r in outcome.results]
    missing = sorted(set(range(6)) - set(played))
    assert missing and len(played) + len(missing) == 6
    assert outcome.skipped == [f"instance burger_{s} of burger: no plan found: stopped after 12 states (state limit)"
                               for s in missing]
    assert [line for line in said if "skipped" in line] and all(f"burger_{s}" in " ".join(said) for s in missing)
    report = json.loads((tmp_path / "r.json").read_text())
    assert report["skipped"] == outcome.skipped and report["metrics"]["episodes"] == len(played)
    alone = run_evaluation(EvalSpec(tasks=["burger"], seeds=",".join(map(str, played)), report=tmp_path / "kept.json"))
    assert [r.to_json() for r in alone.results] == [r.to_json() for r in outcome.results]
    assert "skipped" not in json.loads((tmp_path / "kept.json").read_text())
    with pytest.raises(PlannerlError, match="state limit"):  # without a list to name it in, it stays an error
        list(iter_problems_from_tasks(["burger"], missing))


def test_a_training_runs_evaluation_bar_ends_full_when_an_instance_is_skipped(tmp_path, monkeypatch):
    """The bar's total counts every instance of the splits (`eval_episodes`); a skipped one
    advances it too, so a finished evaluation never shows a bar stuck short of its total."""
    from plannerl.agents.model import build_default_model
    from plannerl.planning import search
    from plannerl.train.config import resolve_config
    from plannerl.train.evaluation import eval_episodes, evaluate_model
    from plannerl.train.run import Run

    monkeypatch.setattr(search, "DEFAULT_MAX_STATES", 12)
    config = resolve_config(overrides={"eval": {"seeds": "0:5", "heldout_seeds": "6"}})
    model = build_default_model(tmp_path / "model", size="micro")
    ticks = []
    summary = evaluate_model(Run(tmp_path / "run", config), "sft", model, progress=lambda: ticks.append(1))
    report = json.loads((tmp_path / "run" / "eval" / "sft-seeds.json").read_text())
    assert report["skipped"] and report["metrics"]["episodes"] + len(report["skipped"]) == 6
    assert len(ticks) == eval_episodes(config) == 7 and set(summary) == {"seeds", "heldout"}
