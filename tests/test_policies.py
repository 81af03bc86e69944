"""Policies: a real tiny untrained model end to end, the human policy driven by typed lines."""

from __future__ import annotations

import io
import json
from pathlib import Path

import pytest
from conftest import revisits, run_cli
from rich.console import Console

from plannerl.agents.evaluate import MAX_TRIES, Observation, metrics, play, problems_from_files
from plannerl.agents.policies import (
    HumanPolicy,
    ModelPolicy,
    OraclePolicy,
    RandomPolicy,
    answer_text,
    answer_texts,
    make_policy,
    resolve_typed_action,
)
from plannerl.errors import PlannerlError

DOMAINS = Path(__file__).resolve().parent.parent / "domains"


@pytest.fixture(scope="module")
def burger():
    return problems_from_files([DOMAINS / "burger.pddl"])[0]


@pytest.fixture(scope="module")
def problems():
    return problems_from_files([DOMAINS / "burger.pddl", DOMAINS / "cheese_sandwich.pddl"])


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory):
    from plannerl.agents.model import build_default_model

    return build_default_model(tmp_path_factory.mktemp("eval") / "model", size="micro", seed=0)


# --- the tiny untrained model ---------------------------------------------------------------------


def test_untrained_model_garbage_counts_as_invalid_answers(model_dir, problems):
    policy = ModelPolicy(str(model_dir), batch_size=2, max_new_tokens=12)
    results = play(problems, policy, invalid="retry")
    assert [r.problem.name for r in results] == [p.name for p in problems]
    for result in results:
        assert result.answers >= 1
        assert result.invalid_answers == sum(t.kind in ("unparseable", "not_applicable") for t in result.turns)
        if not result.success:
            assert result.end in ("invalid_tries", "step_limit")
        for turn in result.turns:
            assert isinstance(turn.answer, str)
    m = metrics(results)
    assert m["invalid_answers"] > 0  # an untrained model writes garbage ...
    assert m["sr"]["mean"] == 0.0  # ... and never finishes


def test_one_token_answers_and_stop_mode(model_dir, burger):
    policy = ModelPolicy(str(model_dir), max_new_tokens=1)
    [result] = play([burger], policy, invalid="stop")
    assert result.end == "invalid_answer" and result.answers == 1 and result.invalid_answers == 1


def test_constrained_decoding_only_answers_valid_actions(model_dir, problems):
    policy = ModelPolicy(str(model_dir), constrained=True, batch_size=3)
    results = play(problems[:2], policy)
    for result in results:
        assert result.invalid_answers == 0
        assert result.steps == result.answers
        assert result.success or result.steps == result.problem.step_limit


def test_avoid_revisits_steps_back_only_when_every_action_does(model_dir, problems):
    [plain] = play(problems[:1], ModelPolicy(str(model_dir), constrained=True))
    plain_steps = revisits(plain.problem.task, [t.action for t in plain.turns])
    assert any(back for back, _ in plain_steps)  # the untrained model loops: the option has work to do
    policy = ModelPolicy(str(model_dir), constrained=True, avoid_revisits=True)
    [guarded] = play(problems[:1], policy)
    assert guarded.invalid_answers == 0
    assert all(every for back, every in revisits(guarded.problem.task, [t.action for t in guarded.turns]) if back)
    # until its first step the model's own choice is kept: the guard changes nothing else
    first = next(i for i, (back, _) in enumerate(plain_steps) if back)
    assert [t.action for t in guarded.turns[:first]] == [t.action for t in plain.turns[:first]]


def full_sequence_choice(policy, problem) -> str:
    """The most likely valid answer in the initial state, each candidate scored in its own full pass."""
    import torch

    from plannerl.agents.model import prompt_text

    obs = Observation(problem, problem.task.init, 0, [], [], 0, 0)
    tokenizer, model = policy.tokenizer, policy.model
    prompt_ids = tokenizer(prompt_text(tokenizer, obs.prompt(), obs.messages()), add_special_tokens=False)["input_ids"]
    best, best_score = None, None
    for action in obs.valid_actions():
        ids = tokenizer(answer_text(problem.task, action), add_special_tokens=False)["input_ids"] + [tokenizer.eos_token_id]
        with torch.no_grad():
            logits = model(input_ids=torch.tensor([prompt_ids + ids])).logits[0].float()
        logprobs = torch.log_softmax(logits, dim=-1)
        score = sum(float(logprobs[len(prompt_ids) - 1 + k, token]) for k, token in enumerate(ids))
        if best_score is None or score > best_score + 1e-4:
            best, best_score = action, score
    return problem.task.actions[best].pddl


def on_backend(policy: ModelPolicy, backend: str) -> ModelPolicy:
    """The policy on plannerl's own forward pass (what it loads a built-in model with) or on
    transformers' (what training runs): the scorer must be exact on both."""
    from plannerl.agents.model import load_model

    if backend == "transformers":
        policy.model, policy.tokenizer = load_model(policy.name)
    return policy


@pytest.mark.parametrize("tokens_per_pass", [None, 10])
def test_constrained_choice_is_the_most_likely_valid_answer(model_dir, problems, tokens_per_pass, monkeypatch):
    import plannerl.agents.scoring

    policy = ModelPolicy(str(model_dir), constrained=True, batch_size=len(problems))
    if tokens_per_pass is not None:  # a prompt's candidates split over several passes
        vocabulary = policy.model.get_output_embeddings().weight.shape[0]
        monkeypatch.setattr(plannerl.agents.scoring, "LOGITS_PER_PASS", tokens_per_pass * vocabulary)
    results = play(problems, policy)
    for problem, result in zip(problems, results):
        assert result.turns[0].action == full_sequence_choice(policy, problem)


def oracle_state_inputs(policy, problems) -> tuple[list, list]:
    """(prompt tokens, candidate answer tokens) of every state the oracle's episodes visit."""

    class Recorder(OraclePolicy):
        seen: list = []

        def act(self, observations):
            self.seen.extend(observations)
            return super().act(observations)

    recorder = Recorder()
    play(problems, recorder)
    prompts = policy.tokenizer(policy.prompt_texts(recorder.seen), add_special_tokens=False)["input_ids"]
    candidates = [[policy._answer_ids(text) for text in answer_texts(o.task, o.state, o.valid_actions(), policy.prompt_style)]
                  for o in recorder.seen]
    return prompts, candidates


def test_passes_split_by_prompt_tokens_give_each_prompt_its_own_scores(model_dir, problems, monkeypatch):
    """Prompts of many lengths, taken shortest first into passes of a bounded number of padded
    tokens: every prompt still gets its own candidates' scores, as in one pass of the whole batch."""
    import plannerl.agents.scoring
    from plannerl.agents.scoring import score_answers

    policy = ModelPolicy(str(model_dir), constrained=True)
    prompts, candidates = oracle_state_inputs(policy, problems)
    assert len({len(p) for p in prompts}) > 3  # lengths differ: the order of the passes is not the batch's
    pad = policy.tokenizer.pad_token_id
    monkeypatch.setattr(plannerl.agents.scoring, "CPU_PROMPT_TOKENS_PER_PASS", 10**9)
    whole = score_answers(policy.model, prompts, candidates, pad)
    for budget in (1, 3 * max(map(len, prompts))):  # one prompt per pass; a few per pass
        monkeypatch.setattr(plannerl.agents.scoring, "CPU_PROMPT_TOKENS_PER_PASS", budget)
        split = score_answers(policy.model, prompts, candidates, pad)
        assert [len(s) for s in split] == [len(c) for c in candidates]
        assert max(abs(a - b) for x, y in zip(whole, split) for a, b in zip(x, y)) < 1e-4


@pytest.mark.parametrize("backend", ["native", "transformers"])
@pytest.mark.parametrize("attention", ["sdpa", "eager"])
def test_prefix_tree_scores_equal_each_candidate_scored_alone(model_dir, problems, attention, backend):
    """The tree pass (one row per prompt, a mask per candidate's line) gives every candidate the
    log-probability a pass over prompt + that candidate alone gives, gradients included, for
    prompts of different lengths in one batch; so does the cache-copy fallback."""
    import torch

    from plannerl.agents.scoring import score_by_copies, score_candidates

    policy = on_backend(ModelPolicy(str(model_dir), constrained=True), backend)
    policy.model.config._attn_implementation = attention
    tokenizer, model = policy.tokenizer, policy.model
    observations = [Observation(problem, problem.task.init, 0, [], [], 0, 0) for problem in problems]
    prompts = tokenizer(policy.prompt_texts(observations), add_special_tokens=False)["input_ids"]
    assert len({len(p) for p in prompts}) > 1  # left padding is exercised
    candidates = [[policy._answer_ids(answer_text(obs.task, a)) for a in obs.valid_actions()] for obs in observations]
    alone = []
    with torch.no_grad():
        for prompt, options in zip(prompts, candidates):
            for ids in options:
                logprobs = torch.log_softmax(model(input_ids=torch.tensor([prompt + ids])).logits[0].float(), dim=-1)
                alone.append(sum(float(logprobs[len(prompt) - 1 + k, token]) for k, token in enumerate(ids)))
    tree = score_candidates(model, prompts, candidates, tokenizer.pad_token_id)
    assert tree.requires_grad
    tree.sum().backward()
    assert model.get_input_embeddings().weight.grad.abs().sum() > 0
    model.zero_grad()
    with torch.no_grad():
        copies = score_by_copies(model, prompts, candidates, tokenizer.pad_token_id)
    assert torch.allclose(tree.detach(), torch.tensor(alone), atol=1e-4)
    assert torch.allclose(copies, torch.tensor(alone), atol=1e-4)


@pytest.mark.parametrize("backend", ["native", "transformers"])
@pytest.mark.parametrize("attention", ["sdpa", "eager"])
def test_per_token_scores_are_each_token_of_a_candidate_scored_alone(model_dir, problems, attention, backend):
    """`per_token` gives, per candidate, the log-probability of each of its tokens that a pass
    over prompt + that candidate alone gives (tree and cache copies alike), summing to the
    summed score."""
    import torch

    from plannerl.agents.scoring import score_answers, score_by_copies

    policy = on_backend(ModelPolicy(str(model_dir), constrained=True), backend)
    policy.model.config._attn_implementation = attention
    tokenizer, model = policy.tokenizer, policy.model
    observations = [Observation(problem, problem.task.init, 0, [], [], 0, 0) for problem in problems]
    prompts = tokenizer(policy.prompt_texts(observations), add_special_tokens=False)["input_ids"]
    candidates = [[policy._answer_ids(answer_text(obs.task, a)) for a in obs.valid_actions()] for obs in observations]
    pad = tokenizer.pad_token_id
    per_token = score_answers(model, prompts, candidates, pad, per_token=True)
    summed = score_answers(model, prompts, candidates, pad)
    with torch.no_grad():
        copies = score_by_copies(model, prompts, candidates, pad, per_token=True)
    flat = [values for options in per_token for values in options]
    assert [len(v) for v in flat] == [len(ids) for options in candidates for ids in options]
    with torch.no_grad():
        alone = []
        for prompt, options in zip(prompts, candidates):
            for ids in options:
                logprobs = torch.log_softmax(model(input_ids=torch.tensor([prompt + ids])).logits[0].float(), dim=-1)
                alone.append([float(logprobs[len(prompt) - 1 + k, token]) for k, token in enumerate(ids)])
    assert max(abs(a - b) for x, y in zip(flat, alone) for a, b in zip(x, y, strict=True)) < 1e-4
    assert max(abs(a - b) for x, y in zip(copies, alone) for a, b in zip(x, y, strict=True)) < 1e-4
    assert max(abs(sum(v) - s) for x, y in zip(per_token, summed) for v, s in zip(x, y)) < 1e-4


def test_greedy_choice_follows_the_most_likely_token_where_answers_part():
    """The sum would pick [1, 2, 9] (-1.2 against -1.5); greedy takes token 2 over token 3 at
    the first fork and then 9 over 8: the forced tail of [1, 3, 7] never counts against it, and
    on a tie the first candidate wins."""
    from plannerl.agents.scoring import greedy_choice

    candidates = [[1, 2, 8], [1, 2, 9], [1, 3, 7]]
    scores = [[-0.1, -1.0, -2.0], [-0.1, -1.0, -0.1], [-0.1, -0.5, -0.9]]
    assert greedy_choice(candidates, scores) == 2
    scores[2][1] = -1.5
    assert greedy_choice(candidates, scores) == 1
    assert greedy_choice([[4, 5], [4, 6]], [[-0.2, -0.7], [-0.2, -0.7]]) == 0
    assert greedy_choice([[4]], [[-3.0]]) == 0


def test_hybrid_scores_leave_out_only_the_numbers_an_answers_start_decides():
    """Token 7 is a number. In [1, 2, 7] it is forced (the only answer after [1, 2]) and skipped;
    in [1, 3, 7] / [1, 3, 8] it tells two answers apart and counts; words (2, 3) always count,
    forced or not, so the hybrid ranks [1, 2, 7] first where the sum ranks [1, 3, 8] first."""
    from plannerl.agents.scoring import hybrid_scores

    candidates = [[1, 2, 7], [1, 3, 7], [1, 3, 8]]
    scores = [[-0.5, -0.2, -3.0], [-0.5, -1.0, -0.4], [-0.5, -1.0, -0.3]]
    hybrid = hybrid_scores(candidates, scores, frozenset({7, 8}))
    assert hybrid == pytest.approx([-0.7, -1.9, -1.8])
    assert max(range(3), key=lambda k: sum(scores[k])) == 2 and max(range(3), key=lambda k: hybrid[k]) == 0
    assert hybrid_scores(candidates, scores, frozenset()) == pytest.approx([sum(x) for x in scores])


def test_hybrid_constrained_choice_on_a_real_model(model_dir, problems):
    """Played with `choice="hybrid"`, each first answer maximises the summed log-probability
    less the number tokens no other valid answer differs at, computed here from the summed
    scores of the answers cut before and after each such number."""
    from plannerl.agents.scoring import score_answers

    policy = ModelPolicy(str(model_dir), constrained=True, choice="hybrid", batch_size=len(problems))
    numbers = policy._number_tokens()
    assert policy.tokenizer("12", add_special_tokens=False)["input_ids"][0] in numbers
    results = play(problems, policy)
    for problem, result in zip(problems, results):
        observation = Observation(problem, problem.task.init, 0, [], [], 0, 0)
        prompt = policy.tokenizer(policy.prompt_texts([observation]), add_special_tokens=False)["input_ids"]
        actions = observation.valid_actions()
        options = [policy._answer_ids(answer_text(problem.task, a)) for a in actions]
        [per_token] = score_answers(policy.model, prompt, [options], policy.tokenizer.pad_token_id, per_token=True)
        best = max(range(len(options)), key=lambda k: (sum(
            x for depth, (token, x) in enumerate(zip(options[k], per_token[k]))
            if not (token in numbers and [o[depth] for o in options if o[:depth] == options[k][:depth]] == [token]
                    * sum(1 for o in options if o[:depth] == options[k][:depth]))), -k))
        assert result.turns[0].action == problem.task.actions[actions[best]].pddl


def test_greedy_walk_on_the_parting_nodes_only_chooses_as_on_the_whole_tree(model_dir, problems):
    """`parts_only` runs only the nodes where answers part (and their ancestors): the greedy
    choice on every state of two oracle episodes is the one made on the full per-token scores,
    the values it reads are equal, and the forced tails are left unscored (NaN)."""
    import math

    from plannerl.agents.scoring import greedy_choice, score_answers

    policy = ModelPolicy(str(model_dir), constrained=True)
    prompts, candidates = oracle_state_inputs(policy, problems)
    pad = policy.tokenizer.pad_token_id
    whole = score_answers(policy.model, prompts, candidates, pad, per_token=True)
    parts = score_answers(policy.model, prompts, candidates, pad, per_token=True, parts_only=True)
    unscored = 0
    for ids, full, part in zip(candidates, whole, parts):
        assert greedy_choice(ids, part) == greedy_choice(ids, full)
        for a, b in zip(full, part):
            for x, y in zip(a, b, strict=True):
                unscored += math.isnan(y)
                assert math.isnan(y) or abs(x - y) < 1e-4
    assert unscored > sum(len(ids) for options in candidates for ids in options) / 2  # most tokens are forced tails


def test_greedy_constrained_choice_is_greedy_decoding_over_the_valid_answers(model_dir, problems):
    """Played with `choice="greedy"`, each answer is the valid answer a token-by-token walk
    writes, where the walk's next-token log-probabilities come from full forward passes."""
    import torch

    policy = ModelPolicy(str(model_dir), constrained=True, choice="greedy", batch_size=len(problems))
    results = play(problems, policy)
    for problem, result in zip(problems, results):
        observation = Observation(problem, problem.task.init, 0, [], [], 0, 0)
        prompt = policy.tokenizer(policy.prompt_texts([observation]), add_special_tokens=False)["input_ids"][0]
        options = {problem.task.actions[a].pddl: policy._answer_ids(answer_text(problem.task, a))
                   for a in observation.valid_actions()}
        written: list[int] = []
        while len([a for a, ids in options.items() if ids[:len(written)] == written]) > 1:
            alive = [ids for ids in options.values() if ids[:len(written)] == written and len(ids) > len(written)]
            with torch.no_grad():
                logits = policy.model(input_ids=torch.tensor([prompt + written])).logits[0, -1].float()
            written.append(max(sorted({ids[len(written)] for ids in alive}), key=lambda t: float(logits[t])))
        [chosen] = [a for a, ids in options.items() if ids[:len(written)] == written]
        assert result.turns[0].action == chosen and result.invalid_answers == 0
    with pytest.raises(PlannerlError, match="--choice greedy .* needs --constrained"):
        ModelPolicy(str(model_dir), choice="greedy")
    with pytest.raises(PlannerlError, match="--choice must be one of sum, greedy, hybrid"):
        ModelPolicy(str(model_dir), constrained=True, choice="best")


def test_model_policy_threads_come_from_the_caller_not_a_hard_coded_one(model_dir):
    """`threads` pins torch's threads; without it a policy (and the model load under it) keeps
    what the process configured, e.g. a training run's runtime.threads."""
    import torch

    from plannerl.agents.model import DEFAULT_THREADS, configure_torch_cpu

    try:
        ModelPolicy(str(model_dir), threads=2)
        assert torch.get_num_threads() == 2
        configure_torch_cpu(3)
        ModelPolicy(str(model_dir))
        assert torch.get_num_threads() == 3
    finally:
        configure_torch_cpu(DEFAULT_THREADS)


def test_sampling_is_seeded(model_dir, burger):
    answers = []
    for seed in (1, 1, 2):
        policy = ModelPolicy(str(model_dir), sample=True, seed=seed, max_new_tokens=8)
        [result] = play([burger], policy)
        answers.append([t.answer for t in result.turns])
    assert answers[0] == answers[1]
    assert answers[0] != answers[2]


def test_model_policy_bad_options(model_dir):
    with pytest.raises(PlannerlError, match="--batch-size"):
        ModelPolicy(str(model_dir), batch_size=0)
    with pytest.raises(PlannerlError, match="--temperature"):
        ModelPolicy(str(model_dir), sample=True, temperature=0)
    with pytest.raises(PlannerlError, match="--avoid-revisits .* needs --constrained"):
        ModelPolicy(str(model_dir), avoid_revisits=True)
    with pytest.raises(PlannerlError, match="--threads must be at least 1, got 0"):
        ModelPolicy(str(model_dir), threads=0)


def test_eval_threads_pin_torch_and_leave_the_report_alone(model_dir, tmp_path, capsys):
    import torch

    from plannerl.agents.model import configure_torch_cpu

    burger = str(DOMAINS / "burger.pddl")
    try:
        for threads in (1, 2):
            code, _, err = run_cli(["eval", burger, "--policy", str(model_dir), "--constrained", "--threads", threads,
                                    "--report", tmp_path / f"{threads}.json", "-q"], capsys)
            assert code == 0, err
            assert torch.get_num_threads() == threads
    finally:
        configure_torch_cpu(1)
    one, two = (json.loads((tmp_path / f"{n}.json").read_text()) for n in (1, 2))
    assert one["config"] == two["config"]
    code, _, err = run_cli(["eval", burger, "--policy", str(model_dir), "--threads", "0", "-q"], capsys)
    assert code != 0 and err.strip().splitlines()[-1].endswith("--threads must be at least 1, got 0")


def test_cli_eval_with_a_model_folder(model_dir, tmp_path, capsys):
    report = tmp_path / "r.json"
    code, out, err = run_cli(["eval", "--policy", f"untrained={model_dir}", "--policy", "oracle", DOMAINS / "burger.pddl",
                              "--max-new-tokens", "6", "--report", report, "--quiet"], capsys)
    assert code == 0, err
    data = json.loads(report.read_text())
    assert data["matrix"]["rows"] == ["untrained", "oracle"]
    assert data["matrix"]["sr"] == [[0.0], [1.0]]
    assert data["config"]["avoid_revisits"] is False


def test_cli_eval_avoid_revisits(model_dir, tmp_path, capsys):
    code, out, err = run_cli(["eval", "--policy", str(model_dir), DOMAINS / "burger.pddl", "--avoid-revisits", "--quiet"], capsys)
    assert code != 0 and "--avoid-revisits" in err + out and "Traceback" not in err + out
    report = tmp_path / "r.json"
    code, out, err = run_cli(["eval", "--policy", str(model_dir), DOMAINS / "burger.pddl", "--constrained", "--avoid-revisits",
                              "--report", report, "--quiet"], capsys)
    assert code == 0, err
    data = json.loads(report.read_text())
    assert data["config"]["avoid_revisits"] is True and data["metrics"]["invalid_answers"] == 0


def test_cli_eval_choice_greedy(model_dir, tmp_path, capsys):
    code, out, err = run_cli(["eval", "--policy", str(model_dir), DOMAINS / "burger.pddl", "--choice", "greedy", "--quiet"], capsys)
    assert code == 2 and "--choice greedy" in err + out and "Traceback" not in err + out
    report = tmp_path / "r.json"
    code, out, err = run_cli(["eval", "--policy", str(model_dir), DOMAINS / "burger.pddl", "--constrained", "--choice", "greedy",
                              "--report", report, "--quiet"], capsys)
    assert code == 0, err
    data = json.loads(report.read_text())
    assert data["config"]["choice"] == "greedy" and data["metrics"]["invalid_answers"] == 0


# --- policy specs -----------------------------------------------------------------------------------


def test_make_policy_specs_and_errors(tmp_path):
    assert isinstance(make_policy("oracle"), OraclePolicy)
    assert make_policy("trained-on-burger=oracle").name == "trained-on-burger"
    random_policy = make_policy("random", seed=7)
    assert isinstance(random_policy, RandomPolicy) and random_policy.seed == 7
    with pytest.raises(PlannerlError, match="unknown policy 'orcale'"):
        make_policy("orcale")
    with pytest.raises(PlannerlError, match="no such model folder"):
        make_policy(str(tmp_path / "missing" / "model"))
    with pytest.raises(PlannerlError, match="plannerl play"):
        make_policy("human")
    (tmp_path / "notamodel").mkdir()
    with pytest.raises(PlannerlError, match="config.json"):
        make_policy(str(tmp_path / "notamodel"))


# --- the human policy ----------------------------------------------------------------------------------


def typed(lines):
    feed = iter(lines)

    def read(prompt):
        try:
            return next(feed)
        except StopIteration:
            raise EOFError from None

    return read


def test_resolve_typed_action():
    sentences = ["Move robot1 from table1 to table2", "Move robot1 from table1 to table3", "Pick up cheese1 from table1 using robot1"]
    pddl = ["(move robot1 table1 table2)", "(move robot1 table1 table3)", "(pick-up robot1 cheese1 table1)"]
    assert resolve_typed_action("2", sentences, pddl) == sentences[1]
    assert resolve_typed_action("pick", sentences, pddl) == sentences[2]
    assert resolve_typed_action("(pick-up", sentences, pddl) == sentences[2]
    assert resolve_typed_action("(MOVE  robot1 table1 table3)", sentences, pddl) == sentences[1]
    assert resolve_typed_action("move", sentences, pddl) == sentences[:2]
    assert resolve_typed_action("9", sentences, pddl) == "9"  # not a listed number: parsed as text
    assert resolve_typed_action("dance", sentences, pddl) == "dance"


def test_human_plays_to_the_goal_by_numbers(burger):
    task = burger.task
    numbers, state = [], task.init
    for action in burger.oracle.canonical_plan():
        numbers.append(str(task.applicable(state).index(action) + 1))
        state = task.apply(state, action)
    out = io.StringIO()
    policy = HumanPolicy(console=Console(file=out, width=200), read=typed(["?", *numbers]))
    [result] = play([burger], policy)
    assert result.success and result.optimal_success and result.invalid_answers == 0
    text = out.getvalue()
    assert "step 1/12" in text and "  1  " in text  # the state was shown and ? listed the actions


def test_human_ambiguous_prefix_asks_again_and_bad_actions_get_feedback(burger):
    task = burger.task
    out = io.StringIO()
    inapplicable = next(a for a in range(len(task.actions)) if not task.is_applicable(task.init, a))
    lines = ["mov", "99", task.actions[inapplicable].pddl, "q"]
    [result] = play([burger], HumanPolicy(console=Console(file=out, width=200), read=typed(lines)))
    assert result.end == "quit" and not result.success
    assert [t.kind for t in result.turns] == ["not_applicable"]
    assert "valid actions start with" in out.getvalue() and "no action number 99" in out.getvalue()
    assert result.turns[0].feedback and "unmet preconditions" in result.turns[0].feedback


def test_human_end_of_input_quits(burger):
    [result] = play([burger], HumanPolicy(console=Console(file=io.StringIO()), read=typed([])))
    assert result.end == "quit" and result.answers == 0


def test_human_five_bad_tries_end_the_episode(burger):
    [result] = play([burger], HumanPolicy(console=Console(file=io.StringIO()), read=typed(["dance"] * MAX_TRIES)))
    assert result.end == "invalid_tries" and result.invalid_answers == MAX_TRIES


@pytest.mark.parametrize("sample", [False, True])
def test_line_decoding_chooses_generates_tokens_and_stops_at_the_answer_line(model_dir, problems, sample):
    """Free-text answers pick exactly the tokens transformers' `model.generate` picks (greedy
    argmax; the same seeded draw when sampling) and end at the first line break after a
    non-empty `Action:` line, where generate would run on to its token budget; on plannerl's
    own forward pass (the policy's) and on transformers' model alike."""
    import torch

    from plannerl.agents.decoding import decode_answers
    from plannerl.agents.model import load_model
    from plannerl.tasks.answers import marked_answer

    policy = ModelPolicy(str(model_dir))
    model, tokenizer = load_model(str(model_dir))
    texts = policy.prompt_texts([Observation(problem, problem.task.init, 0, [], [], 0, 0) for problem in problems])
    tokenizer.padding_side = "left"
    batch = tokenizer(texts, return_tensors="pt", padding=True, add_special_tokens=False)
    options = ({"do_sample": True, "temperature": 1.3, "top_k": 0, "top_p": 1.0} if sample
               else {"do_sample": False, "temperature": None, "top_k": None, "top_p": None})
    torch.manual_seed(5)
    with torch.no_grad():
        out = model.generate(**batch, max_new_tokens=24, pad_token_id=tokenizer.pad_token_id, eos_token_id=tokenizer.eos_token_id,
                             **options)
    generated = [text.strip() for text in tokenizer.batch_decode(out[:, batch["input_ids"].shape[1]:], skip_special_tokens=True)]
    prompts = tokenizer(texts, add_special_tokens=False)["input_ids"]
    assert policy.tokenizer(texts, add_special_tokens=False)["input_ids"] == prompts
    decoded = []
    for backend, backend_tokenizer in ((policy.model, policy.tokenizer), (model, tokenizer)):
        torch.manual_seed(5)
        with torch.no_grad():
            decoded.append(decode_answers(backend, backend_tokenizer, prompts, max_new_tokens=24, sample=sample, temperature=1.3))
    ours = decoded[0]
    assert decoded[1] == ours
    for mine, theirs in zip(ours, generated):
        assert theirs.startswith(mine)
        if mine != theirs:  # stopped early: only at the end of an answer line
            assert marked_answer(mine) and theirs[len(mine):].lstrip(" ").startswith("\n")
    assert ours != generated or sample  # the untrained model's greedy text does end an `Action:` line early


def test_tree_scoring_plays_the_episodes_cache_copies_play(model_dir, problems, tmp_path, monkeypatch):
    """The same model gives byte-identical constrained evaluation reports with the prefix-tree
    scorer and with the previous one (each candidate on its own copy of the prompt's cache)."""
    import plannerl.agents.scoring
    from plannerl.agents.evaluate import evaluate_policies
    from plannerl.agents.scoring import score_by_copies

    evaluate_policies([ModelPolicy(str(model_dir), constrained=True, batch_size=2)], problems, report=tmp_path / "tree.json")
    monkeypatch.setattr(plannerl.agents.scoring, "score_candidates", score_by_copies)
    evaluate_policies([ModelPolicy(str(model_dir), constrained=True, batch_size=2)], problems, report=tmp_path / "copies.json")
    assert (tmp_path / "tree.json").read_bytes() == (tmp_path / "copies.json").read_bytes()
