"""Training pipeline: config checks, run-folder rules, and a real smoke SFT + GRPO run."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from plannerl.errors import PlannerlError
from plannerl.train import DEFAULTS, Run, config_difference, load_config_file, parse_assignment, resolve_config

ROOT = Path(__file__).resolve().parent.parent


def test_shipped_configs_are_valid_and_default_toml_matches_the_builtin_defaults():
    assert resolve_config(ROOT / "configs" / "default.toml") == resolve_config()
    for path in sorted((ROOT / "configs").glob("*.toml")):
        load_config_file(path)


def test_unknown_config_key_names_file_line_and_key(tmp_path):
    path = tmp_path / "bad.toml"
    path.write_text('task = "burger"\n\n[sft]\nsteps = 3\nstepz = 4\n')
    with pytest.raises(PlannerlError, match=r"bad.toml:5: unknown config key 'sft.stepz'"):
        load_config_file(path)
    path.write_text('[grpo]\nnum_generations = 1\n')
    with pytest.raises(PlannerlError, match="num_generations must be at least 2"):
        load_config_file(path)
    path.write_text('[sft]\nsteps = "many"\n')
    with pytest.raises(PlannerlError, match="sft.steps must be a int"):
        load_config_file(path)
    path.write_text('[sft\n')
    with pytest.raises(PlannerlError, match="not valid TOML"):
        load_config_file(path)
    with pytest.raises(PlannerlError, match="no such config file"):
        load_config_file(tmp_path / "missing.toml")


def test_set_assignments_and_seed_overlap():
    assert parse_assignment("grpo.temperature=1.5") == {"grpo": {"temperature": 1.5}}
    assert parse_assignment("task=cheese_burger") == {"task": "cheese_burger"}
    with pytest.raises(PlannerlError, match="unknown config key 'grpo.temp'"):
        parse_assignment("grpo.temp=1")
    with pytest.raises(PlannerlError, match="share seed 42"):
        resolve_config(overrides={"data": {"train_seeds": "40:50"}})


def test_run_folder_refuses_a_different_run_unless_resume_or_force(tmp_path):
    config = resolve_config()
    Run(tmp_path / "run", config)
    with pytest.raises(PlannerlError, match="already holds a training run; pass --resume"):
        Run(tmp_path / "run", config)
    other = resolve_config(overrides={"seed": 5})
    with pytest.raises(PlannerlError, match=r"--resume with a different config \(seed: 0 -> 5\)"):
        Run(tmp_path / "run", other, resume=True)
    Run(tmp_path / "run", config, resume=True)
    Run(tmp_path / "run", other, force=True)
    assert json.loads((tmp_path / "run" / "config.json").read_text())["seed"] == 5
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "notes.txt").write_text("keep me")
    with pytest.raises(PlannerlError, match="not empty and holds no plannerl run"):
        Run(tmp_path / "mine", config, force=True)
    assert (tmp_path / "mine" / "notes.txt").read_text() == "keep me"
    with pytest.raises(PlannerlError, match="nothing to resume"):
        Run(tmp_path / "fresh", config, resume=True)


def test_config_difference_names_the_first_changed_key():
    changed = resolve_config(overrides={"grpo": {"beta": 0.04}})
    assert config_difference(DEFAULTS, changed) == "grpo.beta: 0.0 -> 0.04"
    assert config_difference(DEFAULTS, resolve_config()) is None
