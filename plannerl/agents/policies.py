"""Policies that play episodes: each answers a batch of observations with text.

Every policy answers in text, the way a language model does, and the evaluator parses that text
like any other answer: the planner's own answers go through the same parser as a model's.

- `OraclePolicy`: the expert, the canonical optimal action of each state (SR 1.0, minimal steps).
- `RandomPolicy`: uniform over the valid actions, seeded per episode.
- `ScriptedPolicy`: fixed answers or a function of the observation, for tests and debugging.
- `ModelPolicy`: any causal LM by local path or hub name; greedy or sampled generation, or
  decoding constrained to the valid actions (the one with the highest log-likelihood), batched
  across episodes.
- `HumanPolicy`: a person types actions (`plannerl play`).
"""

from __future__ import annotations

import random
from collections.abc import Callable, Sequence
from pathlib import Path

from rich.console import Console
from rich.markup import escape
from rich.panel import Panel

from plannerl.agents.decoding import decode_answers
from plannerl.agents.evaluate import Observation, QuitEpisode
from plannerl.agents.model import configure_torch_cpu, load_for_inference, prompt_text
from plannerl.agents.scoring import CHOICES, greedy_choice, hybrid_scores, score_answers
from plannerl.errors import PlannerlError
from plannerl.tasks.answers import answer_line
from plannerl.tasks.render import action_sentence
from plannerl.tasks.styles import PROMPT_STYLES, get_style

# Model weights and activations at answer time: fp32 (the default, what training's evaluation
# uses) or bf16 (an opt-in: about half the cost per pass where the hardware has bf16).
PRECISIONS = ("fp32", "bf16")


def answer_text(task, action: int) -> str:
    """The answer a perfect agent gives for `action`, exactly as SFT targets write it
    (`plannerl.tasks.datasets`): `Action: <sentence>`."""
    return answer_line(action_sentence(task, action))


def answer_texts(task, state: int, actions: list[int], style: str = "full") -> list[str]:
    """`answer_text` of each action as a model trained on prompt `style` writes it (a compact
    model names some actions by what the state holds: `plannerl.tasks.render.compact_action_sentences`)."""
    return [answer_line(sentence) for sentence in get_style(style).action_sentences(task, state, actions)]


class OraclePolicy:
    """Follows the oracle's canonical action (the smallest-index action on a shortest plan)."""

    name = "oracle"
    batch_size = 1

    def act(self, observations: Sequence[Observation]) -> list[str]:
        answers = []
        for obs in observations:
            action = obs.problem.oracle.label(obs.state).canonical_action
            answers.append("" if action is None else answer_text(obs.task, action))
        return answers


class RandomPolicy:
    """Uniform over the valid actions; the same seed gives the same choices in every episode."""

    batch_size = 1

    def __init__(self, seed: int = 0, name: str = "random") -> None:
        self.seed = seed
        self.name = name
        self._rngs: dict[tuple[int, int], random.Random] = {}

    def act(self, observations: Sequence[Observation]) -> list[str]:
        answers = []
        for obs in observations:
            key = (obs.episode, obs.run)
            if obs.step == 0 and not obs.feedback:
                # a string seed is hashed with SHA-512: stable across processes and batch orders
                self._rngs[key] = random.Random(f"{self.seed}|{obs.problem.name}|{obs.problem.seed}|{obs.run}")
            rng = self._rngs[key]
            valid = obs.valid_actions()
            answers.append(answer_text(obs.task, rng.choice(valid)) if valid else "")
        return answers


class ScriptedPolicy:
    """Answers from a script: a list replayed from the start of each episode, or a function.

    A list that runs out answers the empty string (an invalid answer).
    """

    batch_size = 1

    def __init__(self, script: Sequence[str] | Callable[[Observation], str], name: str = "scripted") -> None:
        self.script = script
        self.name = name
        self._position: dict[tuple[int, int], int] = {}

    def act(self, observations: Sequence[Observation]) -> list[str]:
        if callable(self.script):
            return [self.script(obs) for obs in observations]
        answers = []
        for obs in observations:
            key = (obs.episode, obs.run)
            if obs.step == 0 and not obs.feedback:
                self._position[key] = 0
            position = self._position[key]
            self._position[key] = position + 1
            answers.append(self.script[position] if position < len(self.script) else "")
        return answers


class ModelPolicy:
    """A causal LM answering the rendered prompt, formatted exactly as training formats it.

    Greedy by default; `sample=True` samples at `temperature` with a seeded generator per call.
    `constrained=True` skips generation: each valid action's answer text is scored by the
    model's log-likelihood (summed over its tokens, end-of-sequence included) and the best one
    is answered, so every answer is valid and the policy's preference among valid actions is
    what is measured. Observations are answered `batch_size` at a time. `choice="greedy"` picks
    instead the answer greedy decoding restricted to the valid answers writes (token by token,
    `plannerl.agents.scoring.greedy_choice`): the tokens an answer's start already decides no
    longer count against it. `choice="hybrid"` sums like "sum" but leaves out the numbers an
    answer's start already decides (`plannerl.agents.scoring.hybrid_scores`).

    `avoid_revisits=True` (with `constrained`) leaves out the valid actions that lead back to a
    state the episode has already been in, unless every one does. Why: the greedy policy is a
    function of the prompt, so once it steps back to a state it has seen it repeats the loop
    until the step limit (two-state move loops are most failures, docs/evaluation.md); this is
    the visited-state memory the Markov prompt lacks, reported as its own policy setting.

    `threads` pins torch's CPU threads (`configure_torch_cpu`); None keeps what the process
    already set (a training run's `runtime.threads`), or plannerl's default of one thread.

    `precision` "bf16" answers with bfloat16 weights and activations (log-probabilities still
    summed in float32): on a CPU with native bf16 (AVX512-BF16, AMX) or a GPU a forward pass
    costs about half, but scores move by bf16's rounding, so a close choice can flip; it is an
    opt-in whose results are reported as their own (the report's config says "precision").
    """

    def __init__(self, name_or_path: str, *, label: str | None = None, sample: bool = False, temperature: float = 1.0,
                 seed: int = 0, constrained: bool = False, batch_size: int = 8, max_new_tokens: int = 64,
                 trust_remote_code: bool = False, threads: int | None = None, avoid_revisits: bool = False,
                 choice: str = "sum", precision: str = "fp32") -> None:
        if threads is not None:
            if isinstance(threads, bool) or not isinstance(threads, int) or threads < 1:
                raise PlannerlError(f"--threads must be at least 1, got {threads!r}")
            configure_torch_cpu(threads)
        if batch_size < 1:
            raise PlannerlError(f"--batch-size must be at least 1, got {batch_size}")
        if max_new_tokens < 1:
            raise PlannerlError(f"--max-new-tokens must be at least 1, got {max_new_tokens}")
        if sample and temperature <= 0:
            raise PlannerlError(f"--temperature must be positive when sampling, got {temperature}")
        if avoid_revisits and not constrained:
            raise PlannerlError("--avoid-revisits chooses among valid actions: it needs --constrained")
        check_choice(choice, constrained)
        check_precision(precision)
        self.name = label or str(name_or_path)
        self.model, self.tokenizer = load_for_inference(str(name_or_path), trust_remote_code=trust_remote_code)
        self.model.eval()
        if precision == "bf16":
            import torch

            self.model.to(torch.bfloat16)
        self.prompt_style = prompt_style_of(self.model)
        # the history length `plannerl train` recorded (None for other models)
        self.history_len: int | None = getattr(self.model.config, "plannerl_history_len", None)
        self.sample = sample
        self.temperature = temperature
        self.seed = seed
        self.constrained = constrained
        self.avoid_revisits = avoid_revisits
        self.choice = choice
        self.batch_size = batch_size
        self.max_new_tokens = max_new_tokens
        self._calls = 0
        self._answers: dict[str, list[int]] = {}
        self._numbers: frozenset[int] | None = None
        tokenizer = self.tokenizer
        if tokenizer.pad_token_id is None:
            tokenizer.pad_token = tokenizer.eos_token
        if tokenizer.pad_token_id is None:
            raise PlannerlError(f"{name_or_path}: the tokenizer has neither a pad nor an end-of-sequence token")

    def prompt_texts(self, observations: Sequence[Observation]) -> list[str]:
        """The text the model reads for each observation, formatted exactly as its training rows."""
        if self.prompt_style != "full":  # a model trained on compact or todo prompts reads them as plain text
            return [obs.prompt(self.prompt_style) for obs in observations]
        return [prompt_text(self.tokenizer, obs.prompt(), obs.messages()) for obs in observations]

    def act(self, observations: Sequence[Observation]) -> list[str]:
        if not observations:
            return []
        self._calls += 1
        if self.constrained:
            return self._choose(observations)
        return self._generate(self.prompt_texts(observations))

    def _generate(self, prompts: list[str]) -> list[str]:
        import torch

        if self.sample:
            torch.manual_seed(self.seed * 1_000_003 + self._calls)
        ids = self.tokenizer(prompts, add_special_tokens=False)["input_ids"]
        with torch.no_grad():
            return decode_answers(self.model, self.tokenizer, ids, max_new_tokens=self.max_new_tokens, sample=self.sample,
                                  temperature=self.temperature)

    def _choose(self, observations: Sequence[Observation]) -> list[str]:
        """The valid action whose answer text the model finds most likely, per observation."""
        texts = [answer_texts(obs.task, obs.state, self._candidates(obs), self.prompt_style) for obs in observations]
        prompts = self.tokenizer(self.prompt_texts(observations), add_special_tokens=False)["input_ids"]
        return most_likely_answers(self.model, self.tokenizer.pad_token_id, prompts, texts, self._answer_ids, choice=self.choice,
                                   number_tokens=self._number_tokens() if self.choice == "hybrid" else frozenset())

    def _number_tokens(self) -> frozenset[int]:
        """The vocabulary's tokens that read as a number ("12", " 3"): what `hybrid_scores` may skip."""
        if self._numbers is None:
            decode = self.tokenizer.decode
            self._numbers = frozenset(token for token in range(len(self.tokenizer)) if decode([token]).strip().isdigit())
        return self._numbers

    def _candidates(self, obs: Observation) -> list[int]:
        valid = obs.valid_actions()
        if not self.avoid_revisits:
            return valid
        fresh = [a for a in valid if obs.task.apply(obs.state, a) not in obs.visited]
        return fresh or valid

    def _answer_ids(self, text: str) -> list[int]:
        """An answer's tokens, end-of-sequence included; remembered, since the same few hundred
        answers recur at every step of every episode."""
        ids = self._answers.get(text)
        if ids is None:
            ids = self._answers[text] = answer_token_ids(self.tokenizer, text)
        return ids


def answer_token_ids(tokenizer, text: str) -> list[int]:
    """The tokens a model scores for an answer: the text's, then end-of-sequence (when the tokenizer has one)."""
    eos = tokenizer.eos_token_id
    return tokenizer(text, add_special_tokens=False)["input_ids"] + ([eos] if eos is not None else [])


def most_likely_answers(model, pad: int, prompts: list[list[int]], texts: list[list[str]],
                        answer_ids: Callable[[str], list[int]], *, choice: str = "sum",
                        number_tokens: frozenset[int] = frozenset()) -> list[str]:
    """Per prompt, the answer text among `texts` the model finds most likely (the first on a tie;
    "" when there is none): constrained choice, shared by `ModelPolicy` and training rollouts.
    `choice`: "sum" ranks by summed log-probability, "greedy" by greedy decoding over the answers,
    "hybrid" by the sum without the numbers in `number_tokens` an answer's start decides."""
    candidates = [[answer_ids(text) for text in options] for options in texts]
    if choice == "greedy":
        per_token = score_answers(model, prompts, candidates, pad, per_token=True, parts_only=True)
        return [options[greedy_choice(ids, found)] if options else ""
                for options, ids, found in zip(texts, candidates, per_token)]
    if choice == "hybrid":
        per_token = score_answers(model, prompts, candidates, pad, per_token=True)
        scores = [hybrid_scores(ids, found, number_tokens) for ids, found in zip(candidates, per_token)]
    else:
        scores = score_answers(model, prompts, candidates, pad)
    return [options[max(range(len(options)), key=lambda k: (found[k], -k))] if options else ""
            for options, found in zip(texts, scores)]


def shared_history_len(policies: Sequence, requested: int | None, default: int = 5) -> int:
    """The history length to render prompts with: `requested` when given, else the one the
    model policies were trained with (a trained model records it), else `default`. Models
    trained with different lengths cannot share one evaluation without an explicit choice."""
    if requested is not None:
        if requested < 0:
            raise PlannerlError(f"--history-len must be 0 or more, got {requested}")
        return requested
    recorded = sorted({p.history_len for p in policies if getattr(p, "history_len", None) is not None})
    if len(recorded) > 1:
        raise PlannerlError(f"the models were trained with different history lengths ({', '.join(map(str, recorded))}): "
                            "pass --history-len")
    return recorded[0] if recorded else default


def prompt_style_of(model) -> str:
    """The prompt style a model was trained on, recorded in its config by `plannerl train`
    (`plannerl_prompt`); "full" for any other model."""
    style = getattr(model.config, "plannerl_prompt", None) or "full"
    if style not in PROMPT_STYLES:
        raise PlannerlError(f"the model's config.json names an unknown prompt style {style!r} "
                            f"(known: {', '.join(PROMPT_STYLES)})")
    return style


class HumanPolicy:
    """A person plays: the state is shown, an action is typed.

    Accepted: the number of a listed valid action, a unique prefix of a valid action's sentence
    or PDDL form (case-insensitive), or any text at all (it is parsed like a model's answer, so a
    wrong action gets the simulator's precondition feedback). `?` lists the valid actions, `q`
    quits. `read` and `console` are injectable so the policy can be driven by a script.
    """

    name = "human"
    batch_size = 1

    def __init__(self, *, console=None, read: Callable[[str], str] | None = None) -> None:
        self.console = console or Console()
        self.read = read or (lambda prompt: self.console.input(prompt))
        self._shown: tuple[int, int, int] | None = None

    def act(self, observations: Sequence[Observation]) -> list[str]:
        return [self._ask(obs) for obs in observations]

    def _ask(self, obs: Observation) -> str:
        valid = obs.valid_actions()
        sentences = [action_sentence(obs.task, a) for a in valid]
        where = (obs.episode, obs.run, obs.step)
        if where != self._shown:  # the whole state once per step; a retry only adds feedback
            self._shown = where
            self.console.print(Panel(escape(obs.prompt().rstrip()), title=f"step {obs.step + 1}/{obs.problem.step_limit}",
                                     expand=False))
        while True:
            try:
                text = self.read("action (number, prefix, ? for the list, q to quit)> ").strip()
            except EOFError:
                raise QuitEpisode() from None
            if text.lower() in ("q", "quit", "exit"):
                raise QuitEpisode()
            if text in ("?", "help", ""):
                self._list(sentences)
                continue
            if text.isdigit() and not 1 <= int(text) <= len(sentences):
                self.console.print(f"[yellow]no action number {text}: the valid actions are numbered 1 to {len(sentences)}[/]")
                continue
            choice = resolve_typed_action(text, sentences, [obs.task.actions[a].pddl for a in valid])
            if isinstance(choice, list):
                self.console.print(f"[yellow]{len(choice)} valid actions start with {escape(text)!r}:[/]")
                self._list(choice)
                continue
            return choice

    def _list(self, sentences: Sequence[str]) -> None:
        if not sentences:
            self.console.print("[red]no valid action in this state[/]")
        for number, sentence in enumerate(sentences, 1):
            self.console.print(f"  {number:3d}  {escape(sentence)}")


def resolve_typed_action(text: str, sentences: Sequence[str], pddl: Sequence[str]) -> str | list[str]:
    """What a person meant: a listed number, a unique prefix, or the text itself.

    Returns the chosen answer text, or the list of sentences an ambiguous prefix matches.
    """
    if text.isdigit() and 1 <= int(text) <= len(sentences):
        return sentences[int(text) - 1]
    key = " ".join(text.lower().split())
    exact = [s for s, p in zip(sentences, pddl) if key in (s.lower(), p.lower())]
    if exact:
        return exact[0]
    matches = [s for s, p in zip(sentences, pddl) if s.lower().startswith(key) or p.lower().startswith(key)]
    if len(matches) == 1:
        return matches[0]
    if len(matches) > 1:
        return matches
    return text


def check_choice(choice: str, constrained: bool) -> None:
    """A known `--choice`, and one other than the default only with constrained decoding."""
    if choice not in CHOICES:
        raise PlannerlError(f"--choice must be one of {', '.join(CHOICES)}, got {choice!r}")
    if choice != "sum" and not constrained:
        raise PlannerlError(f"--choice {choice} picks among valid actions: it needs --constrained")


def check_precision(precision: str) -> None:
    """A known `--precision`."""
    if precision not in PRECISIONS:
        raise PlannerlError(f"--precision must be one of {', '.join(PRECISIONS)}, got {precision!r}")


def make_policy(spec: str, *, seed: int = 0, **model_options) -> object:
    """`oracle`, `random`, or a model (a local folder or a cached hub name), optionally `LABEL=SPEC`.

    The label names the policy in reports and the row of the cross-task matrix (e.g. what the
    model was trained on).
    """
    label, _, target = spec.partition("=") if "=" in spec else ("", "", spec)
    label, target = label.strip() or None, target.strip()
    if not target:
        raise PlannerlError(f"--policy {spec!r}: empty policy")
    if target == "oracle":
        policy = OraclePolicy()
        policy.name = label or "oracle"
        return policy
    if target == "random":
        return RandomPolicy(seed, name=label or "random")
    if target == "human":
        raise PlannerlError("--policy human is interactive: use `plannerl play TASK`")
    exists = Path(target).expanduser().exists()
    if not exists and (target.startswith((".", "/", "~")) or target.count("/") > 1):
        raise PlannerlError(f"--policy {target}: no such model folder")
    if "/" not in target and not exists and not _in_hub_cache(target):
        raise PlannerlError(f"unknown policy {target!r}: use oracle, random, a model folder or a cached hub name")
    return ModelPolicy(target, label=label, seed=seed, **model_options)


def _in_hub_cache(name: str) -> bool:
    """Whether a bare hub name (e.g. `gpt2`) has a config in the local Hugging Face cache."""
    try:
        from huggingface_hub import try_to_load_from_cache

        return isinstance(try_to_load_from_cache(name, "config.json"), str)
    except Exception:  # a name the hub library refuses is simply not cached
        return False
