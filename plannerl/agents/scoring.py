"""Log-likelihood of candidate answers after a prompt, batched over prompts and candidates.

One function for two users, so they cannot drift apart: constrained decoding
(`plannerl.agents.policies.ModelPolicy`, which answers the valid action the model finds most
likely) and training's choice objective (`plannerl.train`), which optimises the very scores
constrained decoding ranks. torch is imported inside the functions: importing this module is cheap.
"""

from __future__ import annotations

import inspect

CANDIDATES_PER_PASS = 256


def score_answers(model, prompts: list[list[int]], candidates: list[list[list[int]]], pad: int) -> list[list[float]]:
    """Summed log-probability of every candidate after its prompt, for a batch of prompts (no gradient).

    Each prompt runs once and its key/value cache is shared by its candidates
    (`score_candidates`): a state with 40 valid actions costs its share of one prompt pass plus
    one short pass, not 40 full passes. Work is split into groups of at most
    CANDIDATES_PER_PASS candidates to bound memory.
    """
    scores: list[list[float]] = [[0.0] * len(options) for options in candidates]
    group: list[tuple[int, int, int]] = []  # (prompt, first candidate, end)
    size = 0
    for index, options in enumerate(candidates):
        for start in range(0, len(options), CANDIDATES_PER_PASS):
            end = min(len(options), start + CANDIDATES_PER_PASS)
            if group and size + end - start > CANDIDATES_PER_PASS:
                _score_group(model, prompts, candidates, group, scores, pad)
                group, size = [], 0
            group.append((index, start, end))
            size += end - start
    if group:
        _score_group(model, prompts, candidates, group, scores, pad)
    return scores


def _score_group(model, prompts, candidates, group: list[tuple[int, int, int]], scores: list[list[float]], pad: int) -> None:
    """Score one group of (prompt, candidate range) in one pass, into `scores`."""
    import torch

    rows = [(index, k) for index, start, end in group for k in range(start, end)]
    with torch.no_grad():
        found = score_candidates(model, [prompts[index] for index, _, _ in group],
                                 [[candidates[index][k] for k in range(start, end)] for index, start, end in group], pad)
    for (index, k), value in zip(rows, found.tolist()):
        scores[index][k] = value


def score_candidates(model, prompts: list[list[int]], candidates: list[list[list[int]]], pad: int):
    """Summed log-probability of each candidate answer after its prompt, as one flat tensor
    (prompt by prompt, candidates in order); differentiable, so training (`plannerl.train.sft.choice_loss`)
    optimises the very scores constrained decoding ranks.

    The prompts run once, left-padded in one batch; each prompt's key/value cache is then
    shared by its candidates (rows of the cache selected per candidate), and all candidates run
    in one short batched pass.
    """
    import torch

    device = next(model.parameters()).device
    # transformers 5 names the cache argument `cache`; 4.x named it `past_key_values`
    cache_name = "cache" if "cache" in inspect.signature(model.forward).parameters else "past_key_values"
    width = max(len(p) for p in prompts)
    prompt_ids = torch.tensor([[pad] * (width - len(p)) + p for p in prompts], device=device)
    prompt_mask = torch.tensor([[0] * (width - len(p)) + [1] * len(p) for p in prompts], device=device)
    slots = torch.tensor([i for i, options in enumerate(candidates) for _ in options], device=device)
    flat = [ids for options in candidates for ids in options]
    longest = max(len(ids) for ids in flat)
    answer_ids = torch.tensor([ids + [pad] * (longest - len(ids)) for ids in flat], device=device)
    answer_mask = torch.tensor([[1] * len(ids) + [0] * (longest - len(ids)) for ids in flat], device=device)
    out = model(input_ids=prompt_ids, attention_mask=prompt_mask, position_ids=(prompt_mask.cumsum(1) - 1).clamp(min=0),
                use_cache=True)
    first = torch.log_softmax(out.logits[:, -1].float(), dim=-1)[slots].gather(1, answer_ids[:, :1])[:, 0]
    cache = getattr(out, cache_name)
    cache.batch_select_indices(slots)
    logits = model(input_ids=answer_ids, attention_mask=torch.cat([prompt_mask[slots], answer_mask], dim=1),
                   position_ids=prompt_mask.sum(1)[slots, None] + torch.arange(longest, device=device)[None, :],
                   use_cache=True, **{cache_name: cache}).logits.float()
    rest = torch.log_softmax(logits[:, :-1], dim=-1).gather(2, answer_ids[:, 1:, None])[..., 0]
    return first + (rest * answer_mask[:, 1:]).sum(1)
