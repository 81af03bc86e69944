"""A wheel install works as a new user gets it: built from a copy of the tree, installed into a
fresh venv, run from a folder that is not the checkout.

Why: an editable install finds `domains/` and `cli/` in the checkout, so the test suite never
noticed that a wheel shipped neither (`plannerl generate burger` failed with
`site-packages/domains/cooking.pddl: no such file`). Offline: the build uses the installed
setuptools (`--no-build-isolation`), the venv sees the installed dependencies
(`--system-site-packages`) and pip installs the one wheel (`--no-deps --no-index`).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
# what a source tree holds that is not source: caches, builds, runs, local environments
NOT_SOURCE = shutil.ignore_patterns(".git", "build", "dist", "*.egg-info", "__pycache__", "*.so", "runs", "data",
                                    "generated", ".venv", ".pytest_cache", ".ruff_cache", ".hypothesis")


def _run(args: list[str], cwd: Path, timeout: int = 300) -> str:
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
    done = subprocess.run(args, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)
    assert done.returncode == 0, f"{' '.join(map(str, args))} failed:\n{done.stdout[-2000:]}\n{done.stderr[-3000:]}"
    return done.stdout


@pytest.fixture(scope="module")
def installed(tmp_path_factory) -> tuple[Path, Path, Path]:
    """(wheel, venv, site-packages of the venv) with plannerl installed from the wheel."""
    tmp = tmp_path_factory.mktemp("wheel")
    source = tmp / "source"
    shutil.copytree(ROOT, source, ignore=NOT_SOURCE)
    _run([sys.executable, "-m", "pip", "wheel", str(source), "--no-deps", "--no-build-isolation", "--no-index",
          "-q", "-w", str(tmp / "dist")], tmp, timeout=600)
    [wheel] = (tmp / "dist").glob("plannerl-*.whl")
    venv = tmp / "venv"
    _run([sys.executable, "-m", "venv", "--system-site-packages", "--without-pip", str(venv)], tmp)
    # the venv has no pip of its own (faster to make): the installed pip installs into it (`--python`)
    _run([sys.executable, "-m", "pip", "--python", str(venv / "bin" / "python"), "install", "--no-deps", "--no-index",
          "-q", str(wheel)], tmp)
    site = Path(_run([str(venv / "bin" / "python"), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                     tmp).strip())
    return wheel, venv, site


def test_wheel_maps_the_cli_and_the_domains_under_plannerl(installed):
    wheel, _, _ = installed
    names = zipfile.ZipFile(wheel).namelist()
    tops = {name.split("/")[0] for name in names if not name.startswith("plannerl-")}
    assert tops == {"plannerl"}, f"top-level entries besides plannerl/: {sorted(tops)}"
    for shipped in ("plannerl/cli/main.py", "plannerl/domains/cooking.pddl", "plannerl/domains/cooking.templates.toml",
                    "plannerl/domains/burger.pddl", "plannerl/domains/recipes/burger.toml", "plannerl/train/defaults.toml",
                    "plannerl/planning/_core.c", "plannerl/py.typed"):
        assert shipped in names, f"{shipped} missing from {wheel.name}"


def test_installed_commands_run_from_the_venv_not_the_checkout(installed, tmp_path):
    _, venv, site = installed
    python, plannerl = venv / "bin" / "python", venv / "bin" / "plannerl"
    where = _run([str(python), "-c", "import importlib.resources, plannerl.cli.main, plannerl.tasks.recipes as r; "
                  "print(plannerl.cli.main.__file__); print(r.COOKING_DOMAIN); "
                  "print(importlib.resources.files('plannerl.domains') / 'burger.pddl')"], tmp_path).split()
    for path in where:
        assert Path(path).is_relative_to(site), f"{path} is not in the venv's {site}"
        assert not Path(path).is_relative_to(ROOT)
    burger = Path(where[2])
    assert "Shortest plan for" in _run([str(plannerl), "plan", str(burger)], tmp_path)
    _run([str(plannerl), "generate", "burger", "--seeds", "1:2", "--out", "gen"], tmp_path)
    generated = sorted(p for p in (tmp_path / "gen").glob("*.pddl") if p.name != "cooking.pddl")
    assert [p.name for p in generated] and (tmp_path / "gen" / "instances.json").is_file()
    report = _run([str(plannerl), "plan", str(generated[0]), "--format", "json"], tmp_path)
    assert '"plan"' in report
