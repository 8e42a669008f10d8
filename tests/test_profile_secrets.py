"""The team profile's variables: every value reaches Feast intact, whatever its characters, and
nothing is ever written. No servers needed: these check the config Feast and SQLAlchemy receive,
with their own parsers."""

from __future__ import annotations

import pytest

from mt5lab.config import check_env, load_profile, required_vars
from mt5lab.errors import ConfigError

BASE = {"MT5LAB_PG_HOST": "db.example", "MT5LAB_PG_PORT": "5433", "MT5LAB_PG_DATABASE": "desk",
        "MT5LAB_PG_USER": "quant", "MT5LAB_PG_PASSWORD": "", "MT5LAB_PG_SSLMODE": "disable",
        "MT5LAB_REDIS_HOST": "cache.example", "MT5LAB_REDIS_PORT": "6380", "MT5LAB_REDIS_DB": "3",
        "MT5LAB_REDIS_PASSWORD": ""}


@pytest.fixture
def team_env(monkeypatch, tmp_path):
    monkeypatch.setenv("MT5LAB_DATA_DIR", str(tmp_path / "data"))
    for k, v in BASE.items():
        monkeypatch.setenv(k, v)

    def set_(**kw):
        for k, v in kw.items():
            monkeypatch.setenv(k, v)

    return set_


def test_every_variable_is_documented_in_env_example():
    from mt5lab.config import project_root

    text = (project_root() / ".env.example").read_text()
    documented = {ln.split("=", 1)[0].lstrip("# ").strip() for ln in text.splitlines() if "=" in ln}
    for profile in ("local", "postgres"):
        assert set(required_vars(profile)) <= documented, profile
    assert set(BASE) == set(required_vars("postgres"))


def test_empty_password_is_allowed_but_must_be_set(team_env, monkeypatch):
    assert check_env("postgres")["MT5LAB_PG_PASSWORD"] == ""
    prof = load_profile("postgres")
    assert prof.raw["offline_store"]["password"] == ""
    cfg = prof.repo_config("D1")
    assert cfg.offline_store.password == "" and cfg.offline_store.sslmode == "disable"
    monkeypatch.delenv("MT5LAB_PG_PASSWORD")
    monkeypatch.setenv("MT5LAB_PG_HOST", "")  # an empty non-secret is missing, too
    with pytest.raises(ConfigError) as err:
        check_env("postgres")
    assert "MT5LAB_PG_PASSWORD" in str(err.value) and "MT5LAB_PG_HOST" in str(err.value)


@pytest.mark.parametrize("password", ["p@ss:w/rd%#?&=+ x", "123456", "x #not a comment", "null",
                                      "'\"{}[]\\", "ümlaut-€"])
def test_password_reaches_feast_byte_for_byte(team_env, password):
    from feast.infra.online_stores.redis import RedisOnlineStore
    from sqlalchemy.engine import make_url

    team_env(MT5LAB_PG_PASSWORD=password, MT5LAB_REDIS_PASSWORD=password)
    cfg = load_profile("postgres").repo_config("H1")
    assert cfg.project == "mt5lab_h1"
    assert cfg.offline_store.password == password  # a str even when it looks like a number
    assert cfg.offline_store.port == 5433 and cfg.offline_store.host == "db.example"
    url = make_url(cfg.registry.path)  # SQLAlchemy's own parser
    assert (url.username, url.password, url.host, url.port, url.database) == (
        "quant", password, "db.example", 5433, "desk")
    assert url.query["sslmode"] == "disable"
    nodes, params = RedisOnlineStore._parse_connection_string(cfg.online_store.connection_string)
    assert nodes == [{"host": "cache.example", "port": "6380"}]
    assert params["password"] == password and params["db"] == 3


def test_redis_password_with_a_comma_is_refused_by_name_only(team_env):
    team_env(MT5LAB_REDIS_PASSWORD="top,secret")
    with pytest.raises(ConfigError) as err:
        load_profile("postgres")
    msg = str(err.value)
    assert "MT5LAB_REDIS_PASSWORD contains a comma" in msg and "splits" in msg
    assert "top" not in msg and "secret" not in msg.replace("MT5LAB", "")
    assert "\n" not in msg


def test_profile_repr_and_store_repr_hide_the_password(team_env):
    from mt5lab.storage.postgres import PostgresStore

    team_env(MT5LAB_PG_PASSWORD="hunter2-longer")
    prof = load_profile("postgres")
    store = PostgresStore.from_profile(prof)  # connects lazily: nothing happens yet
    for text in (repr(prof), repr(store), str(vars(store)), store.where):
        assert "hunter2" not in text


def test_redaction_covers_encoded_forms(monkeypatch):
    from mt5lab.errors import redact

    monkeypatch.setenv("MT5LAB_PG_PASSWORD", "a/b@c!d")
    text = "url postgresql+psycopg://u:a%2Fb%40c%21d@h/db and raw a/b@c!d and json \"a/b@c!d\""
    out = redact(text)
    assert "a/b@c!d" not in out and "a%2Fb%40c%21d" not in out
