"""plannerl's own forward pass of the built-in model (`plannerl.agents.native`) against
transformers' on the same weights: the same tokens, scores, choices and episodes."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from plannerl.agents.evaluate import play, problems_from_files, problems_from_tasks
from plannerl.agents.metrics import write_report
from plannerl.agents.model import build_default_model, load_for_inference, load_model
from plannerl.agents.native import NativeQwen2, load_native, native_supported
from plannerl.agents.policies import ModelPolicy
from plannerl.agents.scoring import score_answers
from plannerl.errors import PlannerlError

DOMAINS = Path(__file__).resolve().parent.parent / "domains"


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory):
    return build_default_model(tmp_path_factory.mktemp("native") / "model", size="micro", seed=1)


@pytest.fixture(scope="module")
def problems():
    return problems_from_files([DOMAINS / "burger.pddl", DOMAINS / "cheese_sandwich.pddl"])


def edited_copy(model_dir: Path, tmp_path: Path, file: str, **changes) -> Path:
    copy = tmp_path / "edited"
    shutil.copytree(model_dir, copy)
    settings = json.loads((copy / file).read_text())
    settings.update(changes)
    (copy / file).write_text(json.dumps(settings))
    return copy


def test_the_built_in_model_loads_natively_and_others_through_transformers(model_dir, tmp_path):
    assert native_supported(model_dir)
    model, _ = load_for_inference(model_dir)
    assert isinstance(model, NativeQwen2)
    scaled = edited_copy(model_dir, tmp_path, "config.json",
                         rope_parameters={"rope_type": "linear", "factor": 2.0, "rope_theta": 10000.0})
    assert not native_supported(scaled)  # a rotary scaling this module does not implement
    model, _ = load_for_inference(scaled)
    assert not isinstance(model, NativeQwen2) and type(model).__name__ == "Qwen2ForCausalLM"


def test_weights_of_other_shapes_than_the_config_are_a_one_line_error(model_dir, tmp_path):
    wider = edited_copy(model_dir, tmp_path, "config.json", intermediate_size=100)
    with pytest.raises(PlannerlError, match="mlp.gate_proj.weight is .* config.json says"):
        load_native(wider)


def test_tokens_and_scores_equal_transformers_on_every_expert_state(model_dir):
    """Every state of the oracle's double_cheese_burger episodes on two seeds: the same token
    ids, every candidate's log-probability within float tolerance, the same best answer."""
    from plannerl.agents.policies import OraclePolicy, answer_texts

    native, native_tokenizer = load_native(model_dir)
    reference, tokenizer = load_model(model_dir)
    seen = []

    class Recorder(OraclePolicy):
        def act(self, observations):
            seen.extend(observations)
            return super().act(observations)

    policy = ModelPolicy(str(model_dir), constrained=True)
    play(problems_from_tasks(["double_cheese_burger"], [42, 84]), Recorder())
    texts = policy.prompt_texts(seen)
    prompts = tokenizer(texts, add_special_tokens=False)["input_ids"]
    assert native_tokenizer(texts, add_special_tokens=False)["input_ids"] == prompts
    candidates = [[tokenizer(text, add_special_tokens=False)["input_ids"] + [tokenizer.eos_token_id]
                   for text in answer_texts(o.task, o.state, o.valid_actions(), policy.prompt_style)] for o in seen]
    ours = score_answers(native, prompts, candidates, tokenizer.pad_token_id)
    theirs = score_answers(reference, prompts, candidates, tokenizer.pad_token_id)
    assert max(abs(a - b) for x, y in zip(ours, theirs) for a, b in zip(x, y)) < 1e-4
    assert [x.index(max(x)) for x in ours] == [y.index(max(y)) for y in theirs]


@pytest.mark.parametrize("choice", ["sum", "greedy", "hybrid"])
def test_episodes_and_report_are_byte_identical_to_transformers(model_dir, problems, tmp_path, choice):
    native = ModelPolicy(str(model_dir), constrained=True, choice=choice)
    reference = ModelPolicy(str(model_dir), constrained=True, choice=choice)
    reference.model, reference.tokenizer = load_model(model_dir)
    assert isinstance(native.model, NativeQwen2) and not isinstance(reference.model, NativeQwen2)
    reports = [write_report(tmp_path / f"{name}.json", play(problems, policy), {"policy": "same"})
               for name, policy in (("native", native), ("transformers", reference))]
    assert reports[0].read_bytes() == reports[1].read_bytes()


def test_bf16_precision_answers_close_to_fp32_on_both_backends_and_is_reported(model_dir, problems, tmp_path):
    """`precision="bf16"` stores and runs the model in bfloat16 on either backend: every
    candidate's log-probability stays within bf16 rounding of fp32's; the report says which
    precision answered (fp32 reports keep their old bytes: no key); anything else is refused."""
    import torch

    from plannerl.agents.eval_run import EvalSpec, run_evaluation
    from plannerl.agents.policies import OraclePolicy, answer_texts

    seen = []

    class Recorder(OraclePolicy):
        def act(self, observations):
            seen.extend(observations)
            return super().act(observations)

    play(problems, Recorder())
    for backend in ("native", "transformers"):
        full, half = (ModelPolicy(str(model_dir), constrained=True, precision=p) for p in ("fp32", "bf16"))
        if backend == "transformers":
            for policy in (full, half):
                policy.model = load_model(model_dir)[0].to(next(policy.model.parameters()).dtype)
        assert next(half.model.parameters()).dtype == torch.bfloat16 and next(full.model.parameters()).dtype == torch.float32
        tokenizer = full.tokenizer
        prompts = tokenizer(full.prompt_texts(seen), add_special_tokens=False)["input_ids"]
        candidates = [[full._answer_ids(text) for text in answer_texts(o.task, o.state, o.valid_actions(), full.prompt_style)]
                      for o in seen]
        exact = score_answers(full.model, prompts, candidates, tokenizer.pad_token_id)
        rounded = score_answers(half.model, prompts, candidates, tokenizer.pad_token_id)
        worst = max(abs(a - b) / abs(a) for x, y in zip(exact, rounded) for a, b in zip(x, y))
        assert 0 < worst < 1e-3, backend  # bf16 keeps 8 bits of mantissa: scores move, but by little

    reports = {}
    for precision in ("fp32", "bf16"):
        spec = EvalSpec(policies=[str(model_dir)], tasks=["burger"], seeds="42", constrained=True, precision=precision,
                        report=tmp_path / f"{precision}.json", max_steps=3)
        run_evaluation(spec, say=lambda _: None)
        reports[precision] = json.loads(spec.report.read_text())["config"]
    assert "precision" not in reports["fp32"] and reports["bf16"]["precision"] == "bf16"
    with pytest.raises(PlannerlError, match="--precision must be one of fp32, bf16"):
        run_evaluation(EvalSpec(policies=[str(model_dir)], tasks=["burger"], seeds="42", precision="fp16"))
