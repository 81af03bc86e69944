"""The answer format every agent, target and reward agrees on: one line `Action: <sentence>`.

Why one module: the prefix is what SFT targets end with, what constrained decoding scores,
what GRPO's rewards and the evaluator's parser look for, and what the prompt asks for; if two
of them disagreed the model would be trained on one format and graded on another.
"""

from __future__ import annotations

import re

ANSWER_PREFIX = "Action:"
DEFAULT_HISTORY_LEN = 5   # past actions a prompt shows unless a model or command says otherwise

_MARKER = re.compile(re.escape(ANSWER_PREFIX.rstrip(":")) + r"\s*:", re.IGNORECASE)


def answer_line(sentence: str) -> str:
    """The one-line answer naming `sentence`: what a perfect agent writes."""
    return f"{ANSWER_PREFIX} {sentence}"


def marked_answer(text: str) -> str | None:
    """The first line after the last `Action:` marker, or None when there is no marker (strict:
    rewards give nothing for an answer the format does not announce)."""
    markers = list(_MARKER.finditer(text or ""))
    if not markers:
        return None
    answer = text[markers[-1].end():].strip().split("\n", 1)[0]
    return answer or None


def extract_answer(text: str) -> str:
    """The answer part, leniently: the first non-empty line after the last `Action:`, else the
    last non-empty line (the simulator reads whatever an agent meant)."""
    text = text or ""
    markers = list(_MARKER.finditer(text))
    if markers:
        lines = [line.strip() for line in text[markers[-1].end():].splitlines() if line.strip()]
        return lines[0] if lines else ""
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    return lines[-1] if lines else ""


def count_markers(text: str) -> int:
    """How many `Action:` markers `text` holds (a well-formed answer has exactly one)."""
    return len(_MARKER.findall(text or ""))


def starts_with_marker(text: str) -> bool:
    return _MARKER.match(text or "") is not None
