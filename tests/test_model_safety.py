"""Model folders from strangers: no repository code runs and no pickle is unpickled unless asked.

Each hostile folder carries a payload that, if executed, creates a marker file. The tests
load the folder the way users do (`plannerl.agents.model.load_model`, `plannerl eval --policy PATH`,
`plannerl train --model PATH`) and check for the marker; the positive controls show that the
payloads really do run when the user opts in (`trust_remote_code=True`) or when a pickle is
loaded the unsafe way, so a missing marker means something.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from plannerl.agents.model import load_model, save_model
from plannerl.errors import PlannerlError

ROOT = Path(__file__).resolve().parent.parent
REMOTE_AUTO_MAP = {"AutoConfig": "payload.PayloadConfig", "AutoModelForCausalLM": "payload.PayloadModel"}


def _payload_code(marker: Path) -> str:
    """A module that writes the marker as soon as it is imported."""
    return (f"from pathlib import Path\nPath({str(marker)!r}).write_text('executed')\n"
            "from transformers import PretrainedConfig\n\n\nclass PayloadConfig(PretrainedConfig):\n    model_type = 'payloadnet'\n")


class _Payload:
    """Unpickling this object touches the marker file (what a hostile pytorch_model.bin does)."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (Path.touch, (self.marker,))


@pytest.fixture(scope="module")
def folders(tmp_path_factory):
    """A genuine tiny Qwen2 folder (safetensors) and hostile variants of it, sharing one marker path."""
    import torch
    from transformers import Qwen2Config, Qwen2ForCausalLM

    from plannerl.agents.tokenizer import train_tokenizer

    root = tmp_path_factory.mktemp("models")
    marker = root / "MARKER"
    tokenizer = train_tokenizer(["robot1 is holding nothing.", "Action: (move robot1 table1 table2)"], 300)
    config = Qwen2Config(vocab_size=len(tokenizer), hidden_size=16, intermediate_size=32, num_hidden_layers=1, num_attention_heads=2,
                         num_key_value_heads=2, eos_token_id=tokenizer.eos_token_id, pad_token_id=tokenizer.pad_token_id)
    torch.manual_seed(0)
    model = Qwen2ForCausalLM(config)
    genuine = save_model(model, tokenizer, root / "genuine")
    hostile_state = {**model.state_dict(), "payload": _Payload(marker)}

    def variant(name: str) -> Path:
        folder = root / name
        shutil.copytree(genuine, folder)
        return folder

    remote_only = root / "remote_only"  # a model type transformers does not know: only its own code could load it
    remote_only.mkdir()
    (remote_only / "config.json").write_text(json.dumps({"model_type": "payloadnet", "architectures": ["PayloadModel"],
                                                         "auto_map": REMOTE_AUTO_MAP}))
    (remote_only / "payload.py").write_text(_payload_code(marker))

    known_with_auto_map = variant("known_with_auto_map")  # qwen2, but config.json also points at repository code
    config_json = json.loads((known_with_auto_map / "config.json").read_text())
    (known_with_auto_map / "config.json").write_text(json.dumps({**config_json, "auto_map": REMOTE_AUTO_MAP}))
    (known_with_auto_map / "payload.py").write_text(_payload_code(marker))

    remote_tokenizer = variant("remote_tokenizer")
    tokenizer_json = json.loads((remote_tokenizer / "tokenizer_config.json").read_text())
    (remote_tokenizer / "tokenizer_config.json").write_text(json.dumps(
        {**tokenizer_json, "tokenizer_class": "PayloadTokenizer", "auto_map": {"AutoTokenizer": ["payload.PayloadTokenizer", None]}}))
    (remote_tokenizer / "payload.py").write_text(_payload_code(marker))

    pickle_only = variant("pickle_only")
    (pickle_only / "model.safetensors").unlink()
    torch.save(hostile_state, pickle_only / "pytorch_model.bin")

    pickle_beside_safetensors = variant("pickle_beside_safetensors")
    torch.save(hostile_state, pickle_beside_safetensors / "pytorch_model.bin")

    truncated = variant("truncated_safetensors")
    weights = (truncated / "model.safetensors").read_bytes()
    (truncated / "model.safetensors").write_bytes(weights[: len(weights) // 2])

    wrong_shapes = variant("wrong_shapes")
    (wrong_shapes / "config.json").write_text(json.dumps({**config_json, "vocab_size": 10**10}))
    return {"root": root, "marker": marker, "genuine": genuine, "remote_only": remote_only, "known_with_auto_map": known_with_auto_map,
            "remote_tokenizer": remote_tokenizer, "pickle_only": pickle_only, "pickle_beside_safetensors": pickle_beside_safetensors,
            "truncated": truncated, "wrong_shapes": wrong_shapes}


@pytest.fixture
def marker(folders):
    folders["marker"].unlink(missing_ok=True)
    yield folders["marker"]
    assert not folders["marker"].exists(), "a hostile payload ran"


def test_unknown_model_type_needing_repository_code_is_refused(folders, marker):
    with pytest.raises(PlannerlError, match="needs its repository's own code; pass --trust-remote-code") as caught:
        load_model(folders["remote_only"])
    assert str(folders["remote_only"]) in str(caught.value) and "\n" not in str(caught.value)


def test_known_model_type_loads_with_builtin_code_despite_auto_map(folders, marker):
    model, _ = load_model(folders["known_with_auto_map"])
    assert type(model).__module__.startswith("transformers.models.qwen2")


def test_tokenizer_pointing_at_repository_code_does_not_run_it(folders, marker):
    model, tokenizer = load_model(folders["remote_tokenizer"])
    assert type(tokenizer).__module__.startswith("transformers.")


def test_pickle_only_weights_are_refused(folders, marker):
    with pytest.raises(PlannerlError, match=r"no \*\.safetensors weights \(pickled \.bin weights are refused"):
        load_model(folders["pickle_only"])


def test_safetensors_are_preferred_over_a_pickle_beside_them(folders, marker):
    import torch

    model, _ = load_model(folders["pickle_beside_safetensors"])
    genuine, _ = load_model(folders["genuine"])
    assert all(torch.equal(a, b) for a, b in zip(model.state_dict().values(), genuine.state_dict().values()))


@pytest.mark.parametrize("name", ["truncated", "wrong_shapes"])
def test_corrupt_weights_are_one_line_errors(folders, marker, name):
    with pytest.raises(PlannerlError, match="cannot load the weights") as caught:
        load_model(folders[name])
    assert "\n" not in str(caught.value)


def test_positive_control_the_pickle_payload_is_real(folders):
    """Loading the hostile .bin the unsafe way does run its payload: the tests above can fail."""
    import torch

    folders["marker"].unlink(missing_ok=True)
    with pytest.raises(Exception):  # noqa: B017 - torch's weights-only unpickler error type varies by version
        torch.load(folders["pickle_only"] / "pytorch_model.bin", weights_only=True)
    assert not folders["marker"].exists()
    torch.load(folders["pickle_only"] / "pytorch_model.bin", weights_only=False)
    assert folders["marker"].exists()
    folders["marker"].unlink()


def _run(args: list[str], tmp_path: Path, timeout: float = 180) -> subprocess.CompletedProcess:
    """A fresh interpreter whose dynamic-module cache lives in tmp_path (opted-in code is copied there)."""
    env = {**os.environ, "HF_MODULES_CACHE": str(tmp_path / "hf_modules"), "HF_HUB_OFFLINE": "1", "COLUMNS": "200"}
    return subprocess.run([sys.executable, *args], capture_output=True, text=True, timeout=timeout, env=env, cwd=tmp_path)


def test_positive_control_trust_remote_code_does_run_repository_code(folders, tmp_path):
    folders["marker"].unlink(missing_ok=True)
    code = ("import sys\nfrom plannerl.agents.model import load_model\ntry:\n    load_model(sys.argv[1], trust_remote_code=True)\n"
            "except Exception as exc:\n    print(type(exc).__name__, exc)\n")
    done = _run(["-c", code, str(folders["remote_only"])], tmp_path)
    assert folders["marker"].exists(), done.stdout + done.stderr
    folders["marker"].unlink()


def test_cli_eval_refuses_repository_code_without_the_flag(folders, marker, tmp_path):
    done = _run(["-m", "plannerl.cli", "eval", str(ROOT / "domains" / "burger.pddl"), "--policy", str(folders["remote_only"]), "-q"],
                tmp_path)
    assert done.returncode == 2
    assert "Traceback" not in done.stderr
    assert done.stderr.strip().splitlines() == [
        f"plannerl: error: {folders['remote_only']}: this model needs its repository's own code; "
        "pass --trust-remote-code only if you trust it"]


@pytest.mark.parametrize("command", [["eval", "--help"], ["train", "--help"]])
def test_model_commands_expose_the_trust_remote_code_flag(command, tmp_path):
    done = _run(["-m", "plannerl.cli", *command], tmp_path, timeout=60)
    assert done.returncode == 0 and "--trust-remote-code" in done.stdout


@pytest.mark.slow
def test_cli_train_refuses_repository_code_without_the_flag(folders, marker, tmp_path):
    done = _run(["-m", "plannerl.cli", "train", "--model", str(folders["remote_only"]), "--task", "burger", "--out", str(tmp_path / "run"),
                 "--quiet", "--sft-steps", "1", "--grpo-steps", "0", "--set", 'data.train_seeds="1"'], tmp_path, timeout=300)
    assert done.returncode == 2, done.stderr[-3000:]
    assert "Traceback" not in done.stderr
    assert "needs its repository's own code; pass --trust-remote-code" in done.stderr
