"""Outputs equal those recorded before the package restructuring (issue 21): plans, generated
instances, datasets, evaluation reports and a whole smoke training run (tests/golden.py)."""

from __future__ import annotations

import json

import pytest
from golden import MANIFEST, produce, versions


@pytest.mark.slow
def test_outputs_equal_the_recorded_ones(tmp_path):
    recorded = json.loads(MANIFEST.read_text())
    produced = produce(tmp_path)
    assert produced["planning"] == recorded["planning"]
    if produced["model"]["versions"] != recorded["model"]["versions"]:
        pytest.skip(f"trained-model outputs were recorded with {recorded['model']['versions']}, this is {versions()}")
    assert produced["model"]["files"] == recorded["model"]["files"]
