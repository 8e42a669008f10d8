"""Unit tests of what the notebooks call: records, parameters, inspection, freshness scenarios."""

from __future__ import annotations

import json
import math
from datetime import UTC, datetime, timedelta
from pathlib import Path

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


# -- issue 13: the user's store, windows, replays, compact records ----------------------------------

def _goog_close(day: str) -> float:
    import csv

    from mt5lab.bars.samples import sample_path

    with open(sample_path("GOOG")) as fh:
        rows = {r[0]: r for r in csv.reader(fh)}
    header = next(iter(rows.values()))
    return float(rows[day][header.index("Close")])


def test_replay_shows_what_was_served_and_how_fresh_then(goog_store):
    from mt5lab.research.replay import replay_freshness, replay_snapshot

    as_of = datetime(2013, 1, 2, 12, tzinfo=UTC)  # 1 January is an NYSE holiday: 31 December is the latest
    snap = replay_snapshot(goog_store, ["GOOG", "XAUUSD"], ["D1"], as_of).set_index("symbol")
    assert snap.at["GOOG", "status"] == "fresh"
    assert snap.at["GOOG", "ohlcv_features__event_timestamp"] == datetime(2013, 1, 1, tzinfo=UTC)
    assert snap.at["GOOG", "close"] == _goog_close("2012-12-31")
    assert snap.at["XAUUSD", "status"] == "missing" and math.isnan(snap.at["XAUUSD", "close"])
    # Hurricane Sandy closed NYSE on 29-30 October 2012, which the calendar does not know: two bars behind
    sandy = replay_freshness(goog_store, ["GOOG"], ["D1"], datetime(2012, 10, 31, 12, tzinfo=UTC))
    assert set(sandy["status"]) == {"stale"} and set(sandy["bars_behind"]) == {2}
    assert set(sandy["event_timestamp"]) == {datetime(2012, 10, 27, tzinfo=UTC)}
    late = replay_freshness(goog_store, ["GOOG"], ["D1"], datetime(2013, 6, 1, tzinfo=UTC))
    assert set(late["status"]) == {"expired"}
    early = replay_freshness(goog_store, ["GOOG"], ["D1"], datetime(2004, 1, 1, tzinfo=UTC))
    assert set(early["status"]) == {"missing"}


def test_feature_window_explicit_start_wins_and_conflicts_are_errors(goog_store):
    import csv

    from mt5lab.bars.samples import sample_path
    from mt5lab.research.explore import feature_window

    with open(sample_path("GOOG")) as fh:
        days = [r[0] for r in list(csv.reader(fh))[1:]]
    assert feature_window(goog_store, "GOOG", "D1").height == 250
    since = feature_window(goog_store, "GOOG", "D1", start="2010-01-01")
    assert since.height == sum(d >= "2010-01-01" for d in days)
    both = feature_window(goog_store, "GOOG", "D1", start="2010-01-01", end="2010-12-31")
    assert both.height == sum("2010-01-01" <= d <= "2010-12-31" for d in days)
    tail = feature_window(goog_store, "GOOG", "D1", end="2010-12-31", last=10)
    assert tail["time"].dt.strftime("%Y-%m-%d").to_list() == [d for d in days if d <= "2010-12-31"][-10:]
    with pytest.raises(ValueError, match="both bound the window"):
        feature_window(goog_store, "GOOG", "D1", start="2010-01-01", last=250)
    with pytest.raises(ValueError, match="after end"):
        feature_window(goog_store, "GOOG", "D1", start="2011-01-01", end="2010-01-01")


def test_store_line_names_the_data_dir_and_the_symbols(goog_store, data_dir):
    from mt5lab.config import load_profile
    from mt5lab.notebook.store_info import describe, holdings, store_contents

    contents = store_contents(goog_store)
    assert holdings(contents) == {"D1": ["GOOG"]}
    assert describe(load_profile("local"), contents) == f"store: local profile, data dir {data_dir} · D1: GOOG"


def test_data_dir_resolution_follows_the_cli_and_the_checkout(tmp_path, monkeypatch):
    from mt5lab.config import project_root
    from mt5lab.notebook.store_info import resolve_data_dir

    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("MT5LAB_DATA_DIR", "some/where")
    assert resolve_data_dir() == project_root() / "some" / "where"  # the checkout, not the cwd
    assert resolve_data_dir("mine") == project_root() / "mine"
    assert resolve_data_dir(str(tmp_path / "abs")) == tmp_path / "abs"
    monkeypatch.setenv("MT5LAB_DATA_DIR", "")
    assert resolve_data_dir() == project_root() / "data"


def test_records_show_as_compact_tables():
    from zoneinfo import ZoneInfo

    from mt5lab.notebook.show import records_table, table

    t = table({"rows": np.int64(5), "first": datetime(2013, 3, 1, 2, tzinfo=ZoneInfo("Europe/Athens"))})
    assert t.to_dict("records") == [{"rows": 5, "first": "2013-03-01 00:00"}]
    nested = table({"counts": {"stable": 3}, "drift": ["close"]})
    assert nested.to_dict("records") == [{"name": "counts", "value": '{"stable": 3}'},
                                         {"name": "drift", "value": '["close"]'}]
    done = records_table({"store": {"line": "x" * 500}, "elapsed_s": 1.5})
    assert list(done["record"]) == ["store", "elapsed_s"] and len(done.at[0, "value"]) == 160
    assert "ZoneInfo" not in repr(t) and "datetime.datetime" not in repr(nested)


def test_figure_tag_keeps_runs_apart():
    from mt5lab.notebook.session import tag

    assert tag("GOOG", "D1", "", 250) == "GOOG_D1_250"
    assert tag("/tmp/x/eurusd h1.csv", "EURUSD") == "eurusd-h1_EURUSD"
    assert tag("GOOG,EURUSD", "D1") != tag("GOOG", "D1")


def test_volume_figure_gives_obv_and_ad_their_own_axes(goog_store):
    import matplotlib

    matplotlib.use("Agg")
    from mt5lab.plots.views import volume_figure
    from mt5lab.research.explore import feature_window

    frame = feature_window(goog_store, "GOOG", "D1")
    fig = volume_figure(frame, "GOOG", "D1")
    owner = {line.get_label(): ax for ax in fig.axes for line in ax.get_lines()}
    assert owner["obv"] is not owner["ad"]
    for name in ("obv", "ad"):  # each axis spans its own series, not the other's
        lo, hi = owner[name].get_ylim()
        values = frame[name].drop_nulls()
        assert lo <= values.min() and values.max() <= hi
        assert (hi - lo) < 3 * (values.max() - values.min())


def test_price_action_colours_returns_by_sign_and_keeps_candles_off_the_frame(goog_store):
    import matplotlib
    from matplotlib.colors import to_rgba

    matplotlib.use("Agg")
    from mt5lab.plots.views import price_action_figure
    from mt5lab.research.explore import feature_window

    frame = feature_window(goog_store, "GOOG", "D1").tail(120)
    fig = price_action_figure(frame, "GOOG", "D1", candles=120)
    candles, returns = fig.axes[0], fig.axes[1]
    ret = frame["log_return_1"].to_list()
    bars = [p for p in returns.patches if math.isfinite(p.get_height())][: len(ret)]  # closures: NaN rows
    want = [to_rgba("tab:green") if r >= 0 else to_rgba("tab:red") for r in ret]
    assert [b.get_facecolor() for b in bars] == want
    direction = [c >= o for c, o in zip(frame["close"], frame["open"], strict=True)]
    assert any((r >= 0) != d for r, d in zip(ret, direction, strict=True)), "GOOG has gaps: colour must follow the return"
    lo, hi = candles.get_ylim()
    assert lo < frame["low"].min() and hi > frame["high"].max()


def test_label_histogram_says_what_it_clips(goog_store):
    import matplotlib

    matplotlib.use("Agg")
    from mt5lab.plots.training import label_figure
    from mt5lab.research.lookahead import entities
    from mt5lab.training.assemble import training_set

    ts = training_set(entities(goog_store, ["GOOG"], "D1"), "mt5_v1", timeframe="D1", labels=["fwd_return_5"],
                      to="polars", store=goog_store, progress=False)
    fig = label_figure(ts, ["fwd_return_5"], title="GOOG D1")
    v = ts["fwd_return_5"].drop_nulls().to_numpy() * 100
    lo, hi = np.percentile(v, [0.5, 99.5])
    outside = int(((v < lo) | (v > hi)).sum())
    texts = [t.get_text() for t in fig.axes[0].texts]
    assert any(t.startswith(f"not drawn: {outside} of {len(v)} rows") for t in texts), texts
    assert outside > 0
    assert fig._suptitle.get_text().startswith("GOOG D1: label distribution")


def _gap_bands(ax):
    """(left, right) x of the red gap bands (axvspan rectangles) of an axis, as tick labels."""
    from matplotlib.colors import to_rgba
    from matplotlib.patches import Rectangle

    fmt = ax.xaxis.get_major_formatter()
    red = to_rgba("tab:red", 0.25)
    return [(fmt(p.get_x(), 0), fmt(p.get_x() + p.get_width(), 0)) for p in ax.patches
            if isinstance(p, Rectangle) and p.get_facecolor() == red]


def test_trading_time_axis_choice():
    from mt5lab.plots.axis import trading_time

    assert trading_time("H1") and trading_time("M5") and not trading_time("D1") and not trading_time("W1")
    assert trading_time("D1", "bars") and not trading_time("H1", "time")
    with pytest.raises(ValueError, match="axis must be one of"):
        trading_time("H1", "weekday")


def test_gaps_are_drawn_the_same_way_in_01_and_03(goog_store):
    import matplotlib

    matplotlib.use("Agg")
    from mt5lab.plots.quality import validation_figure
    from mt5lab.plots.views import ma_figure
    from mt5lab.research.explore import feature_window, window_gaps
    from mt5lab.research.quality import inspect_source

    frame = feature_window(goog_store, "GOOG", "D1", start="2012-10-01", end="2012-11-30")
    gaps = window_gaps(frame, "D1")
    assert gaps["missing_bars"].to_list() == [2]  # Hurricane Sandy, 29-30 October 2012
    v03 = ma_figure(frame, "GOOG", "D1", axis="bars", gaps=gaps).axes[0]
    v01 = validation_figure(inspect_source("", symbol="GOOG", timeframe="D1"), axis="bars").axes[0]
    sandy = ("2012-10-26", "2012-10-31")  # the bars on either side of the gap
    assert _gap_bands(v03) == [sandy]
    assert _gap_bands(v01) == [("2006-12-29", "2007-01-03"), sandy]  # President Ford's day of mourning, Sandy
    # trading time: one slot per bar, consecutive, whatever the calendar did
    line = next(ln for ln in v03.get_lines() if ln.get_label() == "close")
    assert list(line.get_xdata()) == list(range(frame.height))


def test_intraday_defaults_to_trading_time_without_weekend_holes(data_dir):
    import matplotlib

    matplotlib.use("Agg")
    from mt5lab.bars.ingest import write
    from mt5lab.bars.samples import load_sample
    from mt5lab.features.build import build
    from mt5lab.plots.views import ma_figure
    from mt5lab.research.explore import feature_window
    from mt5lab.storage import open_store

    store = open_store()
    write(store, load_sample("EURUSD"), [])
    build(store, ["H1"], progress=False)
    frame = feature_window(store, "EURUSD", "H1", last=300)  # spans two FX weekends
    ax = ma_figure(frame, "EURUSD", "H1").axes[0]  # axis="auto"
    close = next(ln for ln in ax.get_lines() if ln.get_label() == "close")
    assert list(close.get_xdata()) == list(range(300))
    fmt = ax.xaxis.get_major_formatter()
    first = frame["time"][0]
    assert fmt(0, 0) == f"{first:%Y-%m-%d}\n{first:%H:%M}"
    cal = ma_figure(frame, "EURUSD", "H1", axis="time").axes[0]
    close_t = next(ln for ln in cal.get_lines() if ln.get_label() == "close")
    assert len(close_t.get_xdata()) > 300  # calendar time: a break row inside each weekend


def test_figure_tag_leaves_out_unset_parameters():
    from mt5lab.notebook.session import tag

    assert tag("GOOG", "D1", "", "", 0, "auto") == "GOOG_D1_auto"
    assert tag("GOOG", "D1", "2010-01-01", "", 0, "auto") == "GOOG_D1_2010-01-01_auto"


def _run_cells(cells: list[str], env_extra: dict, tmp_path) -> list:
    """Execute ``cells`` in a fresh python3 kernel (nbclient, as JupyterLab would: not papermill)."""
    import os
    import sys

    import nbformat
    from nbclient import NotebookClient

    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(c) for c in cells])
    env = {k: v for k, v in os.environ.items() if k not in ("MPLBACKEND", "MT5LAB_NB_BATCH")} | env_extra
    saved = dict(os.environ)
    os.environ.clear()
    os.environ.update(env | {"JUPYTER_PATH": str(Path(sys.prefix) / "share" / "jupyter")})
    try:
        NotebookClient(nb, kernel_name="python3", timeout=600, resources={"metadata": {"path": str(tmp_path)}}).execute()
    finally:
        os.environ.clear()
        os.environ.update(saved)
    return [c.outputs for c in nb.cells]


@pytest.mark.slow
def test_interactive_figures_in_a_kernel_and_pngs_all_the_same(tmp_path):
    cells = ["from mt5lab import notebook, plots, research",
             f"nb = notebook.start('t', data_dir={str(tmp_path / 'data')!r}, out_dir={str(tmp_path)!r}, "
             "samples=True, interactive=True)",
             "print(nb.interactive)",
             "frame = research.explore.feature_window(nb.store, 'GOOG', 'D1')",
             "nb.figure(plots.views.ma_figure(frame, 'GOOG', 'D1'), 'ma')"]
    live = _run_cells(cells, {}, tmp_path)
    assert live[2][0]["text"].strip() == "True"
    shown = [o for o in live[4] if o.get("output_type") == "display_data"]
    assert len(shown) == 1 and "application/vnd.jupyter.widget-view+json" in shown[0]["data"]  # once, live
    assert (tmp_path / "t.ma.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    (tmp_path / "t.ma.png").unlink()
    batch = _run_cells(cells, {"MT5LAB_NB_BATCH": "1"}, tmp_path)  # make report, the tests
    assert batch[2][0]["text"].strip() == "False"
    shown = [o for o in batch[4] if o.get("output_type") == "display_data"]
    assert len(shown) == 1 and "image/png" in shown[0]["data"]
    assert "application/vnd.jupyter.widget-view+json" not in shown[0]["data"]
    assert (tmp_path / "t.ma.png").exists()


@pytest.mark.slow
def test_interactive_is_off_under_papermill(tmp_path):
    import os
    import subprocess
    import sys

    import nbformat

    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(c) for c in (
        "from mt5lab import notebook",
        f"nb = notebook.start('t', data_dir={str(tmp_path / 'data')!r}, out_dir={str(tmp_path)!r}, interactive=True)",
        "nb.record('interactive', nb.interactive)")])
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nbformat.write(nb, tmp_path / "t.ipynb")
    env = {k: v for k, v in os.environ.items() if k not in ("MPLBACKEND", "MT5LAB_NB_BATCH")}
    env["JUPYTER_PATH"] = str(Path(sys.prefix) / "share" / "jupyter")
    subprocess.run([sys.executable, "-m", "papermill", str(tmp_path / "t.ipynb"), str(tmp_path / "out.ipynb"),
                    "--kernel", "python3", "--no-progress-bar"], env=env, check=True, capture_output=True, timeout=600)
    assert json.loads((tmp_path / "t.records.json").read_text())["interactive"] is False


def test_report_index_shows_parameters_store_and_records_readably(tmp_path):
    from mt5lab.notebook.report import Run, write_index

    (tmp_path / "03_visualize.ipynb").write_text(json.dumps({"metadata": {"papermill": {"parameters": {
        "out_dir": str(tmp_path), "symbol": "EURUSD", "last": 500}}}, "cells": []}))
    rec = Recorder(tmp_path / "03_visualize.records.json")
    rec.record("window", {"rows": 500, "first_bar": datetime(2018, 1, 2, 3, tzinfo=UTC)})
    rec.record("store", {"line": "store: local profile, data dir /x"})
    page = write_index(tmp_path, [Run("03_visualize", True, 1.0)]).read_text()
    assert "parameters: <code>symbol = &quot;EURUSD&quot;</code>, <code>last = 500</code>" in page
    assert str(tmp_path) not in page.split("<h2>")[1].split("parameters")[1].split("</p>")[0]  # no out_dir
    assert "<p>store: local profile, data dir /x</p>" in page
    assert ("<tr><th>window</th><td><code>{&quot;first_bar&quot;: &quot;2018-01-02 03:00&quot;, "
            "&quot;rows&quot;: 500}</code></td></tr>") in page
