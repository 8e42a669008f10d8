"""Unit tests of what the notebooks call: records, parameters, inspection, freshness scenarios."""

from __future__ import annotations

import json
import math
from datetime import UTC, datetime, timedelta

import numpy as np
import polars as pl
import pytest

from mt5lab.notebook.record import Recorder, read_records, to_json
from mt5lab.notebook.session import items, numbers


def test_recorder_writes_plain_json_and_replaces_values(tmp_path):
    rec = Recorder(tmp_path / "nb.records.json")
    t = datetime(2020, 1, 2, 3, tzinfo=UTC)
    assert rec.record("rows", np.int64(5)) == 5
    rec.record("when", t)
    rec.record("table", pl.DataFrame({"a": [1, 2], "b": [0.5, None]}))
    rec.record("nan", float("nan"))
    rec.record("rows", 6)
    data = json.loads((tmp_path / "nb.records.json").read_text())
    assert data == {"rows": 6, "when": "2020-01-02T03:00:00+00:00", "nan": None,
                    "table": [{"a": 1, "b": 0.5}, {"a": 2, "b": None}]}
    assert read_records(tmp_path / "nb.records.json") == data
    assert read_records(tmp_path / "missing.json") == {}


@pytest.mark.parametrize("name", ["pg_password", "REDIS_PASS", "api_token", "dsn", "secret"])
def test_recorder_refuses_secret_looking_names(tmp_path, name):
    with pytest.raises(ValueError, match="secrets"):
        Recorder(tmp_path / "r.json").record(name, "x")
    assert not (tmp_path / "r.json").exists()


def test_to_json_refuses_unknown_objects():
    with pytest.raises(TypeError, match="object"):
        to_json(object())
    assert to_json(timedelta(hours=2)) == 7200.0
    assert to_json({"x": (np.float64(1.5), math.inf)}) == {"x": [1.5, None]}


def test_list_parameters():
    assert items(" GOOG, EURUSD ,,") == ["GOOG", "EURUSD"]
    assert numbers("0.7, 0.15,0.15") == [0.7, 0.15, 0.15]
    with pytest.raises(ValueError, match="numbers"):
        numbers("0.7,x")


def _csv(path, rows):
    path.write_text("time,open,high,low,close,tick_volume\n" + "".join(f"{r}\n" for r in rows))
    return path


def test_inspect_source_rejects_without_raising_and_ingest_writes_nothing(tmp_path, data_dir):
    from mt5lab.research.quality import ingest_inspected, inspect_source
    from mt5lab.storage import open_store

    bad = _csv(tmp_path / "bad.csv", ["2024-01-02 10:00,1.1,1.2,1.0,1.1,5",
                                      "2024-01-02 11:00,1.1,1.2,1.0,1.1,5",
                                      "2024-01-02 12:00,1.1,1.0,1.2,1.1,5"])  # high < low on data row 3
    ins = inspect_source(str(bad), symbol="EURUSD", timeframe="H1")
    assert not ins.ok
    assert ins.rejected.to_dicts()[0]["source_row"] == 3
    assert ins.rejected["rule"][0] == "high below low"
    assert ins.rejected["time"][0] == datetime(2024, 1, 2, 12, tzinfo=UTC)
    assert ins.summary()["rejected"] == 1
    assert ingest_inspected(open_store(), ins) == {"written": False, "inserted": 0, "updated": 0, "unchanged": 0}
    assert open_store().counts() == {}


def test_inspect_source_gap_table_names_the_missing_weekday(tmp_path, data_dir):
    from mt5lab.research.quality import calendar_table, gap_table, inspect_source

    days = ["2024-01-01", "2024-01-02", "2024-01-04", "2024-01-05", "2024-01-08"]  # Wed 3rd missing
    good = _csv(tmp_path / "d1.csv", [f"{d},10,11,9,10,100" for d in days])
    ins = inspect_source(str(good), symbol="XYZ", timeframe="D1", calendar="equity")
    assert ins.ok
    gaps = gap_table(ins)
    assert gaps[["gap_start (UTC)", "weekdays", "missing_bars"]].to_dict("records") == [
        {"gap_start (UTC)": "2024-01-03 00:00", "weekdays": "Wed", "missing_bars": 1}]
    cal = calendar_table(ins).iloc[0]
    # 1 January 2024 is an NYSE holiday: not an expected bar (a bar on it is allowed, not required)
    assert (cal["bars"], cal["expected bars"], cal["missing bars"]) == (5, 5, 1)


@pytest.mark.parametrize("tf,cal,after,last_close,reopen_bar_close", [
    # FX winter: the week closes Friday 22:00 UTC (17:00 New York) and reopens Sunday 22:00 UTC
    ("H1", "fx", datetime(2018, 1, 28, tzinfo=UTC), datetime(2018, 2, 2, 22, tzinfo=UTC),
     datetime(2018, 2, 4, 23, tzinfo=UTC)),
    # FX summer: 21:00 UTC
    ("H1", "fx", datetime(2018, 7, 1, tzinfo=UTC), datetime(2018, 7, 6, 21, tzinfo=UTC),
     datetime(2018, 7, 8, 22, tzinfo=UTC)),
    # equity D1: Friday's bar closes Saturday 00:00; Monday's bar closes Tuesday 00:00
    ("D1", "equity", datetime(2013, 2, 17, tzinfo=UTC), datetime(2013, 2, 23, tzinfo=UTC),
     datetime(2013, 2, 26, tzinfo=UTC)),
])
def test_weekend_scenarios_stay_fresh_through_the_closure(tf, cal, after, last_close, reopen_bar_close):
    from mt5lab.research.serving import weekend_scenarios

    s = weekend_scenarios(tf, cal, after)
    assert s["last_close"].iloc[0] == last_close
    assert list(s["status"]) == ["fresh", "fresh", "fresh", "stale", "expired"]
    assert list(s["bars behind"])[:4] == [0, 0, 0, 1]
    assert s["expected close (UTC)"].iloc[3] == reopen_bar_close


@pytest.fixture
def goog_store(data_dir):
    from mt5lab.bars.ingest import write
    from mt5lab.bars.samples import load_sample
    from mt5lab.features.build import build
    from mt5lab.storage import open_store

    store = open_store()
    write(store, load_sample("GOOG"), [])
    build(store, ["D1"], progress=False)
    return store


def test_lookahead_check_passes_the_real_join_and_catches_a_one_bar_leak(goog_store):
    from mt5lab.catalog import FEATURE_NAMES
    from mt5lab.research.lookahead import entities, lookahead_check
    from mt5lab.training.assemble import training_set

    keys = entities(goog_store, ["GOOG"], "D1", every=7)
    ts = training_set(keys, "mt5_v1", timeframe="D1", to="polars", store=goog_store, progress=False)
    ok, _ = lookahead_check(ts, goog_store, "D1", rows=25)
    assert ok["mismatches"] == 0 and ok["rows_checked"] == 25 and ok["leak_detected"] > 0
    # The same rows with each decision's features taken from the *next* bar: a look-ahead leak.
    leaked = ts.with_columns(pl.col(FEATURE_NAMES).shift(-1))
    bad, rows = lookahead_check(leaked.head(ts.height - 1), goog_store, "D1", rows=25)
    assert bad["mismatches"] > 0
    assert (rows["mismatches"] > 0).mean() > 0.9


def test_null_table_splits_warmup_from_other_nulls(goog_store):
    from mt5lab.catalog import BY_NAME
    from mt5lab.research.lookahead import entities, null_table
    from mt5lab.training.assemble import training_set

    keys = entities(goog_store, ["GOOG"], "D1")
    ts = training_set(keys, "mt5_v1", timeframe="D1", to="polars", store=goog_store, progress=False)
    t = null_table(ts, goog_store, "D1").set_index("feature")
    n = ts.height
    assert t.at["sma_200", "warmup_share"] == round(BY_NAME["sma_200"].warmup / n, 4)
    assert t.at["sma_200", "other_null_share"] == 0.0
    assert t.at["spread", "other_null_share"] == 1.0 and t.at["spread", "warmup_share"] == 0.0
