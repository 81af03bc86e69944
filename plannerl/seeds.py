"""Seed specs: how a user names a set of instances on the command line.

A spec is a comma-separated list of parts; each part is one seed (`7`) or an inclusive range
`START:STOP` or `START:STOP:STEP`. STOP is always *inclusive*, so `42:420:42` is Robotouille's
ten evaluation seeds 42, 84, ..., 420 and `0:999` is a thousand seeds (`0:1000` is 1,001).
One rule for both forms, so a range never silently loses its last seed.

Seeds are non-negative integers; a seed named twice is an error (it would name the same
instance file twice). Order is kept as written.
"""

from __future__ import annotations

from plannerl.errors import PlannerlError

MAX_SEEDS = 10_000_000


def parse_seeds(spec: str) -> list[int]:
    """`"42:420:42"` -> [42, 84, ..., 420]; `"0:3"` -> [0, 1, 2, 3]; `"7"`; `"1,2,5"`; `"1,10:12"`."""
    text = str(spec).strip()
    if not text:
        raise PlannerlError("seed spec is empty: expected e.g. 7, 1,2,5, 0:999 or 42:420:42")
    seeds: list[int] = []
    seen: set[int] = set()
    for part in text.split(","):
        for seed in _parse_part(part.strip(), text):
            if seed in seen:
                raise PlannerlError(f"seed spec {text!r}: seed {seed} appears twice")
            seen.add(seed)
            seeds.append(seed)
            if len(seeds) > MAX_SEEDS:
                raise PlannerlError(f"seed spec {text!r} names more than {MAX_SEEDS} seeds")
    return seeds


def _parse_part(part: str, spec: str) -> range:
    fields = part.split(":")
    if not part or len(fields) > 3:
        raise PlannerlError(f"seed spec {spec!r}: bad part {part!r} (expected N, START:STOP or START:STOP:STEP)")
    numbers = [_parse_int(field.strip(), part, spec) for field in fields]
    if len(numbers) == 1:
        return range(numbers[0], numbers[0] + 1)
    start, stop = numbers[0], numbers[1]
    step = numbers[2] if len(numbers) == 3 else 1
    if step <= 0:
        raise PlannerlError(f"seed spec {spec!r}: step in {part!r} must be positive")
    if stop < start:
        raise PlannerlError(f"seed spec {spec!r}: {part!r} stops before it starts (STOP is inclusive)")
    if (stop - start) // step + 1 > MAX_SEEDS:
        raise PlannerlError(f"seed spec {spec!r} names more than {MAX_SEEDS} seeds")
    return range(start, stop + 1, step)


def _parse_int(field: str, part: str, spec: str) -> int:
    if not (field.isascii() and field.isdigit()):
        raise PlannerlError(f"seed spec {spec!r}: {field!r} in {part!r} is not a non-negative integer")
    return int(field)
