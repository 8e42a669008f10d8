"""The research notebooks: conventions (parameters cell, stripped outputs, no logic) and execution.

Every ``notebooks/*.ipynb`` is executed headless with papermill (MPLBACKEND=Agg, progress bars off,
into a temporary directory, with the venv's ``python3`` kernel) and the numbers it records
(``<name>.records.json``) are checked against facts established here independently: the sample CSVs
read with the csv module, the feature spec (6 views, 42 features), calendar arithmetic.
Runs go two at a time in subprocesses, so the whole module takes about as long as the slowest half.
"""

from __future__ import annotations

import csv
import json
import os
import re
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from datetime import date, timedelta
from pathlib import Path

import nbformat
import pytest

ROOT = Path(__file__).resolve().parents[1]
NB_DIR = ROOT / "notebooks"
NOTEBOOKS = sorted(NB_DIR.glob("*.ipynb"))
IDS = [p.stem for p in NOTEBOOKS]
PARAM = re.compile(r"^(?P<name>[a-z_][a-z0-9_]*): (?P<type>str|int|float|bool) = (?P<value>\S.*?)  # (?P<help>\S.*)$")
SECRETISH = re.compile(r"pass|secret|token|dsn|credential|auth", re.IGNORECASE)
LOGIC = re.compile(r"^\s*(def|class|for|while|if|elif|else|try|except|with|lambda|import)\b")
COMMON_PARAMS = {"profile", "data_dir", "out_dir"}


def _nb(path: Path):
    return nbformat.read(path, as_version=4)


def _code(nb):
    return [c for c in nb.cells if c.cell_type == "code"]


# -- conventions --------------------------------------------------------------------------------

def test_the_seven_notebooks_exist_and_each_has_execution_checks():
    prefixes = sorted(p.stem[:2] for p in NOTEBOOKS)
    assert prefixes == ["01", "02", "03", "04", "05", "06", "07"], IDS
    assert set(CHECKS) == set(prefixes), "every notebook needs its checks below"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=IDS)
def test_exactly_one_typed_parameters_cell_first_among_code_cells(path):
    import papermill as pm

    code = _code(_nb(path))
    tagged = [i for i, c in enumerate(code) if "parameters" in c.metadata.get("tags", [])]
    assert tagged == [0], f"{path.name}: parameters cell must be the first code cell and the only one"
    lines = [ln for ln in code[0].source.splitlines() if ln.strip()]
    names = []
    for ln in lines:
        m = PARAM.match(ln)
        assert m, f"{path.name}: not 'name: type = value  # help': {ln!r}"
        assert "=" not in m["help"], f"{path.name}: papermill cannot parse a help text with '=': {ln!r}"
        assert not SECRETISH.search(m["name"]), f"{path.name}: a credential is never a parameter: {m['name']}"
        names.append(m["name"])
    assert COMMON_PARAMS <= set(names), f"{path.name}: every notebook takes {sorted(COMMON_PARAMS)}"
    assert 'profile: str = "local"' in code[0].source, "the default is the embedded offline profile"
    inspected = pm.inspect_notebook(str(path))  # what `papermill --help-notebook` prints
    assert list(inspected) == names
    assert all(p["inferred_type_name"] != "None" and p["help"] for p in inspected.values())


@pytest.mark.parametrize("path", NOTEBOOKS, ids=IDS)
def test_committed_without_outputs_or_execution_counts(path):
    nb = _nb(path)
    for i, c in enumerate(_code(nb)):
        assert c.get("outputs") == [], f"{path.name}: code cell {i} has outputs (run nbstripout)"
        assert c.get("execution_count") is None, f"{path.name}: code cell {i} has an execution count"
        assert "papermill" not in c.metadata and "execution" not in c.metadata, f"{path.name}: cell {i}"
    assert "papermill" not in nb.metadata, f"{path.name}: an executed copy was committed"
    assert nb.metadata["kernelspec"]["name"] == "python3"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=IDS)
def test_no_logic_in_notebooks(path):
    """Imports from mt5lab, then one-line calls: anything else belongs in a tested module."""
    code = _code(_nb(path))
    for i, c in enumerate(code[1:], start=1):
        src = c.source.strip()
        if src.startswith("from mt5lab import "):
            continue
        assert "\n" not in src, f"{path.name}: code cell {i} has more than one line"
        assert not LOGIC.match(src), f"{path.name}: code cell {i} holds logic: {src!r}"


def test_precommit_strips_notebook_outputs():
    text = (ROOT / ".pre-commit-config.yaml").read_text()
    assert "nbstripout" in text


# -- execution --------------------------------------------------------------------------------

# Each run gets its own store (MT5LAB_DATA_DIR under its output directory); the samples are loaded
# only where asked (samples=True), as a user would ask for them.
VARIANTS: dict[str, tuple[str, dict]] = {name: (name, {"ingest": True} if name.startswith("01") else {"samples": True})
                                         for name in IDS}


@pytest.fixture(scope="module")
def bad_csv(tmp_path_factory) -> Path:
    p = tmp_path_factory.mktemp("input") / "eurusd_h1_bad.csv"
    p.write_text("time,open,high,low,close,tick_volume\n"
                 "2024-01-02 10:00,1.1,1.2,1.0,1.1,5\n"
                 "2024-01-02 11:00,1.1,1.2,1.0,1.1,-5\n"  # data row 2: negative tick volume
                 "2024-01-02 12:00,1.1,1.0,1.2,1.1,5\n"  # row 3: high below low, so open and close outside
                 "2024-01-02 13:00,1.1,1.2,1.0,1.3,5\n")  # row 4: close above high
    return p


def _papermill(nb: Path, out: Path, params: dict, data_dir: str | None = None,
               cwd: Path | None = None) -> tuple[dict, Path, str]:
    out.mkdir(parents=True, exist_ok=True)
    env = dict(os.environ, MPLBACKEND="Agg", TQDM_DISABLE="1", MT5LAB_NB_OUT=str(out),
               JUPYTER_PATH=str(Path(sys.prefix) / "share" / "jupyter"),
               MT5LAB_DATA_DIR=data_dir if data_dir is not None else str(out / "data"))
    env.pop("MT5LAB_PROFILE", None)
    cmd = [sys.executable, "-m", "papermill", str(nb), str(out / nb.name), "--kernel", "python3",
           "--no-progress-bar", "--cwd", str(cwd or out), "-p", "out_dir", str(out)]
    for k, v in params.items():
        cmd += ["-p", k, str(v)]
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=900)
    records_file = out / f"{nb.stem}.records.json"
    records = json.loads(records_file.read_text()) if records_file.exists() else {}
    return records, out, "" if proc.returncode == 0 else proc.stderr[-3000:]


REPLAY_BARS, REPLAY_WARM, REPLAY_SYMBOLS = 40, 6, ("GBPUSD", "AUDUSD")  # 40 H1 bars: Wed 09:00 to Fri 00:00


@pytest.fixture(scope="module")
def replay_file(tmp_path_factory) -> Path:
    """Two symbols no sample has (EURUSD's first REPLAY_BARS H1 bars, rescaled), as a parquet export."""
    import polars as pl

    from mt5lab.bars.samples import load_sample

    eur = load_sample("EURUSD").head(REPLAY_BARS).drop("timeframe")
    path = tmp_path_factory.mktemp("input") / "two_h1.parquet"
    pl.concat([eur.with_columns(pl.lit(s).alias("symbol"), *(pl.col(c) * k for c in ("open", "high", "low", "close")))
               for s, k in zip(REPLAY_SYMBOLS, (1.17, 0.75), strict=True)]).write_parquet(path)
    return path


@pytest.fixture(scope="module")
def runs(tmp_path_factory, bad_csv, replay_file):
    """All executions, started together two at a time; each test waits for its own."""
    base = tmp_path_factory.mktemp("notebooks")
    jobs = {name: (NB_DIR / f"{nb}.ipynb", params) for name, (nb, params) in VARIANTS.items()}
    jobs["01_bad_file"] = (NB_DIR / f"{IDS[0]}.ipynb", {"path": str(bad_csv), "symbol": "EURUSD", "timeframe": "H1",
                                                        "ingest": True})
    jobs["03_eurusd_h1"] = (NB_DIR / f"{IDS[2]}.ipynb", {"symbol": "EURUSD", "timeframe": "H1", "samples": True})
    jobs["05_replay"] = (NB_DIR / f"{IDS[4]}.ipynb", {"samples": True, "replay": str(replay_file), "replay_speed": 36000,
                                                      "replay_warm": REPLAY_WARM})
    pool = ThreadPoolExecutor(max_workers=2)
    futures = {"03_user_store": pool.submit(_user_store_run, base / "03_user_store")}
    futures |= {k: pool.submit(_papermill, nb, base / k, params) for k, (nb, params) in jobs.items()}
    yield futures
    pool.shutdown(wait=True, cancel_futures=True)


USER_SYMBOL, USER_BARS = "ACME", 300


def _user_bars(path: Path) -> Path:
    """USER_BARS weekday D1 bars of a symbol no sample has, written as a plain CSV."""
    day, rows = date(2021, 1, 4), []
    while len(rows) < USER_BARS:
        if day.weekday() < 5:
            c = 100 + len(rows) % 17
            rows.append(f"{day.isoformat()},{c},{c + 2},{c - 2},{c + 1},{1000 + len(rows)}")
        day += timedelta(days=1)
    path.write_text("time,open,high,low,close,tick_volume\n" + "\n".join(rows) + "\n")
    return path


def _user_store_run(out: Path) -> tuple[dict, Path, str]:
    """The day-one journey: `mt5lab ingest` + `build` into a store, then notebook 03 run the way
    JupyterLab runs it (cwd notebooks/), told about the store only by MT5LAB_DATA_DIR, given
    *relative to the checkout* (from notebooks/ the same relative path is another directory)."""
    store = out / "user_data"
    out.mkdir(parents=True)
    rel = os.path.relpath(store, ROOT)
    env = dict(os.environ, MT5LAB_DATA_DIR=rel, TQDM_DISABLE="1")
    env.pop("MT5LAB_PROFILE", None)
    mt5lab = [sys.executable, "-m", "mt5lab.cli"]
    for args in (["ingest", str(_user_bars(out / "acme_d1.csv")), "--symbol", USER_SYMBOL, "--timeframe", "D1",
                  "--calendar", "equity"], ["build", "--timeframe", "D1"]):
        proc = subprocess.run(mt5lab + args, env=env, cwd=ROOT, capture_output=True, text=True, timeout=600)
        if proc.returncode:
            return {}, out, f"mt5lab {args[0]}: {proc.stderr[-2000:]}"
    assert (store / "offline").is_dir(), "the CLI wrote the store where the relative path points from the checkout"
    had_nb_data = (NB_DIR / "data").exists()
    rec, out, err = _papermill(NB_DIR / f"{IDS[2]}.ipynb", out, {"symbol": USER_SYMBOL, "timeframe": "D1"},
                               data_dir=rel, cwd=NB_DIR)
    if not had_nb_data and (NB_DIR / "data").exists():
        err += "\nthe notebook created notebooks/data (a store relative to its cwd)"
    return rec, out, err


def _first_output_line(executed: Path) -> str:
    nb = nbformat.read(executed, as_version=4)
    outputs = [o for c in _code(nb) for o in c.get("outputs", [])]
    assert outputs and outputs[0].get("output_type") == "stream", "the first output is the store line"
    return outputs[0]["text"].splitlines()[0]


def test_a_notebook_in_notebooks_dir_reads_the_cli_store(runs):
    rec, out = _done(runs, "03_user_store")
    store = (out / "user_data").resolve()
    assert rec["store"]["data_dir"] == str(store)
    assert rec["store"]["holdings"] == {"D1": [USER_SYMBOL]}, "only what the CLI ingested: no samples"
    assert "seed" not in rec
    assert rec["window"]["rows"] == 250 and rec["window"]["first_bar"] > "2021"
    line = _first_output_line(out / f"{IDS[2]}.ipynb")
    assert line == f"store: local profile, data dir {store} · D1: {USER_SYMBOL}"


def _done(runs, key):
    records, out, err = runs[key].result()
    assert not err, f"{key} failed:\n{err}"
    assert records.get("notebook"), f"{key}: recorded nothing"
    return records, out


def _common(rec: dict, out: Path, stem: str):
    assert rec["notebook"] == stem
    assert rec["profile"] == "local"
    assert rec["python_prefix"] == sys.prefix, "the kernel must be the venv's Python"
    assert rec["elapsed_s"] > 0
    assert rec["figures"], "every notebook shows at least one figure"
    for f in rec["figures"]:
        png = (out / f).read_bytes()
        assert png[:8] == b"\x89PNG\r\n\x1a\n" and len(png) > 20_000, f
    executed = (out / f"{stem}.ipynb").read_text()
    assert '"output_type": "error"' not in executed
    line = _first_output_line(out / f"{stem}.ipynb")
    assert line == rec["store"]["line"] and line.startswith(f"store: local profile, data dir {out / 'data'}")
    assert "datetime.datetime(" not in executed and "ZoneInfo(" not in executed, "records shown as raw dicts"


# Facts about the bundled samples, read independently of mt5lab's readers.
def _sample_dates(name: str) -> list[str]:
    from mt5lab.bars.samples import sample_path

    with open(sample_path(name)) as fh:
        return [row[0] for row in list(csv.reader(fh))[1:]]


GOOG = _sample_dates("GOOG")
EURUSD = _sample_dates("EURUSD")


def _weekdays(first: date, last: date) -> list[date]:
    return [first + timedelta(days=i) for i in range((last - first).days + 1)
            if (first + timedelta(days=i)).weekday() < 5]


GOOG_WEEKDAYS = _weekdays(date.fromisoformat(GOOG[0]), date.fromisoformat(GOOG[-1]))
# The calendar knows NYSE's regular holidays: the only weekdays missing from GOOG are NYSE's ad-hoc
# closures (President Ford's day of mourning, 2 January 2007; Hurricane Sandy, 29-30 October 2012)
GOOG_ADHOC = {date(2007, 1, 2), date(2012, 10, 29), date(2012, 10, 30)}
GOOG_MISSING = len(GOOG_ADHOC)
GOOG_EXPECTED = len(GOOG) + len(GOOG_ADHOC)  # every other expected day has its bar


def check_01(rec, out, runs):
    v = rec["validation"]
    assert (v["rows"], v["rejected"], v["calendar"]) == (len(GOOG), 0, "equity")
    assert v["missing_bars"] == GOOG_MISSING
    assert v["first_time"].startswith(GOOG[0]) and v["last_time"].startswith(GOOG[-1])
    assert rec["calendar"][0]["expected bars"] == GOOG_EXPECTED
    assert GOOG_ADHOC <= set(GOOG_WEEKDAYS) - {date.fromisoformat(d) for d in GOOG}
    assert rec["ingest"]["written"] is True
    assert rec["store_counts"] == {"bars_d1": len(GOOG)}
    bad, bad_out = _done(runs, "01_bad_file")
    _common(bad, bad_out, IDS[0])
    assert bad["validation"]["rejected"] == 3 and bad["validation"]["violations"] == 5
    assert bad["validation"]["rule"] == "negative tick_volume"
    assert [(r["source_row"], r["rule"]) for r in bad["rejected"]] == [
        (2, "negative tick_volume"), (3, "high below low"), (3, "open outside low-high"),
        (3, "close outside low-high"), (4, "close outside low-high")], "every violation in one run"
    assert bad["ingest"]["written"] is False
    assert bad["store_counts"] == {}, "a rejected file writes nothing"


def check_02(rec, out, runs):
    assert rec["apply"]["views"] == 6 and rec["apply"]["features"] == 42 and rec["apply"]["services"] == 1
    chk = rec["registry_check"]
    assert (chk["views"], chk["features"]) == (6, 42)
    assert chk["ttl_h"] == 5 * 24 + 24  # longest normal closure (Xetra's Christmas, 5 days) plus one D1 bar
    for k in ("missing_in_registry", "unknown_in_registry", "dtype_mismatches", "view_mismatches",
              "ttl_mismatches"):
        assert chk[k] == 0, k
    svc = rec["service"]
    assert (svc["name"], svc["views"], svc["features"]) == ("mt5_v1", 6, 42)


def check_03(rec, out, runs):
    assert all(f.startswith("03_visualize.GOOG_D1_auto.") for f in rec["figures"]), "figure names carry the parameters"
    w = rec["window"]
    assert w["rows"] == 250
    assert w["last_bar"].startswith(GOOG[-1]) and w["max_event_timestamp"].startswith("2013-03-02T00:00")
    assert rec["correlation"]["features"] == 42
    assert {"spread", "tick_volume"} <= set(rec["correlation"]["undefined"])  # null / constant 0 on GOOG
    assert len(rec["figures"]) == 6  # five views (ohlcv drawn as candles) + the heatmap
    fx, fx_out = _done(runs, "03_eurusd_h1")  # the README's example
    _common(fx, fx_out, IDS[2])
    assert fx["window"]["rows"] == 250
    assert all(f.startswith("03_visualize.EURUSD_H1_auto.") for f in fx["figures"])
    assert fx["window"]["last_bar"].startswith(EURUSD[-1].replace(" ", "T"))
    assert {"spread", "real_volume"} <= set(fx["correlation"]["undefined"])  # FX: real volume is 0


def check_04(rec, out, runs):
    from mt5lab.catalog import BY_NAME

    ts = rec["training_set"]
    n = len(GOOG)
    assert (ts["rows"], ts["features"]) == (n, 42)  # one decision per GOOG bar close
    assert ts["labels"] == ["fwd_return_5", "fwd_direction_5"]
    la = rec["lookahead"]
    assert la["mismatches"] == 0 and la["rows_checked"] == 60 and la["values_compared"] == 60 * 42
    assert la["leak_detected"] > 0, "the check must be able to see a one-bar leak"
    assert rec["split_label_overlaps"] == 0
    splits = {s["split"]: s["rows"] for s in rec["splits"]}
    assert sum(splits.values()) == n
    assert splits["train"] > splits["validation"] > 0 and splits["test"] > 0
    labels = {d["label"]: d for d in rec["label_distribution"]}
    assert labels["fwd_return_5"]["nulls"] == 5  # the last five decisions have no 5-bar horizon
    assert rec["null_share"]["spread"] == 1.0 and rec["null_share"]["close"] == 0.0
    assert rec["warmup_share"]["ema_50"] == round(BY_NAME["ema_50"].warmup / n, 4)


def check_05(rec, out, runs):
    eq = rec["equality"]
    assert (eq["symbols"], eq["compared"]) == (2, 84)
    assert eq["mismatches_mt5lab"] == 0 and eq["mismatches_feast"] == 0 and eq["event_timestamps_equal"]
    mat = {m["timeframe"]: m["latest_event"] for m in rec["materialize"]}
    assert mat["D1"].startswith("2013-03-02T00:00")  # GOOG's last bar (2013-03-01) closes a day later
    assert mat["H1"].startswith("2018-02-07T16:00")  # EURUSD's last bar (15:00) closes an hour later
    st = rec["online_status"]
    assert st["XAUUSD D1"] == "missing" and st["XAUUSD H1"] == "missing"
    assert st["GOOG D1"] == "expired" and st["EURUSD H1"] == "expired"  # years old, read now
    assert {f["status"] for f in rec["freshness_live"]} == {"fresh"}
    fresh = {(f["symbol"], f["timeframe"]): f["status"] for f in rec["freshness"]}
    assert fresh == {(s, tf): ("expired" if (s, tf) in {("GOOG", "D1"), ("EURUSD", "H1")} else "missing")
                     for s in ("GOOG", "EURUSD", "XAUUSD") for tf in ("D1", "H1")}, "the table honours symbols"
    by_symbol: dict[str, list[str]] = {}
    for r in rec["weekend"]:
        by_symbol.setdefault(r["symbol"], []).append(r["status"])
    assert by_symbol == {s: ["fresh", "fresh", "fresh", "stale", "expired"] for s in ("GOOG", "EURUSD")}
    assert "replay" not in rec and not any("replay" in f for f in rec["figures"]), "no replay by default"
    check_05_replay(rec, runs)


def check_05_replay(default, runs):
    """05 with a file replayed through follow (0.1 s per H1 bar): the snapshots show the store catching
    up, and at the end every bar of the file is stored and the newest online bar is the file's last."""
    import polars as pl

    rec, out = _done(runs, "05_replay")
    _common(rec, out, IDS[4])
    assert rec["equality"] == default["equality"], "the replay runs after the default sections, which it leaves as they were"
    r = rec["replay"]
    times = pl.read_parquet(r["file"])["time"].unique().sort()  # the file's bar opens (both symbols share them)
    assert times.len() == REPLAY_BARS
    n, hour = len(REPLAY_SYMBOLS), timedelta(hours=1)
    assert (r["bars_in_file"], r["bars_written"]) == (n * REPLAY_BARS, n * REPLAY_BARS)
    assert (r["first_cycle_bars"], r["live_bars"]) == (n * REPLAY_WARM, n * (REPLAY_BARS - REPLAY_WARM))
    assert r["cycles"] == REPLAY_BARS - REPLAY_WARM + 1 and r["stopped"] == "end of replay" and r["failing"] == []
    assert r["stored_feature_rows"] == dict.fromkeys(REPLAY_SYMBOLS, REPLAY_BARS)  # read back from the offline store
    last_close = (times[-1] + hour).isoformat()
    assert r["newest_online"] == dict.fromkeys(sorted(REPLAY_SYMBOLS), last_close)
    assert r["online_status"] == r["freshness"] == dict.fromkeys(sorted(REPLAY_SYMBOLS), "fresh")
    # four snapshots, taken while bars arrived: after the catch-up, evenly spaced, at the file's end
    assert r["snapshots"] == 4
    assert r["snapshot_clocks"][0] == (times[REPLAY_WARM - 1] + hour).isoformat() and r["snapshot_clocks"][-1] == last_close
    assert r["snapshot_clocks"] == sorted(set(r["snapshot_clocks"]))
    written = r["snapshot_bars_written"]
    assert written[0] == n * REPLAY_WARM and written[-1] == n * REPLAY_BARS and written == sorted(set(written))
    assert 0 < r["latency_ms_p50"] <= r["latency_ms_max"]
    assert [f for f in rec["figures"] if "replay" in f] == ["05_online_serving.D1-H1.replay_progress.png"]


def check_06(rec, out, runs):
    d = rec["drift"]
    assert d["features"] == 42 and sum(d["counts"].values()) == 42
    assert "close" in d["drift"], "a trending price level must drift between 2004-09 and 2012-13"
    # GOOG's sample has exchange volume and no ticks or spread: tick_volume is 0 throughout, a constant
    assert d["insufficient"] == ["spread", "tick_volume"]
    assert all(v is not None for k, v in d["psi"].items() if k not in ("spread", "tick_volume"))
    from mt5lab.catalog import BY_NAME

    assert len(d["top_scale_free"]) == 3 and len(d["top_level"]) == 3
    bar_columns = {"open", "high", "low", "close", "tick_volume", "real_volume", "spread"}
    assert all(BY_NAME[f].scale in ("percent", "ratio", None) and f not in bar_columns for f in d["top_scale_free"])
    assert all(BY_NAME[f].scale in ("price", "volume") or f in bar_columns for f in d["top_level"])
    top = [d["psi"][f] for f in d["top_level"]]
    assert top == sorted(top, reverse=True)
    win = {w["window"]: w["bars"] for w in rec["windows"]}
    assert win == {"reference": int(len(GOOG) * 0.6), "recent": 250}
    q = rec["quality_totals"]
    assert (q["bars"], q["missing_bars"]) == (len(GOOG), GOOG_MISSING)
    assert q["periods"] == 35  # quarters 2004Q3 .. 2013Q1


def check_07(rec, out, runs):
    ev = rec["evaluation"]
    assert ev["rows"] == len(GOOG)  # one decision per GOOG bar close, none dropped
    assert ev["nulls"]["label_null_rows"] == 5 and ev["nulls"]["rows"] == len(GOOG) - 5  # counted, not dropped
    assert ev["nulls"]["rows_with_null_features"] == len(GOOG) - 5  # GOOG has no spread: every row has a null
    assert ev["config"]["cv"] == "walk-forward" and ev["config"]["embargo"] == 5
    assert len(ev["folds"]) == 5 and all(f["test_rows"] > 0 for f in ev["folds"])
    assert sum(f["test_rows"] for f in ev["folds"]) == ev["scored_rows"] + sum(  # every test row scored once
        f["test_rows"] - f["test_rows_with_label"] for f in ev["folds"])
    # a 5-bar label: the last 4 training rows' labels end after the test starts (the 5th ends exactly at it)
    assert all(f["purged"] == 4 for f in ev["folds"])
    assert set(ev["importance_by_view"]) == {"ohlcv_features", "technical_indicators_ma",
                                             "technical_indicators_momentum", "technical_indicators_volatility",
                                             "volume_indicators", "price_action"}
    assert len(ev["importance_by_feature"]) == 42
    assert rec["trials"]["n_trials"] == 1  # a fresh data dir: this run is the experiment's only trial
    assert ev["dsr"] == ev["psr"]  # one trial: no selection to deflate for (expected maximum Sharpe 0)
    assert 0 <= ev["psr"] <= 1 and ev["periods"] > 0
    assert len(rec["figures"]) == 5


CHECKS = {"01": check_01, "02": check_02, "03": check_03, "04": check_04, "05": check_05, "06": check_06,
          "07": check_07}


@pytest.mark.slow
@pytest.mark.parametrize("path", NOTEBOOKS, ids=IDS)
def test_notebook_executes_and_records_the_numbers(path, runs):
    rec, out = _done(runs, path.stem)
    _common(rec, out, path.stem)
    CHECKS[path.stem[:2]](rec, out, runs)


@pytest.mark.slow
def test_a_watched_replay_stops_between_bars_on_its_stop_event(replay_file, tmp_path, monkeypatch):
    """``replay_stop_after``: the follower is stopped by the stop event after that many live bar
    closes, with everything up to there written and the rest of the file not."""
    import polars as pl

    from mt5lab import notebook
    from mt5lab.notebook import live
    from tests.conftest import reset_caches

    monkeypatch.setenv("MT5LAB_DATA_DIR", str(tmp_path / "data"))  # start() sets it; restored after
    monkeypatch.delenv("MT5LAB_PROFILE", raising=False)
    reset_caches()
    try:
        nb = notebook.start("05_online_serving", data_dir=str(tmp_path / "data"), out_dir=str(tmp_path))
        run = live.start(nb, str(replay_file), timeframe="H1", speed=0, stop_after=5, snapshots=4)
        run.watch()
        run.record()
        r = nb.recorder.values["replay"]
        n = len(REPLAY_SYMBOLS)
        assert r["stopped"] == "stop" and r["cycles"] == 6 and r["bars_written"] == 6 * n
        assert r["stored_feature_rows"] == dict.fromkeys(REPLAY_SYMBOLS, 6)  # and no bar after the stop
        assert (r["first_cycle_bars"], r["live_bars"]) == (n, 5 * n)  # empty store: from the first bar
        sixth_close = (pl.read_parquet(replay_file)["time"].unique().sort()[5] + timedelta(hours=1)).isoformat()
        assert set(r["newest_online"].values()) == {sixth_close} and r["snapshot_clocks"][-1] == sixth_close
        assert nb.store.read_bars("H1").height == 6 * n
        assert live.start(nb, "").watch() is None and live.start(nb, "").record() is None  # no replay: nothing
    finally:
        reset_caches()
