"""Free-text answers: greedy or sampled decoding with a key/value cache, each row stopping at
the end of its answer line.

Why not `model.generate`: an answer is one line (`Action: <sentence>`), and generate can only
stop a row at end-of-sequence or a token budget, so a hub model that goes on after its answer
line costs the whole budget; its per-call setup also weighs on a 3.7M-parameter model. Here
every step runs only the new token of each row over the cache, and a row is done at
end-of-sequence, or at the first line break after a non-empty `Action:` line (what the
evaluator reads: `plannerl.tasks.answers.extract_answer`). The tokens chosen are generate's:
the same greedy argmax, and for sampling the same draw (softmax of logits / temperature, one
`torch.multinomial` over the batch per step), so a seeded run answers the same text.
"""

from __future__ import annotations

from plannerl.tasks.answers import marked_answer


def decode_answers(model, tokenizer, prompts: list[list[int]], *, max_new_tokens: int, sample: bool = False,
                   temperature: float = 1.0) -> list[str]:
    """The answer text of each prompt (token ids), decoded together in one batch."""
    written = decode_answer_ids(model, tokenizer, prompts, max_new_tokens=max_new_tokens, sample=sample,
                                temperature=temperature)
    return [tokenizer.decode(ids, skip_special_tokens=True).strip() for ids in written]


def decode_answer_ids(model, tokenizer, prompts: list[list[int]], *, max_new_tokens: int, sample: bool = False,
                      temperature: float = 1.0) -> list[list[int]]:
    """The answer tokens of each prompt, a row's end-of-sequence token included when it chose
    one (what a trainer needs to score the answer it sampled: `plannerl.envs.trl_rollout`)."""
    import torch

    from plannerl.agents.scoring import cache_argument, run_prompts

    pad, eos = tokenizer.pad_token_id, tokenizer.eos_token_id
    breaks = line_break_tokens(tokenizer)
    out, cache, mask = run_prompts(model, prompts, pad, keep_last=True)
    cache_name = cache_argument(model)
    positions = mask.sum(1, keepdim=True)
    written: list[list[int]] = [[] for _ in prompts]
    running = [True] * len(prompts)
    logits = out.logits[:, -1].float()
    for _ in range(max_new_tokens):
        if sample:
            chosen = torch.multinomial(torch.softmax(logits / temperature, dim=-1), num_samples=1)[:, 0].tolist()
        else:
            chosen = logits.argmax(dim=-1).tolist()
        for row, token in enumerate(chosen):
            if not running[row]:
                chosen[row] = pad  # as generate: a finished row reads pads, never used
            else:
                written[row].append(token)
                if token == eos or (token in breaks and marked_answer(tokenizer.decode(written[row], skip_special_tokens=True))):
                    running[row] = False
        if not any(running):
            break
        mask = torch.cat([mask, mask.new_ones((len(prompts), 1))], dim=1)
        step = model(input_ids=torch.tensor(chosen, device=mask.device)[:, None], attention_mask=mask, position_ids=positions,
                     use_cache=True, **{cache_name: cache})
        cache, positions = getattr(step, cache_name), positions + 1
        logits = step.logits[:, -1].float()
    return written


def line_break_tokens(tokenizer) -> frozenset[int]:
    """The token ids whose text holds a line break (looked up once per tokenizer)."""
    found = getattr(tokenizer, "_plannerl_line_breaks", None)
    if found is None:
        found = frozenset(i for i in range(len(tokenizer)) if "\n" in tokenizer.decode([i]))
        tokenizer._plannerl_line_breaks = found
    return found
