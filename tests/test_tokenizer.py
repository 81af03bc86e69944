"""The built-in tokenizer round-trips every string a model reads or writes, exactly."""

from __future__ import annotations

import pytest

from plannerl.agents.tokenizer import domain_texts, round_trip_failures, shipped_problem_paths, task_prompts, task_strings, train_tokenizer
from plannerl.errors import PlannerlError
from plannerl.planning.planner import load_task
from plannerl.tasks.generate import generate_instance


@pytest.fixture(scope="module")
def tokenizer():
    return train_tokenizer(domain_texts())


@pytest.mark.parametrize("problem", shipped_problem_paths(), ids=lambda p: p.stem)
def test_every_action_of_every_shipped_problem_round_trips(tokenizer, problem):
    task = load_task(None, problem)
    strings = task_strings(task)
    assert len(strings) > len(task.actions)
    assert round_trip_failures(tokenizer, strings) == []


def test_hyphenated_schema_stays_one_word_and_decodes_exactly(tokenizer):
    text = "(pick-up robot1 patty1 table3)"
    ids = tokenizer(text, add_special_tokens=False)["input_ids"]
    assert tokenizer.decode(ids) == text
    assert "pick - up" not in tokenizer.decode(ids)


def test_names_never_seen_in_training_still_round_trip(tokenizer):
    unseen = ["Move robot1 from table57 to stove12.", "(stack robot9 onion4 lettuce13 board7)", "Ünïcode  two  spaces\n\ttab"]
    assert round_trip_failures(tokenizer, unseen) == []
    assert tokenizer.unk_token_id is None or all(
        tokenizer.unk_token_id not in tokenizer(s, add_special_tokens=False)["input_ids"] for s in unseen)


def test_same_text_gives_the_same_tokenizer():
    texts = domain_texts()
    assert train_tokenizer(texts).get_vocab() == train_tokenizer(texts).get_vocab()


def test_generated_instances_round_trip(tokenizer):
    generate = pytest.importorskip("plannerl.tasks.generate")
    for name in ("cheese_sandwich", "double_cheese_burger"):
        for seed in (42, 420, 1234):
            task = generate.generate_instance(name, seed, best_binding=False).load_task()
            assert round_trip_failures(tokenizer, task_strings(task)) == []


def _spans_two_sentences(token: str) -> bool:
    """Whether a decoded token holds a sentence end followed by more text (". tomato" is one
    sentence's start; " cut zero. tomato" spans two)."""
    inner = token[1:]
    return any(mark in inner for mark in ".\n")


def test_fact_merges_keep_every_token_inside_one_sentence():
    """With `merges="facts"` no token spans a period or line break, on the very prompts whose
    phrase merges do span them (" cut zero. tomato"); every string still round-trips."""
    texts = domain_texts()
    for name in ("lettuce_tomato_sandwich", "cooked_burger"):
        texts += task_prompts(generate_instance(name, 7).load_task(), steps=20)
    phrases, facts = train_tokenizer(texts), train_tokenizer(texts, merges="facts")
    spanning = [t for t in map(phrases.decode, range(len(phrases))) if _spans_two_sentences(t)]
    assert any(t.startswith(" cut") or " free." in t or " cooked." in t for t in spanning)
    assert [t for t in map(facts.decode, range(len(facts))) if _spans_two_sentences(t)] == []
    assert round_trip_failures(facts, texts[:3000]) == []
    with pytest.raises(PlannerlError, match="builtin.merges"):
        train_tokenizer(texts, merges="words")
