"""The built-in tokenizer: byte-level BPE trained on the cooking domain's own text.

Why byte-level BPE: every string (an action sentence, a PDDL form such as `(pick-up robot1
patty1 table3)`, an object name the training text never showed, like `table57`) encodes to
tokens and decodes back to exactly the same characters. A word-level vocabulary would map an
unseen name to `<unk>`, and the usual `Whitespace` pre-tokenizer splits `pick-up` into three
pieces that decode as `pick - up`. Training the merges on the domain's text keeps prompts short:
common words and phrases of the renderer become single tokens. Digits are split from letters
by the pre-tokenizer, so `table17` is `table` + `17` and object numbers share embeddings.

The tokenizer is saved as an ordinary `tokenizer.json` and loaded with
`PreTrainedTokenizerFast` (never `AutoTokenizer` on a qwen2 config folder: it would pick the
Qwen tokenizer class for our custom vocabulary).
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

from plannerl.errors import PlannerlError

EOS_TOKEN = "<|endoftext|>"
PAD_TOKEN = "<|pad|>"
DEFAULT_VOCAB_SIZE = 2048
DOMAINS_DIR = Path(__file__).resolve().parent.parent / "domains"
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
    try:
        from plannerl.render import action_sentence
    except ImportError:  # the renderer is built in parallel; PDDL forms still cover every name
        return strings
    strings += [action_sentence(task, index) for index in range(len(task.actions))]
    return strings


def task_prompts(task, oracle=None) -> list[str]:
    """Rendered prompts along the task's canonical plan: the boilerplate the model reads most."""
    try:
        from plannerl.render import render_prompt
    except ImportError:
        return []
    from plannerl.oracle import Oracle

    oracle = oracle or Oracle(task)
    state, prompts = task.init, []
    for action in oracle.canonical_plan():
        prompts.append(render_prompt(task, state))
        state = task.apply(state, action)
    return prompts


def domain_texts(extra: Iterable[str] | None = None, *, generated_seeds: int = 8) -> list[str]:
    """Text to learn merges from: shipped problems, a few generated instances per paper task,
    their action strings and prompts, plus `extra` (e.g. a dataset's prompts)."""
    from plannerl.planner import load_task

    tasks = [load_task(None, path) for path in shipped_problem_paths()]
    try:
        from plannerl.generate import generate_instance
    except ImportError:
        generate_instance = None
    if generate_instance is not None:
        for name in PAPER_TASKS:
            tasks += [generate_instance(name, seed).load_task() for seed in range(1, generated_seeds + 1)]
    texts: list[str] = []
    for task in tasks:
        texts += task_strings(task)
        texts += task_prompts(task)
    texts += list(extra or ())
    return texts


def train_tokenizer(texts: Iterable[str], vocab_size: int = DEFAULT_VOCAB_SIZE):
    """A byte-level BPE tokenizer with merges learned from `texts` (deterministic for the same texts)."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    texts = list(texts)
    if not texts:
        raise PlannerlError("cannot train a tokenizer on no text")
    core = Tokenizer(models.BPE())
    core.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True)
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


def load_tokenizer(path: str | Path):
    """Load a tokenizer saved by `train_tokenizer` (+ `save_pretrained`)."""
    from transformers import PreTrainedTokenizerFast

    path = Path(path)
    if not (path / "tokenizer.json").is_file():
        raise PlannerlError(f"{path}: no tokenizer.json in this folder")
    return PreTrainedTokenizerFast.from_pretrained(str(path), local_files_only=True)


def round_trip_failures(tokenizer, strings: Iterable[str]) -> list[str]:
    """The strings that do not come back unchanged from encode + decode."""
    failures = []
    for text in strings:
        ids = tokenizer(text, add_special_tokens=False)["input_ids"]
        if tokenizer.decode(ids, skip_special_tokens=False) != text:
            failures.append(text)
    return failures
