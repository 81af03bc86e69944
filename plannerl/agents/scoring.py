"""Log-likelihood of candidate answers after a prompt, batched over prompts and candidates.

One function for two users, so they cannot drift apart: constrained decoding
(`plannerl.agents.policies.ModelPolicy`, which answers the valid action the model finds most
likely) and training's choice objective (`plannerl.train`), which optimises the very scores
constrained decoding ranks. torch is imported inside the functions: importing this module is cheap.
"""

from __future__ import annotations

import inspect
import math

LOGITS_PER_PASS = 2**26  # answer tokens x vocabulary per pass: 256 MiB of float32 logits at most
# Padded prompt tokens per pass on a CPU. Measured with the built-in model on double_cheese_burger
# prompts (~107 tokens, 1 thread): per action, passes of 4-16 prompts (440-1,760 tokens) all cost
# ~20.5 ms, 24 prompts 21.9 ms, one pass of 64 prompts 28 ms: the activations of a pass past a few
# thousand tokens leave the CPU's caches. On a GPU one pass holds the whole batch.
CPU_PROMPT_TOKENS_PER_PASS = 1536
# How constrained decoding picks among the valid answers: summed log-probability, greedy
# decoding over them (`greedy_choice`), or the sum without copied numbers (`hybrid_scores`);
# `plannerl eval --choice`, `eval.choice`.
CHOICES = ("sum", "greedy", "hybrid")


def score_answers(model, prompts: list[list[int]], candidates: list[list[list[int]]], pad: int, *,
                  per_token: bool = False, parts_only: bool = False) -> list[list]:
    """Summed log-probability of every candidate after its prompt, for a batch of prompts (no
    gradient); with `per_token`, each candidate's list of token log-probabilities instead, and
    with `parts_only` too only those a greedy walk reads (`greedy_choice`: the tokens where a
    prompt's candidates part), NaN elsewhere, for a fraction of the tree's cost.

    Each prompt runs once and its candidates share its key/value cache (`score_candidates`): a
    state with 40 valid actions costs one prompt pass plus one short pass over their prefix
    tree, not 40 full passes. The prompts are taken shortest first and split into passes, so
    the batch size adapts to the model and the machine: a pass holds at most LOGITS_PER_PASS
    answer tokens x vocabulary (the whole batch for the built-in model, a few dozen answers per
    pass for a 150k-token vocabulary) and, on a CPU, CPU_PROMPT_TOKENS_PER_PASS padded prompt
    tokens; prompts of like length share a pass, so little of it is padding.
    """
    tokens_per_pass = max(1, LOGITS_PER_PASS // model.get_output_embeddings().weight.shape[0])
    on_cpu = next(model.parameters()).device.type == "cpu"
    prompt_tokens_per_pass = CPU_PROMPT_TOKENS_PER_PASS if on_cpu else None
    scores: list[list] = [[0.0] * len(options) for options in candidates]
    group: list[tuple[int, int, int]] = []  # (prompt, first candidate, end)
    size = 0
    for index in sorted(range(len(prompts)), key=lambda i: len(prompts[i])):
        options = candidates[index]
        if group and prompt_tokens_per_pass and (len(group) + 1) * len(prompts[index]) > prompt_tokens_per_pass:
            _score_group(model, prompts, candidates, group, scores, pad, per_token, parts_only)
            group, size = [], 0
        start = 0
        for k, ids in enumerate(options):
            if size and size + len(ids) > tokens_per_pass:
                if k > start:
                    group.append((index, start, k))
                _score_group(model, prompts, candidates, group, scores, pad, per_token, parts_only)
                group, size, start = [], 0, k
            size += len(ids)
        if len(options) > start:
            group.append((index, start, len(options)))
    if group:
        _score_group(model, prompts, candidates, group, scores, pad, per_token, parts_only)
    return scores


def _score_group(model, prompts, candidates, group: list[tuple[int, int, int]], scores: list[list], pad: int,
                 per_token: bool = False, parts_only: bool = False) -> None:
    """Score one group of (prompt, candidate range) in one pass, into `scores`."""
    import torch

    rows = [(index, k) for index, start, end in group for k in range(start, end)]
    with torch.no_grad():
        found = score_candidates(model, [prompts[index] for index, _, _ in group],
                                 [[candidates[index][k] for k in range(start, end)] for index, start, end in group], pad,
                                 per_token=per_token, parts_only=parts_only)
    for (index, k), value in zip(rows, found if per_token else found.tolist()):
        scores[index][k] = value


def score_candidates(model, prompts: list[list[int]], candidates: list[list[list[int]]], pad: int, *, per_token: bool = False,
                     parts_only: bool = False):
    """Summed log-probability of each candidate answer after its prompt, as one flat tensor
    (prompt by prompt, candidates in order); differentiable, so training (`plannerl.train.sft.choice_loss`)
    optimises the very scores constrained decoding ranks. With `per_token`: each candidate's
    list of token log-probabilities instead (floats, in the same order), which the greedy
    choice (`greedy_choice`) reads; `parts_only` runs only the tree nodes whose next-token
    distribution a greedy walk reads, and their ancestors (`_parting_nodes`), leaving NaN at
    the other positions: "Move robot1 to cheese1 at table12" needs nothing after "cheese1".

    Two passes. The prompts run once, left-padded in one batch, keeping only the last
    position's logits (the first answer token's distribution). Then each prompt's candidates
    run as one prefix tree in one row (`score_tree`): the 25 answers of a typical cooking state
    share "Action: Move robot1 to", so the tree holds a third of their tokens, and a
    candidate's final end-of-sequence token is never run (only its probability is read).
    A model whose attention cannot take a custom mask (flash attention) scores each candidate
    on its own copy of the prompt's cache instead (`score_by_copies`): the same numbers, slower.
    """
    if getattr(model.config, "_attn_implementation", "eager") not in ("eager", "sdpa"):
        return score_by_copies(model, prompts, candidates, pad, per_token=per_token, parts_only=parts_only)
    import torch

    out, cache, prompt_mask = run_prompts(model, prompts, pad, keep_last=True)
    first = torch.log_softmax(out.logits[:, -1].float(), dim=-1)
    return score_tree(model, cache, prompt_mask, first, candidates, pad, per_token=per_token, parts_only=parts_only)


def score_tree(model, cache, prompt_mask, first, candidates: list[list[list[int]]], pad: int, *, per_token: bool = False,
               parts_only: bool = False):
    """The candidates' scores given the prompts' cache: every prompt's candidates as one prefix
    tree, run in one row per prompt whose attention mask lets each tree token see its prompt
    and its own ancestors only, at the positions it would have in a candidate on its own.
    `first` holds each prompt's log-probabilities of the first answer token. `per_token`: each
    candidate's token log-probabilities as lists of floats, not their sums (`parts_only`: only
    at the tree's parting nodes, NaN elsewhere)."""
    import torch

    device = prompt_mask.device
    trees = [_prefix_tree(options) for options in candidates]
    if parts_only:
        trees = [_parting_nodes(tree) for tree in trees]
    slots = torch.tensor([i for i, options in enumerate(candidates) for _ in options], device=device)
    heads = torch.tensor([ids[0] for options in candidates for ids in options], device=device)
    total = first[slots, heads]
    nodes = max(len(tree.tokens) for tree in trees)
    flat = [ids for options in candidates for ids in options]
    if nodes == 0:  # every answer is one token long, or (parts_only) all part at the first token
        return _token_lists(total, flat, [], []) if per_token else total
    tokens = torch.tensor([tree.tokens + [pad] * (nodes - len(tree.tokens)) for tree in trees], device=device)
    depth = torch.tensor([tree.depth + [0] * (nodes - len(tree.tokens)) for tree in trees], device=device)
    sees = torch.eye(nodes, dtype=torch.bool, device=device).repeat(len(trees), 1, 1)  # a padding node sees itself
    pairs = [(i, node, ancestor) for i, tree in enumerate(trees) for node, line in enumerate(tree.lines) for ancestor in line]
    sees[tuple(torch.tensor(list(column), device=device) for column in zip(*pairs))] = True
    visible = torch.cat([prompt_mask.bool()[:, None, :].expand(-1, nodes, -1), sees], dim=2)[:, None]
    dtype = next(model.parameters()).dtype
    mask = torch.zeros(visible.shape, dtype=dtype, device=device).masked_fill(~visible, torch.finfo(dtype).min)
    logits = model(input_ids=tokens, attention_mask=mask, position_ids=prompt_mask.sum(1, keepdim=True) + depth,
                   use_cache=True, **{cache_argument(model): cache}).logits
    log_probs = torch.log_softmax(logits.float(), dim=-1)
    per_candidate = [reads for tree in trees for reads in tree.reads]  # in `slots` order
    reads = [(candidate, node, token) for candidate, pairs in enumerate(per_candidate) for node, token in pairs]
    if not reads:
        return _token_lists(total, flat, [], []) if per_token else total
    owner, places, wanted = (torch.tensor(list(column), device=device) for column in zip(*reads))
    values = log_probs[slots[owner], places, wanted]
    if per_token:
        tree_of = [tree for tree in trees for _ in tree.reads]  # in `slots` order
        positions = [tree_of[candidate].depth[node] + 1 for candidate, node, _ in reads]
        return _token_lists(total, flat, list(zip(owner.tolist(), positions)), values.tolist())
    return total.index_add(0, owner, values)


def _token_lists(first, flat: list[list[int]], places: list[tuple[int, int]], values: list[float]) -> list[list[float]]:
    """Per candidate, its token log-probabilities: the first token's from `first`, the others
    from `values` at their (candidate, position) `places`; NaN where none was computed."""
    tokens = [[head] + [math.nan] * (len(ids) - 1) for head, ids in zip(first.tolist(), flat)]
    for (candidate, position), value in zip(places, values):
        tokens[candidate][position] = value
    return tokens


class _PrefixTree:
    """The distinct proper prefixes of a prompt's candidates, one node each: its last token,
    its depth in the answer, its line (itself and its ancestors: what it may attend to); and
    per candidate the (node, next token) pairs whose log-probabilities, with the first
    token's, sum to its score."""

    def __init__(self) -> None:
        self.tokens: list[int] = []
        self.depth: list[int] = []
        self.lines: list[list[int]] = []
        self.reads: list[list[tuple[int, int]]] = []


def _prefix_tree(options: list[list[int]]) -> _PrefixTree:
    tree, index = _PrefixTree(), {}
    for ids in options:
        reads, line = [], []
        for length in range(1, len(ids)):
            prefix = tuple(ids[:length])
            if prefix not in index:
                index[prefix] = len(tree.tokens)
                tree.tokens.append(ids[length - 1])
                tree.depth.append(length - 1)
                tree.lines.append(line + [index[prefix]])
            line = tree.lines[index[prefix]]
            reads.append((index[prefix], ids[length]))
        tree.reads.append(reads)
    return tree


def _parting_nodes(tree: _PrefixTree) -> _PrefixTree:
    """The part of a prefix tree a greedy walk reads: the nodes after which candidates part
    (two or more next tokens) and their ancestors, with the reads made at those nodes. The
    forced tail of an answer, once it is the only candidate left, is never run."""
    following: dict[int, set[int]] = {}
    for reads in tree.reads:
        for node, token in reads:
            following.setdefault(node, set()).add(token)
    keep = sorted({a for node, tokens in following.items() if len(tokens) > 1 for a in tree.lines[node]})
    index = {old: new for new, old in enumerate(keep)}
    part = _PrefixTree()
    part.tokens = [tree.tokens[old] for old in keep]
    part.depth = [tree.depth[old] for old in keep]
    part.lines = [[index[a] for a in tree.lines[old]] for old in keep]
    part.reads = [[(index[node], token) for node, token in reads if node in index and len(following[node]) > 1]
                  for reads in tree.reads]
    return part


def score_by_copies(model, prompts: list[list[int]], candidates: list[list[list[int]]], pad: int, *, per_token: bool = False,
                    parts_only: bool = False):
    """`score_candidates` for any attention: each candidate runs on its own row, on a copy of
    its prompt's key/value cache, all candidates in one short right-padded pass. Every token is
    scored whatever `parts_only` asks (a superset of what a greedy walk reads)."""
    import torch

    out, cache, prompt_mask = run_prompts(model, prompts, pad, keep_last=False)
    device = prompt_mask.device
    slots = torch.tensor([i for i, options in enumerate(candidates) for _ in options], device=device)
    flat = [ids for options in candidates for ids in options]
    longest = max(len(ids) for ids in flat)
    answer_ids = torch.tensor([ids + [pad] * (longest - len(ids)) for ids in flat], device=device)
    answer_mask = torch.tensor([[1] * len(ids) + [0] * (longest - len(ids)) for ids in flat], device=device)
    first = torch.log_softmax(out.logits[:, -1].float(), dim=-1)[slots].gather(1, answer_ids[:, :1])[:, 0]
    cache.batch_select_indices(slots)
    logits = model(input_ids=answer_ids, attention_mask=torch.cat([prompt_mask[slots], answer_mask], dim=1),
                   position_ids=prompt_mask.sum(1)[slots, None] + torch.arange(longest, device=device)[None, :],
                   use_cache=True, **{cache_argument(model): cache}).logits.float()
    rest = torch.log_softmax(logits[:, :-1], dim=-1).gather(2, answer_ids[:, 1:, None])[..., 0]
    if per_token:
        return [[head, *row[:len(ids) - 1]] for head, row, ids in zip(first.tolist(), rest.tolist(), flat)]
    return first + (rest * answer_mask[:, 1:]).sum(1)


def greedy_choice(candidates: list[list[int]], token_scores: list[list[float]]) -> int:
    """The index of the candidate that greedy decoding restricted to the candidates writes:
    token by token, the most likely next token among the continuations of the candidates still
    alive (the first candidate's on a tie).

    Why beside the summed score: a sum charges a candidate for every token, including the ones
    its earlier tokens already decide. "Move robot1 to cheese1 at table12" is the only valid
    answer that starts "Move robot1 to cheese1", yet a model unsure of the table's number after
    it lets another answer win the sum; greedy decoding settles on the item and never weighs
    the forced rest. Measured on expert states of fresh seeds (docs/training.md, session 9): a
    double_cheese_burger model's choice on cheese_sandwich 0.82 -> 0.95 optimal."""
    alive, depth = list(range(len(candidates))), 0
    while len(alive) > 1:
        branches: dict[int, list[int]] = {}
        for k in alive:
            if depth < len(candidates[k]):
                branches.setdefault(candidates[k][depth], []).append(k)
        if not branches:
            break
        alive = max(branches.values(), key=lambda ks: (token_scores[ks[0]][depth], -ks[0]))
        depth += 1
    return alive[0]


def hybrid_scores(candidates: list[list[int]], token_scores: list[list[float]], number_tokens: frozenset[int]) -> list[float]:
    """Each candidate's summed log-probability without its copied numbers: a number token that
    no other candidate alive at that point differs at ("12" in "Move robot1 to cheese1 at
    table12", the only answer moving to cheese1) is left out; every other token counts.

    Why a third rule: the sum and greedy decoding each fail where the other is right. The sum
    charges an answer for the model's doubt about a station number its item already fixes,
    which cost a generalist most of lettuce_tomato_sandwich (0.50 -> 0.00, session 17); greedy
    decoding commits to "Move robot1 to patty1" before it reads " at table", which a
    cooked_burger model gave a log-probability of -6.3 since it expected the patty on a stove,
    and it walked away from the stove it had to clear (SR 0.70 against 1.00 with the sum).
    Words still count here; only forced numbers are skipped (docs/training.md, session 17).
    """
    following: dict[tuple[int, ...], set[int]] = {}  # answer prefix -> the tokens candidates continue it with
    for ids in candidates:
        for depth, token in enumerate(ids):
            following.setdefault(tuple(ids[:depth]), set()).add(token)
    return [sum(score for depth, (token, score) in enumerate(zip(ids, scores))
                if not (token in number_tokens and following[tuple(ids[:depth])] == {token}))
            for ids, scores in zip(candidates, token_scores)]


def run_prompts(model, prompts: list[list[int]], pad: int, *, keep_last: bool):
    """The prompts' forward pass, left-padded in one batch: (output, its cache, the padding mask).
    `keep_last` asks for the last position's logits only, when the model's forward can."""
    prompt_ids, prompt_mask = left_padded(prompts, pad, next(model.parameters()).device)
    options = {"logits_to_keep": 1} if keep_last and "logits_to_keep" in inspect.signature(model.forward).parameters else {}
    out = model(input_ids=prompt_ids, attention_mask=prompt_mask, position_ids=(prompt_mask.cumsum(1) - 1).clamp(min=0),
                use_cache=True, **options)
    return out, getattr(out, cache_argument(model)), prompt_mask


def left_padded(prompts: list[list[int]], pad: int, device):
    """(ids, attention mask) of the prompts in one batch, padded on the left so that every
    prompt ends at the last position, where the next token's distribution is read."""
    import torch

    width = max(len(p) for p in prompts)
    ids = torch.tensor([[pad] * (width - len(p)) + p for p in prompts], device=device)
    mask = torch.tensor([[0] * (width - len(p)) + [1] * len(p) for p in prompts], device=device)
    return ids, mask


def cache_argument(model) -> str:
    """transformers 5 names the cache argument `cache`; 4.x named it `past_key_values`."""
    return "cache" if "cache" in inspect.signature(model.forward).parameters else "past_key_values"
