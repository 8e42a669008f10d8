"""Feast's own ``feast`` CLI on ``feature_repo/``, with and without mt5lab's variables.

The real CLI runs as a subprocess (plan, apply, feature-views list, materialize, materialize-incremental)
on a fresh store whose data dir is the *default* one: ``MT5LAB_HOME`` points at a throwaway checkout
(its ``feature_repo`` is a link to the real one), so the default ``data/`` is fresh and no developer's
``data/`` or ``.env`` is touched. mt5lab (in this process, as a shell without its variables) ingests,
builds and applies the samples there first. Then:

- without ``MT5LAB_DATA_DIR`` Feast reads and writes the default data dir (registry, SQLite online
  store), the one mt5lab uses; with it exported, the same files;
- the registry mt5lab reads back (every object's spec in every project, and mt5lab's own registry
  tables) is the same before and after all of it;
- ``MT5LAB_TIMEFRAME=H1`` on the D1 yaml stops every command with one line before it touches
  anything (registry and online store bytes unchanged); a yaml naming project ``mt5lab_h1`` gets
  the H1 objects, so no command can put H1 sources or ttls into the D1 project;
- no path containing ``${`` exists anywhere under the checkout or the data dir afterwards.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path

import pytest

from mt5lab.catalog import VIEW_NAMES, ttl

ROOT = Path(__file__).resolve().parents[1]
REPO = ROOT / "feature_repo"
FEAST = str(Path(sys.executable).with_name("feast"))
END = "2030-01-01T00:00:00"
REFUSED = "Error: MT5LAB_TIMEFRAME=H1 is Feast project 'mt5lab_h1', but this feast command works on project 'mt5lab'"


def _env(home: Path, **over: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MT5LAB_", "FEAST_", "FEATURE_"))}
    return env | {"MT5LAB_HOME": str(home), "TQDM_DISABLE": "1"} | over


def _run(cmd: list[str], env: dict[str, str], cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run(cmd, capture_output=True, text=True, env=env, cwd=cwd, timeout=600)


def _ok(out: subprocess.CompletedProcess) -> str:
    assert out.returncode == 0, f"{out.args}: exit {out.returncode}\n{out.stdout[-2000:]}\n{out.stderr[-3000:]}"
    return out.stdout


def _feast(args: str, env: dict[str, str], cwd: Path, yaml_file: Path | None = None):
    opts = ["-c", str(REPO)] + (["-f", str(yaml_file)] if yaml_file else [])
    return _run([FEAST, *opts, *args.split()], env, cwd)


def _plan_ok(out: subprocess.CompletedProcess, project: str, timeframe: str) -> None:
    """Feast planned the catalog against ``project``: nothing to create or delete, and only that
    timeframe's source. (After ``feast materialize`` Feast's diff lists views whose batch source differs
    in its timestamps only: ``registry_specs`` is the exact check.)"""
    text = _ok(out)
    assert f"Using project name {project} defined in" in text, text
    assert not re.search(r"^(Created|Deleted) (feature view|feature service|entity|data source)", text, re.M), text
    others = [tf for tf in ("D1", "H1") if tf != timeframe]
    assert all(f"timeframe={tf}/" not in text for tf in others), text


def _drop_meta(node):
    if isinstance(node, dict):
        return {k: _drop_meta(v) for k, v in node.items() if k != "meta"}
    if isinstance(node, list):
        return [_drop_meta(v) for v in node]
    return node


def registry_specs(path: Path) -> dict:
    """Every project, entity, data source, feature view and service in the registry file, without
    their timestamps (``meta``): what mt5lab reads back."""
    from feast.protos.feast.core.Registry_pb2 import Registry
    from google.protobuf.json_format import MessageToDict

    reg = Registry()
    reg.ParseFromString(path.read_bytes())
    out = {"projects": sorted(p.spec.name for p in reg.projects)}
    for kind in ("entities", "data_sources", "feature_views", "feature_services"):
        for obj in getattr(reg, kind):
            d = _drop_meta(MessageToDict(obj))
            spec = d.get("spec", d)
            out[f"{kind}:{spec['project']}:{spec['name']}"] = d
    return out


@contextmanager
def as_default_store(home: Path):
    """This process as a bare shell in ``home``: no mt5lab variable but ``MT5LAB_HOME``, fresh caches."""
    from mt5lab.feast_repo import store
    from mt5lab.online import reader

    with pytest.MonkeyPatch.context() as mp:
        for var in [v for v in os.environ if v.startswith("MT5LAB_")]:
            mp.delenv(var)
        mp.setenv("MT5LAB_HOME", str(home))
        store._STORES.clear()
        reader.clear_cache()
        try:
            yield
        finally:
            store._STORES.clear()
            reader.clear_cache()


def mt5lab_tables(home: Path) -> dict:
    """mt5lab's own reading of the registry: the views x features table and its check, D1 and H1."""
    from mt5lab.research.registry import registry_check, views_table

    out = {}
    with as_default_store(home):
        for tf in ("D1", "H1"):
            table = views_table(None, tf)
            out[tf] = table.to_dict("records")
            check = registry_check(table, tf)
            assert (check["views"], check["features"]) == (6, 42)
            assert sum(v for k, v in check.items() if k.endswith(("_mismatches", "_registry"))) == 0
    return out


def placeholder_paths(*roots: Path) -> list[str]:
    found = []
    for root in roots:
        for dirpath, dirnames, filenames in os.walk(root):
            dirnames[:] = [d for d in dirnames if d not in (".venv", ".git")]
            found += [os.path.join(dirpath, n) for n in dirnames + filenames if "${" in n]
    return found


def _online_rows(path: Path) -> int:
    import sqlite3

    with sqlite3.connect(path) as db:
        return db.execute("SELECT count(DISTINCT entity_key) FROM mt5lab_ohlcv_features").fetchone()[0]


@pytest.fixture(scope="module")
def home(tmp_path_factory):
    """A throwaway checkout: feature_repo linked to the real one, the sample bars built and applied
    (D1 and H1) by mt5lab into the default data dir, nothing materialized (empty online tables)."""
    from mt5lab.bars.ingest import load_samples, write
    from mt5lab.feast_repo.store import apply
    from mt5lab.features.build import build
    from mt5lab.storage import open_store

    home = tmp_path_factory.mktemp("feast_cli") / "checkout"
    home.mkdir()
    (home / "feature_repo").symlink_to(REPO, target_is_directory=True)
    with as_default_store(home):
        store = open_store()
        write(store, *load_samples())
        build(store, progress=False)
        apply(None, "D1")
        apply(None, "H1")
    assert (home / "data" / "registry.db").is_file()
    assert _online_rows(home / "data" / "online.db") == 0
    return home


def _parallel(jobs: list[tuple], cwd: Path) -> list[subprocess.CompletedProcess]:
    """Read-only feast commands, two at a time: ``(args, env[, yaml])``."""
    with ThreadPoolExecutor(2) as pool:
        return list(pool.map(lambda job: _feast(job[0], job[1], cwd, *job[2:]), jobs))


@pytest.mark.slow
def test_feast_cli_uses_mt5labs_store_and_changes_nothing(home, tmp_path):
    data = home / "data"
    registry = data / "registry.db"
    before, tables_before = registry_specs(registry), mt5lab_tables(home)
    assert before["projects"] == ["mt5lab", "mt5lab_h1"]
    bare = _env(home)  # no variable at all: the default data dir
    full = _env(home, MT5LAB_DATA_DIR=str(data), MT5LAB_TIMEFRAME="D1")  # the same store, spelled out

    outs = _parallel([("plan", bare), ("plan", full), ("feature-views list", bare),
                      ("feature-views list", full)], tmp_path)
    for out in outs[:2]:
        _plan_ok(out, "mt5lab", "D1")
    for out in outs[2:]:
        listed = _ok(out).splitlines()[1:]
        assert sorted(ln.split()[0] for ln in listed if ln.strip()) == sorted(VIEW_NAMES)

    _ok(_feast("apply", bare, tmp_path))
    _ok(_feast(f"materialize 2000-01-01T00:00:00 {END}", bare, tmp_path))
    _ok(_feast(f"materialize-incremental {END}", bare, tmp_path))
    _ok(_feast("apply", full, tmp_path))
    _ok(_feast(f"materialize-incremental {END}", full, tmp_path))

    # Feast's CLI wrote the online store mt5lab reads: the latest offline row of every symbol.
    import polars as pl

    from mt5lab.online.reader import online_features

    offline = pl.read_parquet(data / "offline/features/timeframe=D1/features.parquet")
    last = offline.sort("event_timestamp").group_by("symbol").last().sort("symbol")
    assert _online_rows(data / "online.db") == len(last) > 0, "feast wrote its online store elsewhere"
    with as_default_store(home):
        online = online_features(last["symbol"].to_list(), now=last["event_timestamp"].max())
    for name in ("close", "sma_200", "rsi_14", "obv"):
        assert online[name].tolist() == pytest.approx(last[name].to_list(), rel=1e-12), name

    assert registry_specs(registry) == before
    assert mt5lab_tables(home) == tables_before
    assert placeholder_paths(ROOT, home, tmp_path) == []


@pytest.mark.slow
def test_a_timeframe_the_project_cannot_follow_stops_every_command(home, tmp_path):
    data = home / "data"
    files = {p: p.read_bytes() for p in (data / "registry.db", data / "online.db")}
    h1, h1_full = _env(home, MT5LAB_TIMEFRAME="H1"), _env(home, MT5LAB_TIMEFRAME="H1", MT5LAB_DATA_DIR=str(data))
    # A yaml whose project is mt5lab_h1 gets H1: the H1 objects mt5lab applied, H1 source and ttl.
    h1_yaml = tmp_path / "h1.yaml"
    h1_yaml.write_text((REPO / "feature_store.yaml").read_text().replace("\nproject: mt5lab\n",
                                                                         "\nproject: mt5lab_h1\n"))
    refused = ["plan", "apply", "feature-views list", f"materialize-incremental {END}"]
    outs = _parallel([*((cmd, h1) for cmd in refused), ("plan", h1_full),
                      ("plan", h1, h1_yaml), ("feature-views describe ohlcv_features", _env(home), h1_yaml),
                      ("feature-views list", _env(home, MT5LAB_TIMEFRAME="D1"), h1_yaml)], tmp_path)
    for out in outs[:5]:
        assert out.returncode == 1, f"{out.args}\n{out.stdout}\n{out.stderr}"
        assert len(out.stderr.strip().splitlines()) == 1, out.stderr
        assert out.stderr.startswith(REFUSED), out.stderr
        assert "mt5lab_h1" not in out.stdout
    _plan_ok(outs[5], "mt5lab_h1", "H1")
    described = _ok(outs[6])
    assert "timeframe: H1" in described and f"ttl: {ttl('H1').total_seconds():.0f}s" in described
    assert "timeframe=H1/features.parquet" in described
    assert outs[7].returncode == 1 and "MT5LAB_TIMEFRAME=D1 is Feast project 'mt5lab'" in outs[7].stderr
    assert {p: p.read_bytes() for p in files} == files
    assert placeholder_paths(ROOT, home, tmp_path) == []


@pytest.mark.slow
def test_other_traps_stop_with_one_line(home, tmp_path):
    cases = {
        "MT5LAB_DATA_DIR=data is a relative path": _env(home, MT5LAB_DATA_DIR="data"),
        "MT5LAB_TIMEFRAME: unknown timeframe 'H2'": _env(home, MT5LAB_TIMEFRAME="H2"),
        "MT5LAB_PROFILE=postgres but this feast command reads the 'local' profile's feature_store.yaml":
            _env(home, MT5LAB_PROFILE="postgres"),
    }
    before = (home / "data" / "registry.db").read_bytes()
    repo_data = (REPO / "data").exists()  # where Feast would put a relative path (git-ignored)
    outs = _parallel([("feature-views list", env) for env in cases.values()] + [("plan", cases[next(iter(cases))])],
                     tmp_path)
    for want, out in zip([*cases, next(iter(cases))], outs, strict=True):
        assert out.returncode == 1 and out.stderr.startswith(f"Error: {want}"), out.stderr
    assert (home / "data" / "registry.db").read_bytes() == before
    assert not (tmp_path / "data").exists() and (REPO / "data").exists() == repo_data
    assert placeholder_paths(ROOT, home, tmp_path) == []


def test_placeholders_resolve_to_the_data_dir_mt5lab_uses(tmp_path, monkeypatch):
    """In-process: what Feast's CLI hands the two path hooks when MT5LAB_DATA_DIR is unset."""
    from feast.infra.registry.registry import RegistryConfig

    from mt5lab.config import data_dir, expand_defaults, project_root
    from mt5lab.errors import ConfigError
    from mt5lab.feast_repo.registry_store import AtomicFileRegistryStore
    from mt5lab.feast_repo.sqlite_store import TYPE, SqliteOnlineStoreConfig

    monkeypatch.delenv("MT5LAB_DATA_DIR", raising=False)
    monkeypatch.setenv("MT5LAB_HOME", str(tmp_path))
    assert data_dir() == project_root() / "data" == tmp_path / "data"
    assert expand_defaults("${MT5LAB_DATA_DIR}/online.db") == f"{tmp_path}/data/online.db"
    cfg = SqliteOnlineStoreConfig(type=TYPE, path="${MT5LAB_DATA_DIR}/online.db")
    assert (cfg.type, cfg.path) == ("sqlite", f"{tmp_path}/data/online.db")
    assert f"type: {TYPE}\n" in (REPO / "feature_store.yaml").read_text()
    reg = AtomicFileRegistryStore(RegistryConfig(path="${MT5LAB_DATA_DIR}/registry.db"), REPO)
    assert reg._filepath == tmp_path / "data" / "registry.db"
    monkeypatch.setenv("MT5LAB_DATA_DIR", str(tmp_path / "elsewhere"))
    assert expand_defaults("${MT5LAB_DATA_DIR}/x") == f"{tmp_path}/elsewhere/x"
    monkeypatch.delenv("MT5LAB_NOPE", raising=False)
    with pytest.raises(ConfigError, match="MT5LAB_NOPE is not set"):
        expand_defaults("${MT5LAB_NOPE}/x")


def test_split_project_inverts_project_for():
    from mt5lab.catalog import TIMEFRAMES
    from mt5lab.config import project_for, split_project

    for tf in TIMEFRAMES:
        assert split_project(project_for("mt5lab", tf)) == ("mt5lab", tf)
    assert split_project("research") == ("research", "D1")
