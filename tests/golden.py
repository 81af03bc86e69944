"""Reference outputs fixed before the package restructuring (issue 21), to prove it changed nothing.

`produce(out)` runs the real commands (plan, generate, data, eval, a smoke training run) in a
fresh folder and returns a manifest: output name -> sha256 of its bytes, JSON normalised only
where a file names its own folder or a wall-clock time. `python tests/golden.py` rewrites
tests/fixtures/golden/manifest.json; tests/test_golden.py compares a new run with it.

Outputs that depend on torch/transformers/TRL numerics (trained weights, model evaluations)
are kept apart under `model` with the versions that made them: a test on other versions skips
them, naming the versions, instead of failing on a dependency upgrade.
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
MANIFEST = ROOT / "tests" / "fixtures" / "golden" / "manifest.json"
TIME_FIELDS = ("seconds", "heuristic_seconds", "step_time")
NOT_RESULTS = ("timings.json", "README.md", "training_args.bin")


def _plannerl(args: list[str], cwd: Path) -> str:
    env = {**os.environ, "COLUMNS": "200", "OMP_NUM_THREADS": "1", "PYTHONHASHSEED": "0"}
    done = subprocess.run([sys.executable, "-m", "plannerl.cli", *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=600)
    if done.returncode != 0:
        raise RuntimeError(f"plannerl {' '.join(args)} failed: {done.stderr[-2000:]}")
    return done.stdout


def _normalised(data, out: Path):
    """The JSON value with the run's own folder and the repository written as placeholders and
    wall-clock fields dropped, so two runs in different folders compare equal."""
    if isinstance(data, dict):
        return {k: _normalised(v, out) for k, v in data.items() if k not in TIME_FIELDS}
    if isinstance(data, list):
        return [_normalised(v, out) for v in data]
    if isinstance(data, str):
        return data.replace(str(out), "{out}").replace(str(ROOT), "{root}")
    return data


def _digest(path: Path, out: Path) -> str:
    raw = path.read_bytes()
    if path.suffix in (".json", ".jsonl"):
        lines = raw.decode().splitlines() if path.suffix == ".jsonl" else [raw.decode()]
        values = [_normalised(json.loads(line), out) for line in lines if line.strip()]
        raw = json.dumps(values, sort_keys=True).encode()
    return hashlib.sha256(raw).hexdigest()


def _folder(folder: Path, out: Path, prefix: str) -> dict[str, str]:
    return {f"{prefix}/{p.relative_to(folder)}": _digest(p, out) for p in sorted(folder.rglob("*"))
            if p.is_file() and p.name not in NOT_RESULTS and "checkpoint-" not in str(p)}


def versions() -> dict[str, str]:
    import torch
    import transformers
    import trl

    return {"torch": torch.__version__, "transformers": transformers.__version__, "trl": trl.__version__}


def produce(out: Path) -> dict:
    """Run every reference command under `out` and return the manifest."""
    out.mkdir(parents=True, exist_ok=True)
    planning: dict[str, str] = {}
    for problem in ("domains/burger.pddl", "domains/cheese_burger.pddl", "domains/double_cheese_burger.pddl",
                    "tests/fixtures/classic/blocksworld/p03.pddl"):
        report = json.loads(_plannerl(["plan", str(ROOT / problem), "--format", "json"], out))
        digest = hashlib.sha256(json.dumps(_normalised(report, out), sort_keys=True).encode()).hexdigest()
        planning[f"plan {problem}"] = digest
    _plannerl(["generate", "double_cheese_burger", "--seeds", "0:2", "--out", str(out / "gen")], out)
    planning.update(_folder(out / "gen", out, "generate"))
    _plannerl(["data", "--task", "burger", "--seeds", "1000:1003", "--out", str(out / "data")], out)
    planning.update(_folder(out / "data", out, "data"))
    _plannerl(["eval", "--policy", "oracle", "--policy", "random", "--task", "burger", "--task", "cheese_burger",
               "--seeds", "42:84:42", "--report", str(out / "eval.json")], out)
    planning["eval.json"] = _digest(out / "eval.json", out)
    _plannerl(["train", "--config", str(ROOT / "configs" / "smoke.toml"), "--out", str(out / "smoke"), "--quiet"], out)
    smoke = _folder(out / "smoke", out, "smoke")
    planning["smoke/data/train.jsonl"] = smoke.pop("smoke/data/train.jsonl")
    return {"planning": planning, "model": {"versions": versions(), "files": smoke}}


if __name__ == "__main__":
    import tempfile

    with tempfile.TemporaryDirectory() as folder:
        manifest = produce(Path(folder))
    MANIFEST.parent.mkdir(parents=True, exist_ok=True)
    MANIFEST.write_text(json.dumps(manifest, indent=1, sort_keys=True) + "\n")
    print(f"wrote {MANIFEST}: {len(manifest['planning'])} planning outputs, {len(manifest['model']['files'])} model outputs")
