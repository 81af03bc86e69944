"""Built-in model: builds, saves as an ordinary HF folder, loads back; bad model sources are refused."""

from __future__ import annotations

import json

import pytest

from plannerl.agents.model import build_default_model, count_parameters, load_model, prompt_text
from plannerl.errors import PlannerlError


@pytest.fixture(scope="module")
def micro_dir(tmp_path_factory):
    return build_default_model(tmp_path_factory.mktemp("m") / "model", size="micro", seed=3)


def test_built_model_is_an_ordinary_hf_folder_that_transformers_loads(micro_dir):
    from transformers import AutoModelForCausalLM

    names = {p.name for p in micro_dir.iterdir()}
    assert {"config.json", "model.safetensors", "tokenizer.json"} <= names
    assert json.loads((micro_dir / "config.json").read_text())["model_type"] == "qwen2"
    plain = AutoModelForCausalLM.from_pretrained(micro_dir)
    model, tokenizer = load_model(micro_dir)
    assert count_parameters(plain) == count_parameters(model) > 10_000
    assert tokenizer.eos_token == "<|endoftext|>" and tokenizer.pad_token_id != tokenizer.eos_token_id
    assert tokenizer.decode(tokenizer("Action: (pick-up robot1 patty1 table3)")["input_ids"]) == "Action: (pick-up robot1 patty1 table3)"


def test_same_seed_gives_identical_weights(micro_dir, tmp_path):
    again = build_default_model(tmp_path / "again", size="micro", seed=3)
    assert (again / "model.safetensors").read_bytes() == (micro_dir / "model.safetensors").read_bytes()
    other = build_default_model(tmp_path / "other", size="micro", seed=4)
    assert (other / "model.safetensors").read_bytes() != (micro_dir / "model.safetensors").read_bytes()


def test_generation_runs_and_stops(micro_dir):
    import torch

    model, tokenizer = load_model(micro_dir)
    ids = torch.tensor([tokenizer("robot1 is holding nothing.\n")["input_ids"]])
    out = model.generate(ids, max_new_tokens=5, do_sample=False)
    assert out.shape[1] <= ids.shape[1] + 5


def test_prompt_text_uses_plain_prompt_without_chat_template(micro_dir):
    _, tokenizer = load_model(micro_dir)
    messages = [{"role": "user", "content": "state"}, {"role": "assistant", "content": "Action: x"}]
    assert prompt_text(tokenizer, "plain prompt\n", messages) == "plain prompt\n"


def test_prompt_text_applies_a_chat_template_and_drops_the_answer(micro_dir):
    _, tokenizer = load_model(micro_dir)
    tokenizer.chat_template = ("{% for m in messages %}<{{ m['role'] }}>{{ m['content'] }}\n{% endfor %}"
                               "{% if add_generation_prompt %}<assistant>{% endif %}")
    messages = [{"role": "system", "content": "sys"}, {"role": "user", "content": "state"},
                {"role": "assistant", "content": "Action: x"}]
    assert prompt_text(tokenizer, "ignored", messages) == "<system>sys\n<user>state\n<assistant>"


def test_missing_path_and_uncached_hub_name_are_refused_with_one_line(tmp_path):
    with pytest.raises(PlannerlError, match="not a local folder and not in the Hugging Face cache"):
        load_model("nobody-here/no-such-model-xyz")
    with pytest.raises(PlannerlError, match="no such model folder|not in the Hugging Face cache"):
        load_model(str(tmp_path / "missing" / "deeper" / "model"))


def test_folder_that_is_not_a_causal_lm_is_refused(tmp_path, micro_dir):
    (tmp_path / "empty").mkdir()
    with pytest.raises(PlannerlError, match="no config.json"):
        load_model(tmp_path / "empty")
    (tmp_path / "file.bin").write_bytes(b"x")
    with pytest.raises(PlannerlError, match="is a file"):
        load_model(tmp_path / "file.bin")
    vision = tmp_path / "vit"
    vision.mkdir()
    (vision / "config.json").write_text(json.dumps({"model_type": "vit"}))
    with pytest.raises(PlannerlError, match="not a causal language model"):
        load_model(vision)


def test_pickled_weights_are_refused(tmp_path, micro_dir):
    import shutil

    import torch
    from safetensors.torch import load_file

    folder = tmp_path / "pickled"
    shutil.copytree(micro_dir, folder)
    torch.save(load_file(folder / "model.safetensors"), folder / "pytorch_model.bin")
    (folder / "model.safetensors").unlink()
    with pytest.raises(PlannerlError, match="safetensors"):
        load_model(folder)


def test_unknown_size_is_refused(tmp_path):
    with pytest.raises(PlannerlError, match="unknown model size"):
        build_default_model(tmp_path / "m", size="huge")


def test_replace_folder_swaps_a_whole_folder_in_and_leaves_nothing_behind(tmp_path):
    from plannerl.atomic import replace_folder

    target, staging = tmp_path / "model", tmp_path / ".model.saving"
    staging.mkdir()
    (staging / "weights").write_text("first")
    replace_folder(staging, target)
    assert (target / "weights").read_text() == "first" and not staging.exists()
    staging.mkdir()
    (staging / "weights").write_text("second")
    replace_folder(staging, target)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model"]
    assert [p.name for p in target.iterdir()] == ["weights"] and (target / "weights").read_text() == "second"
