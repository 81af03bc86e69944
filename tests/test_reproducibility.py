"""The same seed gives the same bytes: plans, generated instances, datasets and evaluation reports.

Every command runs twice in fresh interpreters with *different* PYTHONHASHSEED values, so
anything that leaks Python's per-process string hashing (set or dict-of-set iteration order)
into an output shows up as a difference. Outputs are compared byte for byte; the only field
ever excluded is a wall-clock time, named where it is excluded.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
DOMAINS = ROOT / "domains"
CLASSIC = ROOT / "tests" / "fixtures" / "classic"
HASH_SEEDS = ("0", "4242")


def plannerl(args: list[str], cwd: Path, hash_seed: str, timeout: float = 300) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONHASHSEED": hash_seed, "COLUMNS": "200", "PYTHONDONTWRITEBYTECODE": "1"}
    done = subprocess.run([sys.executable, "-m", "plannerl.cli", *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)
    assert done.returncode == 0, done.stderr[-3000:]
    return done


def folder_bytes(folder: Path) -> dict[str, bytes]:
    """Relative path -> content of every file under `folder`."""
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def test_plan_command_gives_the_same_plan_and_file_under_any_hash_seed(tmp_path):
    runs = []
    for hash_seed in HASH_SEEDS:
        out = tmp_path / hash_seed
        out.mkdir()
        done = plannerl(["plan", str(DOMAINS / "cheese_burger.pddl"), "--format", "json", "-o", str(out / "plan.txt")], out, hash_seed)
        report = json.loads(done.stdout)
        report.pop("seconds")  # wall-clock times: the fields allowed to differ
        report.pop("heuristic_seconds")
        runs.append((report, (out / "plan.txt").read_bytes()))
    assert runs[0] == runs[1]
    assert runs[0][0]["length"] == 15


PLAN_MANY = """
import json, sys
from plannerl.planning.planner import solve
for problem in sys.argv[1:]:
    solution = solve(None, problem)
    result = solution.result
    print(json.dumps({"problem": problem, "plan": solution.plan_names, "optimal_plans": result.optimal_plans,
                      "first": sorted(result.optimal_first_actions), "expanded": result.expanded}))
"""


def test_builtin_planner_is_independent_of_the_hash_seed():
    """Canonical plans, plan counts, optimal first actions and even the expansion count."""
    problems = [str(DOMAINS / "burger.pddl"), str(DOMAINS / "cheese_sandwich.pddl"), str(CLASSIC / "gripper" / "p03.pddl"),
                str(CLASSIC / "blocksworld" / "p03.pddl"), str(CLASSIC / "logistics" / "p01.pddl")]
    outputs = []
    for hash_seed in HASH_SEEDS:
        env = {**os.environ, "PYTHONHASHSEED": hash_seed}
        done = subprocess.run([sys.executable, "-c", PLAN_MANY, *problems], env=env, capture_output=True, text=True, timeout=300)
        assert done.returncode == 0, done.stderr[-3000:]
        outputs.append(done.stdout)
    assert outputs[0] == outputs[1]
    assert len(outputs[0].splitlines()) == len(problems)


def _run_twice(args: list[str], tmp_path: Path) -> list[dict[str, bytes]]:
    """Run the command in two fresh folders under two hash seeds; `{out}` is the output folder."""
    outputs = []
    for hash_seed in HASH_SEEDS:
        work = tmp_path / f"hash{hash_seed}"
        work.mkdir()
        plannerl([arg.replace("{out}", "out") for arg in args], work, hash_seed)
        outputs.append(folder_bytes(work / "out"))
    return outputs


def _layout(problem_text: str, name: str) -> str:
    return "\n".join(line for line in problem_text.replace(name, "NAME").splitlines() if not line.startswith(";"))


def test_generate_twice_gives_the_same_bytes(tmp_path):
    first, second = _run_twice(["generate", "burger", "--seeds", "0:9,42", "--out", "{out}", "--extra-stations", "0-3",
                                "--distractors", "0-2", "--hold-probability", "0.5"], tmp_path)
    assert first == second
    assert {f"burger_{seed}.pddl" for seed in (*range(10), 42)} | {"instances.json", "cooking.pddl"} <= set(first)
    layouts = {_layout(first[f"burger_{seed}.pddl"].decode(), f"burger_{seed}") for seed in range(10)}
    assert len(layouts) >= 8  # different seeds, different layouts (not just a different name and comment)


def test_data_twice_gives_the_same_bytes(tmp_path):
    first, second = _run_twice(["data", "--task", "burger", "--seeds", "0:7", "--out", "{out}", "--test-fraction", "0.25",
                                "--split-seed", "3"], tmp_path)
    assert first == second
    assert {"train.jsonl", "test.jsonl", "summary.json"} <= set(first)
    assert first["train.jsonl"] and first["test.jsonl"]


def test_eval_twice_gives_the_same_report(tmp_path):
    """The random policy with a fixed --seed (the seeded part of evaluation) and the oracle, on generated instances."""
    first, second = _run_twice(["eval", "--task", "burger", "--seeds", "0:3", "--policy", "random", "--policy", "oracle",
                                "--runs", "2", "--seed", "5", "-q", "--report", "{out}/report.json"], tmp_path)
    assert first == second
    report = json.loads(first["report.json"])
    assert len(report["episodes"]) == 2 * 4 * 2 and report["interrupted"] is False


@pytest.mark.slow
def test_eval_seed_changes_the_random_policy(tmp_path):
    """--seed is not ignored: two seeds give two different random-policy episodes."""
    reports = []
    for seed in ("5", "6"):
        work = tmp_path / seed
        work.mkdir()
        plannerl(["eval", "--task", "burger", "--seeds", "0", "--policy", "random", "--seed", seed, "-q", "--report", "r.json"], work, "0")
        reports.append(json.loads((work / "r.json").read_text())["episodes"])
    assert [e["actions"] for e in reports[0]] != [e["actions"] for e in reports[1]]


TINY_TRAINING = ["train", "--task", "burger", "--out", "{out}", "--quiet", "--seed", "3", "--sft-steps", "2", "--grpo-steps", "1",
                 "--set", 'data.train_seeds="1:2"', "--set", 'builtin.size="micro"', "--set", "builtin.vocab_size=512",
                 "--set", 'eval.seeds="42"', "--set", 'eval.heldout_seeds="5000"', "--set", "sft.batch_size=4",
                 "--set", "grpo.filter_pool=8", "--set", "grpo.prompts_per_step=1", "--set", "grpo.num_generations=2"]
# Files of a run that are not plannerl's results: wall-clock timings, TRL's model cards (their
# tag lists follow set order, i.e. the hash seed) and transformers' pickled TrainingArguments.
NOT_RESULTS = ("timings.json", "README.md", "training_args.bin")


@pytest.mark.slow
def test_train_twice_gives_the_same_model_data_and_evaluation(tmp_path):
    """--seed controls the built-in model's initialisation, data order, GRPO sampling and evaluation."""
    first, second = ({path: data for path, data in run.items() if Path(path).name not in NOT_RESULTS}
                     for run in _run_twice(TINY_TRAINING, tmp_path))
    assert first == second
    assert {"model/model.safetensors", "base/model.safetensors", "sft/model/model.safetensors", "data/train.jsonl",
            "summary.json", "eval/grpo-seeds.json"} <= set(first)
