"""Benchmark: multi-turn evaluation speed.

Same run, same instances:

- episodes/s of the oracle and random policies on double_cheese_burger through the whole
  evaluation loop (answer text -> parser -> precondition check -> apply -> goal test), set-up
  (the one optimal search per instance) excluded and reported apart. References: the same
  episodes on unified-planning's SequentialSimulator (random: list applicable, choose, apply,
  goal test, up to the step limit; oracle: replay the oracle's plan with goal test), and UP's
  plan validator on the oracle's plan.
- ms per model answer of the built-in tiny model (untrained: it writes garbage, so every
  answer is invalid and each episode takes its 5 tries), batched across episodes vs one
  episode at a time, for free generation (greedy) and for decoding constrained to the valid
  actions.

Run: `python bench/eval.py [--markdown] [--model DIR] [--seeds SPEC] [--seconds S]`.
"""

from __future__ import annotations

import argparse
import os
import random
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tables import print_table  # noqa: E402

from plannerl.agents.evaluate import play, problems_from_tasks  # noqa: E402
from plannerl.agents.policies import ModelPolicy, OraclePolicy, RandomPolicy  # noqa: E402

TASK = "double_cheese_burger"


def episodes_per_second(problems, make_policy, seconds: float) -> tuple[float, float]:
    """(episodes/s, mean steps) over repeated passes for at least `seconds`."""
    episodes, steps, start = 0, 0, time.perf_counter()
    while time.perf_counter() - start < seconds:
        results = play(problems, make_policy())
        episodes += len(results)
        steps += sum(r.steps for r in results)
    return episodes / (time.perf_counter() - start), steps / episodes


def up_problems(problems, folder: Path):
    """The same instances read by unified-planning (written out as PDDL files first)."""
    from plannerl.pddl.up_bridge import read_problem
    from plannerl.tasks.generate import base_instance, generate_instance

    out = []
    for problem in problems:
        instance = base_instance(TASK) if problem.seed is None else generate_instance(TASK, problem.seed)
        path = folder / instance.file_name
        path.write_text(instance.problem_text)
        out.append(read_problem(instance.domain_path, path))
    return out


def up_random_episodes_per_second(up_list, limits, seconds: float) -> float:
    from unified_planning.shortcuts import SequentialSimulator

    simulators = [SequentialSimulator(problem=p) for p in up_list]
    for simulator in simulators:
        list(simulator.get_applicable_actions(simulator.get_initial_state()))  # grounding: set-up, not timed
    rng = random.Random(0)
    episodes, start = 0, time.perf_counter()
    while time.perf_counter() - start < seconds:
        for simulator, limit in zip(simulators, limits):
            state = simulator.get_initial_state()
            for _ in range(limit):
                action, params = rng.choice(list(simulator.get_applicable_actions(state)))
                state = simulator.apply(state, action, params)
                if simulator.is_goal(state):
                    break
            episodes += 1
    return episodes / (time.perf_counter() - start)


def up_replay_episodes_per_second(up_list, plans, seconds: float) -> tuple[float, float]:
    """(replays/s on SequentialSimulator with a precondition check per action, validations/s of UP's validator)."""
    from unified_planning.plans import ActionInstance, SequentialPlan
    from unified_planning.shortcuts import PlanValidator, SequentialSimulator

    grounded = []
    for problem, plan in zip(up_list, plans):
        actions = []
        for text in plan:
            name, *args = text.strip("()").split()
            actions.append(ActionInstance(problem.action(name), [problem.object(a) for a in args]))
        grounded.append(actions)
    simulators = [SequentialSimulator(problem=p) for p in up_list]
    episodes, start = 0, time.perf_counter()
    while time.perf_counter() - start < seconds:
        for simulator, actions in zip(simulators, grounded):
            state = simulator.get_initial_state()
            for action in actions:
                assert simulator.is_applicable(state, action)
                state = simulator.apply(state, action)
            assert simulator.is_goal(state)
            episodes += 1
    replay = episodes / (time.perf_counter() - start)
    validations, start = 0, time.perf_counter()
    with PlanValidator(problem_kind=up_list[0].kind, plan_kind=SequentialPlan(grounded[0]).kind) as validator:
        while time.perf_counter() - start < seconds:
            for problem, actions in zip(up_list, grounded):
                assert validator.validate(problem, SequentialPlan(actions)).status.name == "VALID"
                validations += 1
    return replay, validations / (time.perf_counter() - start)


def model_ms_per_answer(model_dir: str, problems, *, batch_size: int, constrained: bool) -> tuple[float, int]:
    policy = ModelPolicy(model_dir, batch_size=batch_size, constrained=constrained, max_new_tokens=24)
    start = time.perf_counter()
    results = play(problems, policy)
    answers = sum(r.answers for r in results)
    return 1000 * (time.perf_counter() - start) / answers, answers


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", default="", help="generated double_cheese_burger seeds besides the base layout (slow to label)")
    parser.add_argument("--seconds", type=float, default=3.0, help="time per episodes/s measurement")
    parser.add_argument("--model", default=None, help="model folder (default: build the built-in tiny model)")
    parser.add_argument("--model-episodes", type=int, default=8)
    parser.add_argument("--markdown", action="store_true")
    args = parser.parse_args()

    from plannerl.agents.model import configure_torch_cpu
    from plannerl.seeds import parse_seeds

    configure_torch_cpu(1)
    seeds = [None] + (parse_seeds(args.seeds) if args.seeds else [])
    start = time.perf_counter()
    problems = problems_from_tasks([TASK], seeds)
    setup = (time.perf_counter() - start) / len(problems)
    oracle_rate, oracle_steps = episodes_per_second(problems, OraclePolicy, args.seconds)
    random_rate, random_steps = episodes_per_second(problems, lambda: RandomPolicy(seed=0), args.seconds)
    plans = [r.actions for r in play(problems, OraclePolicy())]
    with tempfile.TemporaryDirectory() as folder:
        from plannerl.pddl.up_bridge import quiet_environment

        quiet_environment()
        up_list = up_problems(problems, Path(folder))
        up_random = up_random_episodes_per_second(up_list, [p.step_limit for p in problems], args.seconds)
        up_replay, up_validate = up_replay_episodes_per_second(up_list, plans, args.seconds)
    names = ", ".join("base" if s is None else str(s) for s in seeds)
    rows = [
        ["oracle", f"{oracle_steps:.1f}", f"{oracle_rate:,.0f}", f"{up_replay:,.1f}", f"{oracle_rate / up_replay:,.0f}x",
         f"{up_validate:,.1f}", f"{oracle_rate / up_validate:,.0f}x"],
        ["random", f"{random_steps:.1f}", f"{random_rate:,.0f}", f"{up_random:,.1f}", f"{random_rate / up_random:,.0f}x", "-", "-"],
    ]
    title = f"{TASK} episodes/s (instances: {names}; set-up {setup:.2f} s per instance, not counted)"
    print_table(["policy", "steps/episode", "plannerl eval", "UP SequentialSimulator", "ratio", "UP validator", "ratio"], rows,
                args.markdown, title=title, align="right")

    with tempfile.TemporaryDirectory() as folder:
        model_dir = args.model
        if model_dir is None:
            from plannerl.agents.model import build_default_model

            model_dir = str(build_default_model(Path(folder) / "tiny", seed=0))
        model_problems = problems_from_tasks(["burger"], list(range(1, args.model_episodes + 1)))
        rows = []
        for constrained in (False, True):
            single, answers = model_ms_per_answer(model_dir, model_problems, batch_size=1, constrained=constrained)
            batched, _ = model_ms_per_answer(model_dir, model_problems, batch_size=args.model_episodes, constrained=constrained)
            rows.append(["constrained" if constrained else "greedy (24 new tokens)", str(answers), f"{single:.1f}",
                         f"{batched:.1f}", f"{single / batched:.2f}x"])
    print_table(["decoding", "answers", "one episode at a time", f"batched x{args.model_episodes}", "speed-up"], rows, args.markdown,
                title=f"Built-in tiny model, ms per answer ({args.model_episodes} burger episodes, 1 torch thread)", align="right")


if __name__ == "__main__":
    main()
