"""`plannerl eval` as one library call: policies x instances played, the report and matrix written.

`run_evaluation` does what the command asks, in the order that fails fastest: the instances'
names, seeds and files are checked (and files read) before any model loads; then the policies
are built, and the episodes played here, or split across the launcher's processes when run
under torchrun / accelerate launch (`plannerl.agents.distributed`), which gives the same report.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from itertools import chain
from pathlib import Path

from plannerl.agents import distributed
from plannerl.agents.episodes import Trace
from plannerl.agents.evaluate import evaluate_policies
from plannerl.agents.metrics import sr_matrix
from plannerl.agents.plots import save_matrix_png
from plannerl.agents.policies import check_choice, check_precision, make_policy, shared_history_len
from plannerl.agents.problems import EvalProblem, iter_problems_from_files, iter_problems_from_tasks
from plannerl.errors import PlannerlError
from plannerl.seeds import parse_seeds


@dataclass
class EvalSpec:
    """What to evaluate, as `plannerl eval` takes it (its options' defaults).

    `policies` are `make_policy` specs; `tasks` are played on `seeds` (a seed spec) or, with
    `base`, on their unrandomised layouts; `problems` are PROBLEM files (their domain beside
    each, or `domain`). The model options (sample ... trust_remote_code) apply to model policies;
    `threads` (torch's CPU threads; None: one) changes their speed, not what is reported."""

    policies: list[str] = field(default_factory=lambda: ["oracle"])
    tasks: list[str] = field(default_factory=list)
    seeds: str = "42:420:42"
    base: bool = False
    problems: list[Path] = field(default_factory=list)
    domain: Path | None = None
    report: Path | None = None
    matrix_png: Path | None = None
    invalid: str = "retry"
    max_steps: int | None = None
    runs: int = 1
    seed: int = 0
    sample: bool = False
    temperature: float = 1.0
    constrained: bool = False
    avoid_revisits: bool = False
    choice: str = "sum"
    precision: str = "fp32"
    batch_size: int = 8
    threads: int | None = None
    max_new_tokens: int = 64
    history_len: int | None = None
    trust_remote_code: bool = False

    def seed_list(self) -> list[int | None]:
        """The instance seeds of every task: [None] (the base layout) with `base`."""
        return [None] if self.base else parse_seeds(self.seeds)

    def config(self, policy_names: list[str], history_len: int) -> dict:
        """The report's `config`: what was asked, as resolved (policy names, history length)."""
        return {"policies": policy_names, "tasks": list(self.tasks), "seeds": None if self.base or not self.tasks else self.seeds,
                "base": self.base, "problems": [str(p) for p in self.problems], "invalid": self.invalid,
                "max_steps": self.max_steps, "runs": self.runs, "seed": self.seed, "sample": self.sample,
                "temperature": self.temperature if self.sample else None, "constrained": self.constrained,
                "avoid_revisits": self.avoid_revisits, "choice": self.choice, "max_new_tokens": self.max_new_tokens,
                "history_len": history_len} | ({"precision": self.precision} if self.precision != "fp32" else {})


@dataclass
class EvalOutcome:
    """A finished evaluation: its episodes in report order, the SR matrix, the files written."""

    results: list
    matrix: dict
    report: Path | None
    matrix_png: Path | None
    skipped: list[str] = field(default_factory=list)


def run_evaluation(spec: EvalSpec, *, trace: Trace | None = None,
                   say: Callable[[str], None] = print) -> EvalOutcome | None:
    """Play every policy on every instance of `spec`, write its report and matrix PNG when asked.

    `say` receives the run's notes (Rich markup): the shard layout of a distributed run, and
    where an interrupted run's finished episodes are. Returns None on the processes of a
    distributed run other than the main one (the main one writes and reports for all)."""
    check_choice(spec.choice, spec.constrained)
    check_precision(spec.precision)
    skipped: list[str] = []  # instances past the planner's state limit, filled as the evaluation reaches them
    problems = _problems(spec, skipped)  # checked now; each optimal search runs when the evaluation reaches it
    model_options = {"sample": spec.sample, "temperature": spec.temperature, "constrained": spec.constrained,
                     "avoid_revisits": spec.avoid_revisits, "choice": spec.choice, "precision": spec.precision,
                     "batch_size": spec.batch_size, "threads": spec.threads, "max_new_tokens": spec.max_new_tokens,
                     "trust_remote_code": spec.trust_remote_code}
    policies = [make_policy(policy, seed=spec.seed, **model_options) for policy in spec.policies]
    history_len = shared_history_len(policies, spec.history_len)
    config = spec.config([p.name for p in policies], history_len)
    trace = trace or Trace()
    options = {"invalid": spec.invalid, "runs": spec.runs, "history_len": history_len, "report": spec.report, "config": config,
               "skipped": skipped}
    if distributed.init_process_group():
        main = distributed.is_main_process()
        if main:
            say(f"sharded evaluation: world {distributed.world_size()}, instance i played by rank i mod {distributed.world_size()}")
        results = distributed.evaluate_sharded(policies, spec.tasks, spec.seed_list() if spec.tasks else [], spec.problems,
                                               domain=spec.domain, max_steps=spec.max_steps, trace=trace if main else Trace(),
                                               **options)
        if not main:
            return None
    else:
        try:
            results = evaluate_policies(policies, problems, trace=trace, **options)
        except KeyboardInterrupt:
            if spec.report is not None:
                say(f"[yellow]interrupted: the episodes finished so far are in {spec.report}[/]")
            raise
    for reason in skipped:
        say(f"[yellow]skipped {reason}: it has no optimal length to score against[/]")
    matrix = sr_matrix(results)
    if spec.matrix_png is not None:
        save_matrix_png(spec.matrix_png, matrix["rows"], matrix["columns"], matrix["sr"])
    return EvalOutcome(results, matrix, spec.report, spec.matrix_png, skipped)


def _problems(spec: EvalSpec, skipped: list[str]) -> Iterator[EvalProblem]:
    """Every instance of `spec`, tasks x seeds first, then the files; bad names, seeds or files
    fail now. Generated instances past the planner's state limit go to `skipped`."""
    if not spec.tasks and not spec.problems:
        raise PlannerlError("nothing to evaluate: give --task TASK (with --seeds) or PROBLEM files")
    if spec.domain is not None and not spec.problems:
        raise PlannerlError("--domain applies to PROBLEM files; none given")
    chosen: list[Iterable[EvalProblem]] = []
    if spec.tasks:
        chosen.append(iter_problems_from_tasks(spec.tasks, spec.seed_list(), max_steps=spec.max_steps, skipped=skipped))
    if spec.problems:
        chosen.append(iter_problems_from_files(spec.problems, domain=spec.domain, max_steps=spec.max_steps))
    return chain(*chosen)
