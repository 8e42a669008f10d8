"""Honest by construction: through the whole pipeline (bars -> validated -> features -> point-in-time
training set -> purged CV -> model -> metrics), a seeded random walk shows no skill and a series
with a planted, known signal shows it. Also: the real GOOG sample, nulls counted, never dropped."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import numpy as np
import polars as pl
import pytest

from mt5lab.model.evaluate import evaluate

N = 1400


def bars(seed: int, signal: float) -> pl.DataFrame:
    """D1 bars, every day (24x7). Bar k's open-to-close move is ``0.005 * s_k`` (the catalog's
    ``co_ratio``), and the next bar's close-to-close log return is ``signal * s_k`` plus 1 % noise:
    with ``signal = 0`` a pure random walk."""
    rng = np.random.default_rng(seed)
    s = rng.normal(size=N)
    r = np.concatenate(([0.0], signal * s[:-1])) + rng.normal(0, 0.01, N)
    close = 100 * np.exp(np.cumsum(r))
    open_ = close / (1 + 0.005 * s)
    high = np.maximum(open_, close) * (1 + np.abs(rng.normal(0, 0.002, N)))
    low = np.minimum(open_, close) * (1 - np.abs(rng.normal(0, 0.002, N)))
    start = datetime(2015, 1, 1, tzinfo=UTC)
    return pl.DataFrame({"symbol": "SYN", "time": pl.datetime_range(start, start + timedelta(days=N - 1), "1d",
                                                                    eager=True, time_zone="UTC"),
                         "open": open_, "high": high, "low": low, "close": close,
                         "tick_volume": rng.integers(100, 1000, N), "real_volume": np.zeros(N, dtype=np.int64)})


def training_frame(data_dir, seed: int, signal: float):
    from mt5lab.bars.ingest import ingest_frame
    from mt5lab.features.build import build
    from mt5lab.storage import open_store
    from mt5lab.training.assemble import decision_times, training_set

    store = open_store()
    ingest_frame(store, bars(seed, signal), "D1", calendar="24x7")
    build(store, ["D1"], progress=False)
    keys = decision_times(["SYN"], datetime(2015, 1, 1, tzinfo=UTC), datetime(2030, 1, 1, tzinfo=UTC), "D1",
                          store=store)
    return training_set(keys, "mt5_v1", timeframe="D1", labels=["fwd_return_5"], store=store, progress=False)


@pytest.mark.slow
def test_random_walk_shows_no_skill(data_dir):
    ts = training_frame(data_dir, seed=11, signal=0.0)
    for model in ("lightgbm", "linear"):
        ev = evaluate(ts, "fwd_return_5", cv="walk-forward", folds=5, model=model, cost_bps=1.0,
                      with_importance=False)
        m = ev.metrics
        # "near 0": within 3 standard errors of a correlation over the independent 5-bar periods
        bound = 3 / np.sqrt(m["scored_rows"] / 5)
        assert bound < 0.25
        assert abs(m["ic_pooled"]) < bound, (model, m["ic_pooled"])
        assert abs(m["ic"]) < bound, (model, m["ic"])
        assert m["dsr"] < 0.95 and m["psr"] < 0.95, (model, m["dsr"])  # not significant
        assert m["n_trials"] == 1


@pytest.mark.slow
def test_planted_signal_is_found_and_attributed_to_its_view(data_dir):
    ts = training_frame(data_dir, seed=11, signal=0.015)
    ev = evaluate(ts, "fwd_return_5", cv="kfold", folds=5, embargo=5, model="lightgbm", cost_bps=1.0, repeats=2)
    m = ev.metrics
    # planted: the 5-bar return's first day carries 0.015 * s, noise sd 0.01 * sqrt(5): correlation 0.56 with s
    assert m["ic_pooled"] > 0.12 and m["ic"] > 0.12, m["ic_pooled"]
    assert m["hit_rate"] > 0.53
    assert m["psr"] > 0.95 and m["dsr"] > 0.95
    top = ev.importance.iloc[0]
    assert top["feature"] in ("co_ratio", "body_ratio", "upper_shadow", "lower_shadow"), ev.importance.head()
    by_view = ev.importance_by_view.set_index("view")["mda"]
    assert by_view.idxmax() == "price_action", by_view  # the view that holds co_ratio
    assert ev.nulls["label_null_rows"] == 5  # the last five decisions have no 5-bar label: counted


@pytest.mark.slow
def test_real_sample_goog_counts_nulls_and_reports_every_fold(demo_store):
    from mt5lab.storage import open_store
    from mt5lab.training.assemble import decision_times, training_set

    store = open_store()
    keys = decision_times(["GOOG"], datetime(2004, 1, 1, tzinfo=UTC), datetime(2014, 1, 1, tzinfo=UTC), "D1",
                          store=store)
    ts = training_set(keys, "mt5_v1", timeframe="D1", labels=["fwd_return_5"], store=store, progress=False)
    for model in ("lightgbm", "linear"):
        ev = evaluate(ts, "fwd_return_5", folds=4, model=model, with_importance=False)
        n = 2148  # GOOG.csv data rows
        assert ev.nulls["rows"] + ev.nulls["label_null_rows"] == n
        assert ev.nulls["label_null_rows"] == 5
        assert ev.nulls["rows_with_null_features"] == n - 5  # spread is null on every GOOG bar
        assert len(ev.folds) == 4 and all(f["test_rows"] > 0 for f in ev.folds)
        assert sum(f["test_rows"] for f in ev.folds) == len(ev.predictions)
        assert np.isfinite(ev.metrics["sharpe"]) and 0 <= ev.metrics["psr"] <= 1
