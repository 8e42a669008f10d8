"""`mt5lab online` and `mt5lab demo` as a user runs them, against a real local store: each view's event
time and status, expired values null (the ttl Feast ignores online, feast-dev/feast#6821), and JSON
floats exactly the online store's."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from mt5lab.catalog import FEATURE_NAMES, VIEW_NAMES, view

ROOT = Path(__file__).resolve().parents[1]
MT5LAB = [sys.executable, "-m", "mt5lab.cli"]
GOOG_CLOSE = datetime(2013, 3, 2, tzinfo=UTC)  # close of the sample's last D1 bar (2013-03-01)
GOOG_ISO = "2013-03-02T00:00:00+00:00"


def cli(args, data_dir) -> subprocess.CompletedProcess:
    env = {**os.environ, "MT5LAB_DATA_DIR": str(data_dir), "TQDM_DISABLE": "1"}
    env.pop("MT5LAB_PROFILE", None)
    out = subprocess.run([*MT5LAB, *args], capture_output=True, text=True, env=env, timeout=600, cwd=ROOT)
    assert out.returncode == 0, out.stderr[-3000:]
    return out


def parse_table(text: str) -> dict[tuple[str, str], list[str]]:
    """The printed table as {(view or "", row label): [one cell per column]}; ("", "") is the header."""
    lines = [line for line in text.splitlines() if line.strip()]
    labels = re.split(r"\s{2,}", lines[0].strip())
    out: dict[tuple[str, str], list[str]] = {("", ""): labels}
    current = ""
    for line in lines[1:]:
        cells = re.split(r"\s{2,}", line.strip())
        if line.startswith(" "):  # a row of the view above
            out[(current, cells[0])] = cells[1:]
        elif len(cells) == len(labels) + 2:  # a view's first row
            current = cells[0]
            out[(current, cells[1])] = cells[2:]
        else:  # as of, ttl, status
            current = ""
            out[("", cells[0])] = cells[1:]
    for key, cells in out.items():
        assert len(cells) == len(labels), (key, cells)
    return out


@pytest.fixture(scope="module")
def goog(demo_store):
    """GOOG's online row as Feast's own get_online_features returns it (not through mt5lab's reader)."""
    from mt5lab.feast_repo.store import feature_store

    fs = feature_store(None, "D1")
    resp = fs.get_online_features(features=fs.get_feature_service("mt5_v1"), entity_rows=[{"symbol": "GOOG"}])
    feast = {k: v[0] for k, v in resp.to_dict().items()}
    assert feast["close"] == 806.19  # GOOG's last close in the sample CSV
    ttl = fs.get_feature_view("ohlcv_features").ttl  # the ttl the registry holds (the reader applies it)
    return {"dir": demo_store["dir"], "feast": feast, "ttl": ttl}


def test_table_shows_event_time_and_fresh_status(goog):
    t = parse_table(cli(["online", "GOOG", "NOPE", "--now", GOOG_ISO], goog["dir"]).stdout)
    assert t[("", "")] == ["GOOG", "NOPE"]
    assert t[("", "as of (UTC)")] == [GOOG_ISO, GOOG_ISO]
    assert t[("", "status")] == ["fresh", "missing"]
    assert t[("", "ttl")] == [str(goog["ttl"])] * 2
    for v in VIEW_NAMES:
        assert t[(v, "event_timestamp")] == [GOOG_ISO, "null"], v
        assert t[(v, "status")] == ["fresh", "missing"], v
        for f in view(v).features:
            want = goog["feast"][f.name]
            cell, missing = t[(v, f.name)]
            assert missing == "null"
            if want is None:
                assert cell == "null", f.name
            else:  # printed as repr: reads back as the same number
                assert (float(cell) if f.dtype == "Float64" else int(cell)) == want, f.name
    assert len([k for k in t if k[0]]) == len(VIEW_NAMES) * 2 + len(FEATURE_NAMES)


def test_expired_views_show_status_expired_and_null_values(goog):
    at_ttl = GOOG_CLOSE + goog["ttl"]
    t = parse_table(cli(["online", "GOOG", "--now", at_ttl.isoformat()], goog["dir"]).stdout)
    assert t[("", "status")] == ["fresh"] and float(t[("ohlcv_features", "close")][0]) == 806.19
    late = at_ttl + timedelta(seconds=1)  # one second past the ttl
    t = parse_table(cli(["online", "GOOG", "--now", late.isoformat()], goog["dir"]).stdout)
    assert t[("", "status")] == ["expired"]
    for v in VIEW_NAMES:
        assert t[(v, "event_timestamp")] == [GOOG_ISO], v  # how old it was: kept
        assert t[(v, "status")] == ["expired"], v
        assert all(t[(v, f.name)] == ["null"] for f in view(v).features), v
    # Without --now: the wall clock, years after the sample ended.
    before = datetime.now(UTC)
    t = parse_table(cli(["online", "GOOG"], goog["dir"]).stdout)
    assert before <= datetime.fromisoformat(t[("", "as of (UTC)")][0]) <= datetime.now(UTC)
    assert t[("", "status")] == ["expired"] and t[("ohlcv_features", "close")] == ["null"]
    rows = json.loads(cli(["online", "GOOG", "--json"], goog["dir"]).stdout)
    assert rows[0]["status"] == "expired" and all(rows[0][f] is None for f in FEATURE_NAMES)
    assert {rows[0][f"{v}__status"] for v in VIEW_NAMES} == {"expired"}
    assert {rows[0][f"{v}__event_timestamp"] for v in VIEW_NAMES} == {GOOG_ISO}


def test_json_floats_are_the_online_stores_exactly(goog):
    out = cli(["online", "GOOG", "NOPE", "--json", "--now", GOOG_ISO], goog["dir"]).stdout
    rows = json.loads(out)
    row, missing = rows
    feast = goog["feast"]
    for f in FEATURE_NAMES:
        assert row[f] == feast[f] and type(row[f]) is type(feast[f]), (f, row[f], feast[f])
        assert missing[f] is None
    # The check has teeth: some values need more than 10 decimals (the old output rounded to 10).
    floats = [v for v in feast.values() if isinstance(v, float)]
    assert any(round(v, 10) != v for v in floats)
    for v in VIEW_NAMES:
        assert row[f"{v}__event_timestamp"] == GOOG_ISO and row[f"{v}__status"] == "fresh"
        assert missing[f"{v}__event_timestamp"] is None and missing[f"{v}__status"] == "missing"
    assert (row["status"], missing["status"]) == ("fresh", "missing")
    # The same columns, in the same order, as the Python API's online_features.
    from mt5lab import online_features

    assert list(row) == list(online_features("GOOG", now=GOOG_CLOSE).columns)


def test_now_needs_a_zone(goog):
    env = {**os.environ, "MT5LAB_DATA_DIR": str(goog["dir"])}
    out = subprocess.run([*MT5LAB, "online", "GOOG", "--now", "2013-03-02T00:00:00"], capture_output=True,
                         text=True, env=env, timeout=600, cwd=ROOT)
    assert out.returncode == 2 and "needs a zone" in out.stderr


def test_demo_prints_status_and_nulls_expired_values(goog):
    from click.testing import CliRunner

    from mt5lab.cli import cli as group

    res = CliRunner().invoke(group, ["demo"])
    assert res.exit_code == 0, res.output
    _, rest = res.output.split("as of now:\n", 1)
    live, replay = rest.split("bar close (`mt5lab online SYMBOL --timeframe TF --now TIME`):\n", 1)
    live = parse_table(live.split("\nThe samples are historical")[0])
    replay = parse_table(replay)
    assert live[("", "")] == replay[("", "")] == ["GOOG D1", "EURUSD H1"]
    assert live[("", "status")] == ["expired", "expired"]
    assert live[("ohlcv_features", "event_timestamp")][0] == GOOG_ISO
    assert all(live[(v, f)] == ["null", "null"] for v, f in live if f not in ("event_timestamp", "status") and v)
    assert replay[("", "as of (UTC)")][0] == GOOG_ISO and replay[("", "status")] == ["fresh", "fresh"]
    assert float(replay[("ohlcv_features", "close")][0]) == goog["feast"]["close"]
