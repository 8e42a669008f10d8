"""The console script, as a user runs it: real subprocesses, real files."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from mt5lab import catalog

ROOT = Path(__file__).resolve().parents[1]
MT5LAB = [sys.executable, "-m", "mt5lab.cli"]


def run(args, data_dir, **env):
    e = {**os.environ, "MT5LAB_DATA_DIR": str(data_dir), "TQDM_DISABLE": "1", **env}
    e.pop("MT5LAB_PROFILE", None) if "MT5LAB_PROFILE" not in env else None
    return subprocess.run([*MT5LAB, *args], capture_output=True, text=True, env=e, timeout=600, cwd=ROOT)


def test_cli_pipeline_and_online_json(tmp_path):
    d = tmp_path / "data"
    assert run(["ingest", "--sample"], d).returncode == 0
    out = run(["build"], d)
    assert out.returncode == 0, out.stderr
    assert "D1: 2148 new" in out.stdout and "H1: 5000 new" in out.stdout
    out = run(["apply"], d)
    assert out.returncode == 0, out.stderr
    assert out.stdout.count("6 views, 42 features, 1 feature service") == 2
    out = run(["materialize"], d)
    assert out.returncode == 0, out.stderr
    # As of the sample's last H1 bar close: every view fresh, every feature there (the samples carry no
    # spread). Per view its event timestamp and status, as online_features returns them.
    out = run(["online", "EURUSD", "--timeframe", "H1", "--json", "--now", "2018-02-07T16:00:00Z"], d)
    assert out.returncode == 0, out.stderr
    rows = json.loads(out.stdout)
    assert rows[0]["symbol"] == "EURUSD"
    views = {f"{v}__{c}" for v in catalog.VIEW_NAMES for c in ("event_timestamp", "status")}
    assert set(rows[0]) == {"symbol", *catalog.FEATURE_NAMES, *views, "status"}
    missing = [f for f in catalog.FEATURE_NAMES if rows[0][f] is None and f != "spread"]
    assert missing == []
    assert rows[0]["status"] == "fresh"
    assert rows[0]["price_action__event_timestamp"] == "2018-02-07T16:00:00+00:00"


def test_ingest_summary_names_each_file(tmp_path):
    d = tmp_path / "data"
    a, b = tmp_path / "jan.csv", tmp_path / "feb.csv"
    a.write_text("time,open,high,low,close,tick_volume\n"
                 "2024-01-02,1.1,1.2,1.0,1.15,10\n"
                 "2024-01-03,1.1,1.2,1.0,1.15,10\n")
    b.write_text("time,open,high,low,close,tick_volume\n"
                 "2024-02-01,1.1,1.2,1.0,1.15,10\n"
                 "2024-02-02,1.1,1.2,1.0,1.15,10\n"
                 "2024-02-05,1.1,1.2,1.0,1.15,10\n")
    out = run(["ingest", str(a), str(b), "--symbol", "EURUSD", "--timeframe", "D1"], d)
    assert out.returncode == 0, out.stderr
    lines = out.stdout.splitlines()
    assert lines[0].startswith(f"{a}: 2 rows, "), lines
    assert lines[1].startswith(f"{b}: 3 rows, "), lines
    assert lines[2] == "ingested 5 bars: 5 new, 0 revised, 0 unchanged"
    out = run(["ingest", "--sample", "GOOG"], d)
    assert out.returncode == 0, out.stderr
    assert out.stdout.startswith("sample:GOOG: 2148 rows, "), out.stdout


def test_errors_are_one_line_with_nonzero_exit(tmp_path):
    d = tmp_path / "data"
    out = run(["ingest", str(tmp_path / "nope.csv"), "--symbol", "X", "--timeframe", "D1"], d)
    assert out.returncode != 0
    assert out.stderr.strip().splitlines() == [out.stderr.strip()], out.stderr
    assert out.stderr.startswith("error:") and "nope.csv" in out.stderr
    assert "Traceback" not in out.stderr
    out = run(["build"], d, MT5LAB_PROFILE="nope")
    assert out.returncode == 3
    assert out.stderr.strip() == ("error: unknown profile 'nope'; expected one of: local, postgres")


def test_bad_file_writes_nothing(tmp_path):
    d = tmp_path / "data"
    bad = tmp_path / "bad.csv"
    bad.write_text("time,open,high,low,close,tick_volume\n"
                   "2024-01-02,1.1,1.2,1.0,1.15,10\n"
                   "2024-01-03,1.1,1.0,1.2,1.15,10\n")  # high < low on data row 2
    out = run(["ingest", str(bad), "--symbol", "EURUSD", "--timeframe", "D1"], d)
    assert out.returncode == 2, out.stderr
    assert "bad.csv: row 2:" in out.stderr
    assert not (d / "offline").exists()


def test_feast_cli_reads_the_same_repo(tmp_path):
    """`feast apply` on feature_repo/ registers exactly what `mt5lab apply` does."""
    env = {**os.environ, "MT5LAB_DATA_DIR": str(tmp_path / "data")}
    feast = Path(sys.executable).parent / "feast"
    out = subprocess.run([str(feast), "-c", "feature_repo", "apply"], capture_output=True, text=True,
                         env=env, cwd=ROOT, timeout=600)
    assert out.returncode == 0, out.stderr[-2000:]
    out = subprocess.run([str(feast), "-c", "feature_repo", "feature-views", "list"], capture_output=True,
                         text=True, env=env, cwd=ROOT, timeout=600)
    assert out.returncode == 0, out.stderr[-2000:]
    for name in catalog.VIEW_NAMES:
        assert name in out.stdout
