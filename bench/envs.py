"""Speed of the Gymnasium environment beside the raw simulator it wraps (issue #20).

Plays the oracle's canonical plan on the same instances through four layers and prints steps
per second for each, and the ratio to the raw simulator: `Task.apply` on bitmasks (the floor),
`Episode.take` (answer parser, preconditions, bookkeeping), and `PlanningEnv.step` with text
and with discrete actions (the above plus the rendered prompt and the info dict every step).

Run: `python bench/envs.py [--task burger] [--seeds 0:19] [--markdown]`
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tables import print_table  # noqa: E402

from plannerl.agents.episodes import Episode  # noqa: E402
from plannerl.envs import PlanningEnv  # noqa: E402
from plannerl.seeds import parse_seeds  # noqa: E402


def timed(run) -> tuple[int, float]:
    started = time.perf_counter()
    steps = run()
    return steps, time.perf_counter() - started


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--task", default="burger")
    parser.add_argument("--seeds", default="0:19")
    parser.add_argument("--markdown", action="store_true")
    args = parser.parse_args()
    seeds = parse_seeds(args.seeds)
    text_env, discrete_env = PlanningEnv(args.task, args.seeds), PlanningEnv(args.task, args.seeds, action_type="discrete")
    problems = [text_env.problem(seed) for seed in seeds]
    for seed, problem in zip(seeds, problems):  # the discrete env shares the labelled instances
        discrete_env._problems[seed] = problem
    plans = [problem.oracle.canonical_plan() for problem in problems]

    def raw() -> int:
        for problem, plan in zip(problems, plans):
            state = problem.task.init
            for action in plan:
                state = problem.task.apply(state, action)
        return sum(map(len, plans))

    def simulator() -> int:
        for problem, plan in zip(problems, plans):
            episode = Episode(problem, 0, 0, 1)
            for action in plan:
                episode.take(problem.task.actions[action].pddl, "retry")
        return sum(map(len, plans))

    def env_steps(env: PlanningEnv, discrete: bool) -> int:
        for seed, problem, plan in zip(seeds, problems, plans):
            env.reset(options={"instance": seed})
            for action in plan:
                env.step(env.valid_actions().index(action) if discrete else problem.task.actions[action].pddl)
        return sum(map(len, plans))

    layers = [("Task.apply (raw simulator)", raw), ("Episode.take (parser + rules)", simulator),
              ("PlanningEnv.step, text actions", lambda: env_steps(text_env, False)),
              ("PlanningEnv.step, discrete actions", lambda: env_steps(discrete_env, True))]
    for _, run in layers:  # warm every cache first (parser sentence index, render data), so each layer is timed warm
        run()
    measured = [(name, *timed(run)) for name, run in layers]
    floor = measured[0][1] / measured[0][2]
    print_table(["layer", "steps", "seconds", "steps/s", "x slower than raw"],
                [[name, str(steps), f"{seconds:.3f}", f"{steps / seconds:,.0f}", f"{floor / (steps / seconds):.0f}"]
                 for name, steps, seconds in measured], args.markdown)
    return 0


if __name__ == "__main__":
    sys.exit(main())
