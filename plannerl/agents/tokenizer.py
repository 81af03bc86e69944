"""The built-in tokenizer: byte-level BPE trained on the cooking domain's own text.

Why byte-level: every string (an action sentence, a PDDL form such as `(pick-up robot1 patty1
table3)`, an object name the training text never showed, like `table57`) encodes to tokens and
decodes back to exactly the same characters. A word-level vocabulary would map an unseen name
to `<unk>`, and the usual `Whitespace` pre-tokenizer splits `pick-up` into three pieces that
decode as `pick - up`.

Why merges across words: the prompts are templated English, so the pre-tokenizer only splits
off each digit and lets BPE merge whole recurring phrases (" is directly on top of ", the
instructions paragraph) into single tokens. On rendered cooking prompts this gives 3.3x fewer
tokens than GPT-2-style word splitting (176 vs 586 per prompt, measured), and training and
evaluation cost scale with tokens. Digits stay separate tokens, so `table17` is `table` + `1` +
`7` and object numbers share embeddings across instances.

Why `merges="facts"`: left free, BPE also merges across the end of one fact and the start of
the next wherever two facts often lie side by side, into tokens such as " cut zero. tomato" or
" cut zero. no board free.\nLast: Move robot", so the model reads one fact through a token it
shares with its neighbour and must learn every pairing apart. "facts" splits before each period
and line break, so a token never spans two sentences (". tomato", " cut zero", ". no board free"):
10% more tokens per prompt on the six recipes' training prompts (66.9 against 60.7).

The tokenizer is saved as an ordinary `tokenizer.json` and loaded with `PreTrainedTokenizerFast`
by `plannerl.agents.model.load_tokenizer_for` (never `AutoTokenizer` on a qwen2 config folder:
it would pick the Qwen tokenizer class for our custom vocabulary).
"""

from __future__ import annotations

import random
from collections.abc import Iterable
from pathlib import Path

from plannerl.domains import DOMAINS_DIR
from plannerl.errors import PlannerlError
from plannerl.planning.planner import load_task
from plannerl.tasks.generate import generate_instance
from plannerl.tasks.render import action_sentence, render_prompt

EOS_TOKEN = "<|endoftext|>"
PAD_TOKEN = "<|pad|>"
DEFAULT_VOCAB_SIZE = 2048
PAPER_TASKS = ("cheese_sandwich", "burger", "cheese_burger", "double_cheese_burger")


def shipped_problem_paths() -> list[Path]:
    """Every problem file shipped in `domains/` (the domain file itself is skipped)."""
    return [p for p in sorted(DOMAINS_DIR.glob("*.pddl")) if "(:domain" in p.read_text()]


def task_strings(task) -> list[str]:
    """The strings a model may have to read or write for one task: every ground action in its
    PDDL form and as a sentence, every fact, and every object name."""
    strings = [action.pddl for action in task.actions]
    strings += ["(" + " ".join(fact) + ")" for fact in task.facts]
    strings += sorted(task.objects)
    strings += [action_sentence(task, index) for index in range(len(task.actions))]
    return strings


def task_prompts(task, *, steps: int = 12, seed: int = 0) -> list[str]:
    """Rendered prompts along a seeded random walk from the initial state: the boilerplate and
    state sentences the model reads most, without any search (cheap on the largest instances)."""
    rng = random.Random(seed)
    state, history, prompts = task.init, [], []
    for _ in range(steps):
        prompts.append(render_prompt(task, state, history=history))
        applicable = task.applicable(state)
        if not applicable:
            break
        history.append(rng.choice(applicable))
        state = task.apply(state, history[-1])
    return prompts


def domain_texts(extra: Iterable[str] | None = None, *, generated_seeds: int = 8) -> list[str]:
    """Text to learn merges from: shipped problems, a few generated instances per paper task,
    their action strings and prompts, plus `extra` (e.g. a dataset's prompts)."""
    tasks = [load_task(None, path) for path in shipped_problem_paths()]
    for name in PAPER_TASKS:
        tasks += [generate_instance(name, seed, best_binding=False).load_task() for seed in range(1, generated_seeds + 1)]
    texts: list[str] = []
    for index, task in enumerate(tasks):
        texts += task_strings(task)
        texts += task_prompts(task, seed=index)
    texts += list(extra or ())
    return texts


MERGES = ("phrases", "facts")  # `builtin.merges`: may a token span two sentences (phrases) or not (facts)


def train_tokenizer(texts: Iterable[str], vocab_size: int = DEFAULT_VOCAB_SIZE, merges: str = "phrases"):
    """A byte-level BPE tokenizer with merges learned from `texts` (deterministic for the same
    texts); `merges="facts"` keeps every token inside one sentence (module docstring)."""
    from tokenizers import Regex, Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    if merges not in MERGES:
        raise PlannerlError(f"builtin.merges = {merges!r}: choose from {', '.join(MERGES)}")
    texts = list(texts)
    if not texts:
        raise PlannerlError("cannot train a tokenizer on no text")
    core = Tokenizer(models.BPE())
    steps = [pre_tokenizers.Digits(individual_digits=True), pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False)]
    if merges == "facts":
        steps.insert(0, pre_tokenizers.Split(Regex(r"[.\n]"), behavior="merged_with_next"))
    core.pre_tokenizer = pre_tokenizers.Sequence(steps)
    core.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=[EOS_TOKEN, PAD_TOKEN],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    core.train_from_iterator(texts, trainer=trainer)
    return PreTrainedTokenizerFast(
        tokenizer_object=core,
        eos_token=EOS_TOKEN,
        pad_token=PAD_TOKEN,
        clean_up_tokenization_spaces=False,  # decoding must give back exactly what was encoded
        model_max_length=1_000_000,
    )


def round_trip_failures(tokenizer, strings: Iterable[str]) -> list[str]:
    """The strings that do not come back unchanged from encode + decode."""
    failures = []
    for text in strings:
        ids = tokenizer(text, add_special_tokens=False)["input_ids"]
        if tokenizer.decode(ids, skip_special_tokens=False) != text:
            failures.append(text)
    return failures
