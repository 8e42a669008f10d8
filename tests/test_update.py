"""Incremental update: replay the real samples bar by bar and in random batches, on both profiles,
and compare with a full rebuild of the same store: obv/ad bit for bit, every other feature within the
catalog's warm-up tolerance (the scale rules of test_warmup.py), and the same nulls.

Also: re-sending bars changes nothing; a late bar and revised bars are recomputed from there (the
documented policy); a forming bar, a bad bar or an un-applied registry are refused before any write.
"""

from __future__ import annotations

from datetime import timedelta

import numpy as np
import pandas as pd
import polars as pl
import pytest

from mt5lab.bars.samples import load_sample
from mt5lab.catalog import FEATURES, MAX_WARMUP, WARMUP_TOLERANCE
from mt5lab.errors import BarValidationError, StoreError
from mt5lab.features.compute import compute_features

W = MAX_WARMUP


def _effective_volume(bars: pl.DataFrame) -> np.ndarray:
    rv = bars["real_volume"].fill_null(0).to_numpy().astype(float)
    return np.where(rv > 0, rv, bars["tick_volume"].fill_null(0).to_numpy().astype(float))


def assert_matches_rebuild(got: pl.DataFrame, ref: pl.DataFrame, bars: pl.DataFrame) -> None:
    """``got`` (incremental) against ``ref`` (full rebuild), both sorted by symbol and time."""
    assert got.select("symbol", "time").equals(ref.select("symbol", "time"))
    assert got["event_timestamp"].equals(ref["event_timestamp"])
    b = bars.sort("symbol", "time")
    assert b.select("symbol", "time").equals(ref.select("symbol", "time"))
    close = np.abs(b["close"].to_numpy())
    vol_scale = np.concatenate([
        np.maximum.accumulate(v) if len(v) <= W + 1 else
        np.lib.stride_tricks.sliding_window_view(np.concatenate([np.zeros(W), v]), W + 1).max(axis=1)
        for v in (_effective_volume(g) for _, g in b.group_by("symbol", maintain_order=True))
    ])
    for f in FEATURES:
        a, r = got[f.name], ref[f.name]
        assert (a.is_null() == r.is_null()).all(), f"{f.name}: null pattern differs"
        if f.cumulative or f.scale is None:
            assert a.equals(r), f"{f.name}: not exactly equal"
            continue
        av, rv = a.to_numpy().astype(float), r.to_numpy().astype(float)
        scale = {"price": close, "percent": np.full(len(av), 100.0), "volume": vol_scale,
                 "ratio": np.maximum(np.abs(np.nan_to_num(rv)), 1.0)}[f.scale]
        ok = np.isnan(rv) | (np.abs(av - rv) <= WARMUP_TOLERANCE * scale)
        assert ok.all(), f"{f.name}: {int((~ok).sum())} rows beyond tolerance"


def test_carry_continues_obv_and_ad_bit_for_bit():
    """compute_features(tail, carry=(obv, ad, close) of the bar before) == the full run's tail."""
    bars = load_sample("EURUSD")
    full = compute_features(bars, "H1")
    closes = bars["close"].to_numpy()
    flat = int(np.flatnonzero(np.diff(closes) == 0)[0]) + 1  # a bar whose close equals the previous
    for cut in (1, 2, 37, W + 1, flat, 4000):
        prev = full.row(cut - 1, named=True)
        tail = compute_features(bars.slice(cut), "H1",
                                carry={"EURUSD": (prev["obv"], prev["ad"], closes[cut - 1])})
        for name in ("obv", "ad"):
            assert tail[name].equals(full[name].slice(cut)), (name, cut)
    with pytest.raises(ValueError, match="obv, ad, close"):
        compute_features(bars.slice(5), "H1", carry={"EURUSD": (1.0, 2.0)})


def _chunks(n: int, late: int, rng: np.random.Generator) -> list[list[int]]:
    """Bar indices per update call: one at a time from empty, one at a time across W, random batches."""
    idx = [i for i in range(n) if i != late]
    out = [[i] for i in idx[:5]]
    out.append(idx[5:W - 20])
    out += [[i] for i in idx[W - 20:W + 25]]
    pos = W + 25
    while pos < len(idx):
        k = int(rng.integers(1, 250))
        out.append(idx[pos:pos + k])
        pos += k
    return out


@pytest.mark.slow
def test_replay_equals_rebuild(profile):
    from mt5lab.feast_repo.store import apply, feature_store
    from mt5lab.features.build import build
    from mt5lab.online.reader import online_features
    from mt5lab.online.update import update
    from mt5lab.storage import open_store

    apply(None, "D1")
    store = open_store()
    goog = load_sample("GOOG")
    # A second symbol in the same calls, shorter and priced differently: windows and carries per symbol.
    other = goog.head(1200).with_columns(pl.lit("GOOGX").alias("symbol"),
                                         *(pl.col(c) * 0.5 for c in ("open", "high", "low", "close")))
    late = 1500
    times = goog["time"]
    for chunk in _chunks(goog.height, late, np.random.default_rng(6)):
        t0, t1 = times[chunk[0]], times[chunk[-1]]
        new = pl.concat([goog[chunk], other.filter(pl.col("time").is_between(t0, t1))])
        res = update(new, calendar="equity")
        assert res.bars.inserted == new.height and res.bars.updated == 0
        assert set(res.recomputed_from) == set(new["symbol"].unique())
    last = new

    # Re-sending the last batch changes nothing.
    again = update(last, calendar="equity")
    assert (again.bars.changed, again.features.changed, again.recomputed_from) == (0, 0, {})

    # A late bar: recomputed from it to the end (obv/ad of every later bar move).
    res = update(goog[[late]], calendar="equity")
    assert res.recomputed_from == {"GOOG": times[late]}
    assert res.features.changed >= goog.height - late - 1

    # A revised old bar and a revised newest bar (same event timestamp: the online row must change).
    before = online_features(["GOOG"], profile=None, now=times[-1] + timedelta(days=1))
    rev = goog[[1800, goog.height - 1]].with_columns(
        pl.col("real_volume") + pl.Series([5_000, 777_000]),
        pl.when(pl.int_range(pl.len()) == 0).then(pl.col("low")).otherwise(pl.col("close")).alias("close"))
    res = update(rev, calendar="equity")
    assert res.bars.updated == 2 and res.recomputed_from == {"GOOG": times[1800]}
    final_bars = pl.concat([goog.join(rev, on="time", how="anti"), rev, other]).sort("symbol", "time")

    replayed = store.read_features("D1").sort("symbol", "time")
    # GOOGX stopped in 2008: expired by then, kept (flagged) here to compare its values.
    online = online_features(["GOOG", "GOOGX"], now=times[-1] + timedelta(days=1), keep_expired=True)
    assert (online["obv"][0], online["ad"][0]) != (before["obv"][0], before["ad"][0])

    build(store, ["D1"], progress=False)  # the reference: a full rebuild of the same bars, same store
    rebuilt = store.read_features("D1").sort("symbol", "time")
    assert replayed.height == goog.height + other.height
    assert_matches_rebuild(replayed, rebuilt, final_bars)

    # Online: each symbol's newest rebuilt row, fresh, and what Feast itself returns.
    newest = rebuilt.group_by("symbol", maintain_order=True).last().sort("symbol")
    assert list(online["status"]) == ["fresh", "expired"]
    for f in FEATURES:
        want = newest[f.name].to_list()
        got = [_py(v) for v in online[f.name].tolist()]
        if f.cumulative or f.scale is None:
            assert got == want, f.name
        else:
            assert np.allclose(np.array(got, float), np.array(want, float), rtol=1e-9, equal_nan=True), f.name
    fs = feature_store(None, "D1")
    feast = fs.get_online_features(features=fs.get_feature_service("mt5_v1"),
                                   entity_rows=[{"symbol": "GOOG"}, {"symbol": "GOOGX"}]).to_dict()
    for f in FEATURES:
        assert [_py(v) for v in online[f.name].tolist()] == feast[f.name], f.name


def _py(v):
    return None if v is None or pd.isna(v) else v


def test_refused_before_any_write(data_dir):
    from mt5lab.feast_repo.store import apply
    from mt5lab.online.update import update
    from mt5lab.storage import open_store

    goog = load_sample("GOOG")
    with pytest.raises(StoreError, match="mt5lab apply"):
        update(goog.head(10), calendar="equity")
    assert open_store().counts() == {}

    apply(None, "D1")
    update(goog.head(30), calendar="equity")
    counts = open_store().counts()
    # A bar that has not closed yet (its features would be look-ahead).
    now = goog["time"][30] + timedelta(hours=12)
    with pytest.raises(BarValidationError, match="row 2: bar not closed yet"):
        update(goog.slice(29, 2), calendar="equity", now=now)
    # A bad bar among good ones: all or nothing.
    bad = goog.slice(30, 3).with_columns(pl.when(pl.int_range(pl.len()) == 1).then(pl.col("low") - 50)
                                         .otherwise(pl.col("high")).alias("high"))
    with pytest.raises(BarValidationError, match="row 2: high below low"):
        update(bad, calendar="equity", source="feed.csv")
    assert open_store().counts() == counts


def test_update_cli(data_dir, tmp_path):
    from click.testing import CliRunner

    from mt5lab.cli import cli
    from mt5lab.feast_repo.store import apply

    apply(None, "D1")
    goog = load_sample("GOOG")
    path = tmp_path / "goog.csv"
    goog.head(40).drop("symbol", "timeframe").with_columns(
        pl.col("time").dt.strftime("%Y-%m-%d")).write_csv(path)
    run = CliRunner().invoke(cli, ["update", str(path), "--symbol", "GOOG", "--timeframe", "D1",
                                   "--calendar", "equity"])
    assert run.exit_code == 0, run.output
    assert "40 bars (40 new, 0 revised, 0 unchanged)" in run.output
    run = CliRunner().invoke(cli, ["update", str(path), "--symbol", "GOOG", "--timeframe", "D1"])
    assert run.exit_code == 0 and "0 feature rows written for 0 symbols" in run.output, run.output



def test_warm_tails_write_exactly_the_store_paths_rows(tmp_path):
    """``update(tails=...)``, the follower's path (windows and carries from the tails in memory, no
    history read), writes bit for bit the rows of the store path, bar by bar across the warm-up
    boundary W, through a revised old bar, a late bar, a re-send, and another writer changing the
    store behind the tails' back (which the tails must notice)."""
    from mt5lab.features.incremental import Tails
    from mt5lab.online.update import update
    from mt5lab.storage.local import LocalStore

    goog = load_sample("GOOG")
    other = goog.with_columns(pl.lit("GOOGX").alias("symbol"), *(pl.col(c) * 0.5 for c in ("open", "high", "low", "close")))
    warm, cold, tails = LocalStore(tmp_path / "warm"), LocalStore(tmp_path / "cold"), Tails("D1")

    def both(bars: pl.DataFrame) -> None:
        a = update(bars, store=warm, tails=tails, online=False, calendar="equity")
        b = update(bars, store=cold, online=False, calendar="equity")
        assert (a.recomputed_from, a.features.changed) == (b.recomputed_from, b.features.changed)

    def rows(i: int | list[int]) -> pl.DataFrame:
        idx = [i] if isinstance(i, int) else i
        return pl.concat([goog[idx], other[idx]])

    late = W + 12
    both(rows(list(range(W - 30))))
    for i in range(W - 30, W + 20):  # one bar per call, the follower's case, across W
        if i != late:
            both(rows(i))
    assert len(tails) == 2 and tails.hits >= 2 * 45
    both(rows(late))  # a late bar: the store path, recomputed from it
    revised = goog[[W + 5]].with_columns(pl.col("close") * 1.001, pl.col("high") * 1.001)
    both(revised)  # a revised old bar
    both(rows(W + 19))  # a re-send: nothing to do
    hits = tails.hits
    both(rows(W + 20))
    assert tails.hits == hits + 2  # back on the tails after all of that
    verified = tails.verified  # own writes only: the write token vouches, nothing is read back
    both(rows(W + 21 - 1))  # (a re-send)
    assert tails.verified == verified and tails.token == warm.write_token("D1")
    # Another writer revises an old bar of both stores: the tails must see it and take the store path.
    other_writer = other[[W + 15]].with_columns(pl.col("real_volume") + 1000, pl.col("close") * 0.999,
                                                pl.col("low") * 0.999)
    for store in (warm, cold):
        update(other_writer, store=store, online=False, calendar="equity")
    hits = tails.hits
    both(rows(W + 21))
    assert tails.hits == hits + 1  # GOOG from its tail, GOOGX from the store
    assert tails.verified == verified + 1  # the other writer moved the token: the store was read back
    for i in range(W + 22, W + 26):
        both(rows(i))
    got, want = (s.read_features("D1").drop("created_timestamp").sort("symbol", "time") for s in (warm, cold))
    assert got.height == 2 * (W + 26) and got.equals(want)
    assert warm.read_bars("D1").sort("symbol", "time").equals(cold.read_bars("D1").sort("symbol", "time"))


@pytest.mark.services
@pytest.mark.parametrize("snapshot", ["dump", "fields"])
def test_a_failed_offline_write_puts_the_online_rows_back(postgres_profile, monkeypatch, snapshot):
    """Redis is written first (Feast's push order); when the offline write then fails (here a
    read-only PostgreSQL session: a failover to a standby, a full disk), every key is put back
    byte for byte, a key that did not exist is deleted, and freshness says stale (snapshot by DUMP,
    or by HMGET where DUMP is refused). Once the offline store takes writes again, the same bars go
    through."""
    from datetime import UTC, datetime

    from mt5lab.feast_repo.store import apply
    from mt5lab.online.freshness import freshness
    from mt5lab.online.reader import reader
    from mt5lab.online.update import update
    from mt5lab.storage import open_store

    apply(None, "H1")
    store = open_store()
    bars = load_sample("EURUSD").head(301)
    update(bars.head(300), store=store, calendar="fx")
    rr = reader(None, "H1").tables._redis()
    assert rr._can_dump()  # Redis 7 answers DUMP; "fields": as where a service disables it
    rr._dump_ok = snapshot == "dump"
    key, new_key = rr.key("EURUSD"), rr.key("NEWSYM")
    before = rr.client.hgetall(key)
    assert len(before) == len(rr.fields)
    nxt = pl.concat([bars[300:301], bars[300:301].with_columns(pl.lit("NEWSYM").alias("symbol"))])
    now = bars["time"][300] + timedelta(hours=1, minutes=5)
    store._db.execute("SET default_transaction_read_only = on")
    with pytest.raises(StoreError, match="nothing stored"):
        update(nxt, store=store, calendar="fx", now=now)
    assert rr.client.hgetall(key) == before and not rr.client.exists(new_key)
    fr = freshness(["EURUSD"], timeframes="H1", now=now, grace=timedelta(minutes=1), store=store)
    assert set(fr["status"]) == {"stale"}
    store._db.execute("SET default_transaction_read_only = off")
    res = update(nxt, store=store, calendar="fx", now=now)
    assert res.online_symbols == 2 and res.online_at is not None
    assert res.online_at <= datetime.now(UTC).timestamp()
    assert rr.client.hgetall(key) != before and rr.client.exists(new_key)
    fr = freshness(["EURUSD"], timeframes="H1", now=now, grace=timedelta(minutes=1), store=store)
    assert set(fr["status"]) == {"fresh"}
