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

def test_the_six_notebooks_exist_and_each_has_execution_checks():
    prefixes = sorted(p.stem[:2] for p in NOTEBOOKS)
    assert prefixes == ["01", "02", "03", "04", "05", "06"], IDS
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

VARIANTS: dict[str, tuple[str, dict]] = {name: (name, {}) for name in IDS}


@pytest.fixture(scope="module")
def bad_csv(tmp_path_factory) -> Path:
    p = tmp_path_factory.mktemp("input") / "eurusd_h1_bad.csv"
    p.write_text("time,open,high,low,close,tick_volume\n"
                 "2024-01-02 10:00,1.1,1.2,1.0,1.1,5\n"
                 "2024-01-02 11:00,1.1,1.2,1.0,1.1,5\n"
                 "2024-01-02 12:00,1.1,1.0,1.2,1.1,5\n")  # data row 3: high below low
    return p


def _papermill(nb: Path, out: Path, params: dict) -> tuple[dict, Path, str]:
    out.mkdir(parents=True, exist_ok=True)
    env = dict(os.environ, MPLBACKEND="Agg", TQDM_DISABLE="1", MT5LAB_NB_OUT=str(out),
               JUPYTER_PATH=str(Path(sys.prefix) / "share" / "jupyter"))
    env.pop("MT5LAB_PROFILE", None)
    env.pop("MT5LAB_DATA_DIR", None)
    cmd = [sys.executable, "-m", "papermill", str(nb), str(out / nb.name), "--kernel", "python3",
           "--no-progress-bar", "--cwd", str(out), "-p", "out_dir", str(out)]
    for k, v in params.items():
        cmd += ["-p", k, str(v)]
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=900)
    records_file = out / f"{nb.stem}.records.json"
    records = json.loads(records_file.read_text()) if records_file.exists() else {}
    return records, out, "" if proc.returncode == 0 else proc.stderr[-3000:]


@pytest.fixture(scope="module")
def runs(tmp_path_factory, bad_csv):
    """All executions, started together two at a time; each test waits for its own."""
    base = tmp_path_factory.mktemp("notebooks")
    jobs = {name: (NB_DIR / f"{nb}.ipynb", params) for name, (nb, params) in VARIANTS.items()}
    jobs["01_bad_file"] = (NB_DIR / f"{IDS[0]}.ipynb", {"path": str(bad_csv), "symbol": "EURUSD", "timeframe": "H1"})
    jobs["03_eurusd_h1"] = (NB_DIR / f"{IDS[2]}.ipynb", {"symbol": "EURUSD", "timeframe": "H1"})
    pool = ThreadPoolExecutor(max_workers=2)
    futures = {k: pool.submit(_papermill, nb, base / k, params) for k, (nb, params) in jobs.items()}
    yield futures
    pool.shutdown(wait=True, cancel_futures=True)


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
    assert bad["validation"]["rejected"] == 1
    assert bad["validation"]["rule"] == "high below low"
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
    w = rec["window"]
    assert w["rows"] == 250
    assert w["last_bar"].startswith(GOOG[-1]) and w["max_event_timestamp"].startswith("2013-03-02T00:00")
    assert rec["correlation"]["features"] == 42
    assert {"spread", "tick_volume"} <= set(rec["correlation"]["undefined"])  # null / constant 0 on GOOG
    assert len(rec["figures"]) == 6  # five views (ohlcv drawn as candles) + the heatmap
    fx, fx_out = _done(runs, "03_eurusd_h1")  # the README's example
    _common(fx, fx_out, IDS[2])
    assert fx["window"]["rows"] == 250
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
    by_symbol: dict[str, list[str]] = {}
    for r in rec["weekend"]:
        by_symbol.setdefault(r["symbol"], []).append(r["status"])
    assert by_symbol == {s: ["fresh", "fresh", "fresh", "stale", "expired"] for s in ("GOOG", "EURUSD")}


def check_06(rec, out, runs):
    d = rec["drift"]
    assert d["features"] == 42 and sum(d["counts"].values()) == 42
    assert "close" in d["drift"], "a trending price level must drift between 2004-09 and 2012-13"
    assert d["insufficient"] == ["spread"]
    assert all(v is not None for k, v in d["psi"].items() if k != "spread")
    win = {w["window"]: w["bars"] for w in rec["windows"]}
    assert win == {"reference": int(len(GOOG) * 0.6), "recent": 250}
    q = rec["quality_totals"]
    assert (q["bars"], q["missing_bars"]) == (len(GOOG), GOOG_MISSING)
    assert q["periods"] == 35  # quarters 2004Q3 .. 2013Q1


CHECKS = {"01": check_01, "02": check_02, "03": check_03, "04": check_04, "05": check_05, "06": check_06}


@pytest.mark.slow
@pytest.mark.parametrize("path", NOTEBOOKS, ids=IDS)
def test_notebook_executes_and_records_the_numbers(path, runs):
    rec, out = _done(runs, path.stem)
    _common(rec, out, path.stem)
    CHECKS[path.stem[:2]](rec, out, runs)
