"""The embedded Parquet store: upserts, idempotency, all-or-nothing writes, symbols as data."""

from __future__ import annotations

import hashlib
import os
from datetime import UTC, datetime

import polars as pl
import pytest

from mt5lab.bars.samples import load_sample
from mt5lab.features.build import feature_rows
from mt5lab.storage.local import LocalStore


def _digest(root) -> dict[str, str]:
    out = {}
    for dirpath, _, files in os.walk(root):
        for f in files:
            p = os.path.join(dirpath, f)
            out[os.path.relpath(p, root)] = hashlib.sha256(open(p, "rb").read()).hexdigest()
    return out


def test_bars_upsert_is_idempotent(tmp_path):
    st = LocalStore(tmp_path)
    bars = load_sample("GOOG")
    first = st.write_bars(bars)
    assert (first.inserted, first.updated, first.unchanged) == (bars.height, 0, 0)
    before = _digest(tmp_path)
    again = st.write_bars(bars)
    assert (again.inserted, again.updated, again.unchanged) == (0, 0, bars.height)
    assert _digest(tmp_path) == before, "re-ingesting the same bars rewrote a file"
    assert st.read_bars("D1").equals(bars.sort(["symbol", "time"]))


def test_revised_bar_is_updated_not_duplicated(tmp_path):
    st = LocalStore(tmp_path)
    bars = load_sample("GOOG")
    st.write_bars(bars)
    revised = bars.tail(1).with_columns(pl.col("close") * 1.001)
    res = st.write_bars(revised)
    assert (res.inserted, res.updated) == (0, 1)
    stored = st.read_bars("D1")
    assert stored.height == bars.height
    assert stored["close"][-1] == pytest.approx(bars["close"][-1] * 1.001)


def test_unchanged_feature_rows_keep_created_timestamp(tmp_path):
    st = LocalStore(tmp_path)
    bars = load_sample("GOOG")
    t1 = datetime(2024, 1, 1, tzinfo=UTC)
    t2 = datetime(2024, 6, 1, tzinfo=UTC)
    st.write_features("D1", feature_rows(bars, "D1", created=t1))
    res = st.write_features("D1", feature_rows(bars, "D1", created=t2))
    assert res.changed == 0
    assert st.read_features("D1")["created_timestamp"].unique().to_list() == [t1]


def test_symbols_never_become_paths(tmp_path):
    st = LocalStore(tmp_path)
    nasty = ["../../etc/passwd", "'; DROP TABLE market_data.ohlcv_d1; --", "EUR/USD", "日本円"]
    frames = [load_sample("GOOG").head(3).with_columns(pl.lit(s).alias("symbol")) for s in nasty]
    st.write_bars(pl.concat(frames))
    files = [os.path.relpath(os.path.join(d, f), tmp_path) for d, _, fs in os.walk(tmp_path) for f in fs]
    assert sorted(f for f in files if f != ".mt5lab.lock") == [
        "offline/.generation/D1", "offline/bars/timeframe=D1/bars.parquet"]
    assert sorted(st.read_bars("D1")["symbol"].unique().to_list()) == sorted(nasty)


_FULL_DISK = """
import resource, signal, sys
import polars as pl
from mt5lab.errors import StoreError
from mt5lab.bars.samples import load_sample
from mt5lab.storage.local import LocalStore
signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
resource.setrlimit(resource.RLIMIT_FSIZE, (4096, 4096))  # the disk is 'full' past 4 KiB per file
try:
    LocalStore(sys.argv[1]).write_bars(load_sample("GOOG").with_columns(pl.col("close") * 2))
except StoreError as exc:
    print("STORE-ERROR", exc)
    sys.exit(3)
"""


def test_failed_write_leaves_store_unchanged(tmp_path):
    import subprocess
    import sys

    st = LocalStore(tmp_path)
    st.write_bars(load_sample("GOOG"))
    before = _digest(tmp_path)
    proc = subprocess.run([sys.executable, "-c", _FULL_DISK, str(tmp_path)], capture_output=True,
                          text=True, timeout=120)
    assert proc.returncode == 3, proc.stderr
    assert "STORE-ERROR cannot write" in proc.stdout
    assert _digest(tmp_path) == before, "a failed write changed the store"
    assert not list(st.bars_path("D1").parent.glob(".tmp-*")), "a temp file was left behind"


def test_write_token_moves_with_every_changing_write_only(tmp_path):
    """The generation is replaced by each changing write (so mtime granularity or a reused inode
    cannot hide one) and left alone by a write that changes nothing."""
    st = LocalStore(tmp_path)
    bars = load_sample("GOOG").head(5)
    assert st.write_token("D1") == (None, None, None)
    st.write_bars(bars)
    first = st.write_token("D1")
    st.write_bars(bars)  # unchanged
    assert st.write_token("D1") == first
    st.write_bars(bars.with_columns(pl.col("tick_volume") + 1))  # same size, a revision
    second = st.write_token("D1")
    assert second[0] is not None and second[0] != first[0]
