"""Project files stay in step: environment.yml with pyproject, the lock with the dependencies."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]


def _name(req: str) -> str:
    return re.split(r"[\[<>=!~; ]", req.strip(), maxsplit=1)[0].lower().replace("_", "-")


def test_environment_yml_follows_pyproject():
    py = tomllib.loads((ROOT / "pyproject.toml").read_text())
    env = yaml.safe_load((ROOT / "environment.yml").read_text())
    deps = env["dependencies"]
    pip = next(d["pip"] for d in deps if isinstance(d, dict))
    assert pip == ["-e .[dev]"], "conda installs mt5lab itself from pyproject, with the dev extra"
    assert "dev" in py["project"]["optional-dependencies"]
    conda = {str(d).split("=")[0] for d in deps if isinstance(d, str)}
    assert {"python", "ta-lib", "pip"} <= conda
    want = py["project"]["requires-python"]
    pyver = next(str(d) for d in deps if isinstance(d, str) and d.startswith("python"))
    assert pyver.split("=")[1] in ("3.11", "3.12", "3.13") and ">=3.11" in want


def test_lock_pins_every_direct_dependency():
    py = tomllib.loads((ROOT / "pyproject.toml").read_text())
    direct = {_name(r) for r in py["project"]["dependencies"]}
    direct |= {_name(r) for extra in py["project"]["optional-dependencies"].values() for r in extra}
    direct.discard("mt5lab")
    lock = {_name(line.split("==")[0]) for line in (ROOT / "requirements-lock.txt").read_text().splitlines()
            if "==" in line}
    assert direct - lock == set()


def test_secrets_and_state_are_git_ignored():
    ignored = (ROOT / ".gitignore").read_text().splitlines()
    for entry in (".env", "/data/", "/reports/", ".venv/"):
        assert entry in ignored
