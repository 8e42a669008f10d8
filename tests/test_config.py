"""Profiles: variables checked before anything connects, secrets never in reprs."""

from __future__ import annotations

import pytest

from mt5lab.config import check_env, load_profile, project_for, required_vars
from mt5lab.errors import ConfigError


def test_local_profile_needs_only_the_data_dir(data_dir):
    assert required_vars("local") == ["MT5LAB_DATA_DIR"]
    prof = load_profile("local")
    assert prof.raw["online_store"]["path"] == f"{data_dir}/online.db"
    assert prof.raw["registry"]["path"] == f"{data_dir}/registry.db"


def test_unknown_profile_is_a_one_line_error():
    with pytest.raises(ConfigError, match="unknown profile 'nope'"):
        load_profile("nope")


def test_postgres_profile_names_every_missing_variable(monkeypatch):
    for var in required_vars("postgres"):
        monkeypatch.delenv(var, raising=False)
    with pytest.raises(ConfigError) as err:
        check_env("postgres")
    msg = str(err.value)
    assert "\n" not in msg
    for var in required_vars("postgres"):
        assert var in msg


def test_repr_hides_config_values(data_dir):
    prof = load_profile("local")
    assert str(data_dir) not in repr(prof)


def test_timeframe_projects():
    assert project_for("mt5lab", "D1") == "mt5lab"
    assert project_for("mt5lab", "h1") == "mt5lab_h1"
    with pytest.raises(ValueError, match="unknown timeframe"):
        project_for("mt5lab", "H2")
