"""Purged walk-forward (mt5lab.model.cv) vs scikit-learn's TimeSeriesSplit loop, same LightGBM, one run.

Data: synthetic decisions, ``--symbols`` x ``--bars`` rows (default 200 x 5,000 = 1,000,000) x 42
features, time ordered, one label ``fwd_return_5`` (5 bars ahead, so neighbouring labels overlap)
and its ``label_end_timestamp``. Each symbol's one-bar returns carry a weak signal from three of
the features; the other features are autocorrelated noise (rolling means of the returns, levels).

Both loops: 5 folds, the model trained on every earlier block and scored on the next one
(``TimeSeriesSplit(n_splits=5)`` cuts the rows into the same 6 blocks), LightGBM with the same
parameters and seed. mt5lab's loop purges every training row whose label ends after the test block
starts; scikit-learn's does not (its ``gap`` is a row count, blind to symbols and label ends).
The folds of the two loops run interleaved (alternating which goes first), so that the load of a
shared machine falls on both alike; each loop's time includes computing its splits. Printed: both
times, the ratio (goal: purging adds under 10 %), and the out-of-sample IC each reports (the
unpurged loop trains on labels that overlap the test period).

    .venv/bin/python benchmarks/bench_model.py [--symbols 200] [--bars 5000] [--trees 40]
"""

from __future__ import annotations

import argparse
import os
import time

import numpy as np
import pandas as pd


def data(symbols: int, bars: int, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    n_feat = 42
    sig = rng.normal(size=(symbols, bars, 3))
    ret = 0.002 * sig[:, :, 0] - 0.001 * sig[:, :, 1] + 0.0015 * sig[:, :, 2] + rng.normal(0, 0.01, (symbols, bars))
    ret = np.roll(ret, 1, axis=1)  # the signal at bar k moves the return of bar k + 1
    h = 5
    c = np.cumsum(ret, axis=1)  # log price: known at bar k's close
    fwd = np.full((symbols, bars), np.nan)
    fwd[:, :-h] = c[:, h:] - c[:, :-h]
    feats = [sig[:, :, i] for i in range(3)]
    for w in (2, 3, 5, 8, 13, 21, 34, 55, 89, 144):  # trailing mean returns up to bar k (autocorrelated)
        lag = np.concatenate([np.zeros((symbols, w)), c[:, :-w]], axis=1)
        feats.append((c - lag) / w)
    from scipy.signal import lfilter

    while len(feats) < n_feat:  # AR(1) noise, coefficient 0.95
        feats.append(lfilter([1.0], [1.0, -0.95], rng.normal(size=(symbols, bars)), axis=1))
    t0 = pd.Timestamp("2000-01-03", tz="UTC")
    times = t0 + pd.to_timedelta(np.arange(bars), unit="h")
    df = pd.DataFrame({f"f{i:02d}": feats[i].T.ravel() for i in range(n_feat)})  # time-major: all symbols at t
    df.insert(0, "event_timestamp", np.repeat(times, symbols))
    df.insert(0, "symbol", np.tile([f"S{i:03d}" for i in range(symbols)], bars))
    df["fwd_return_5"] = fwd.T.ravel()
    end = np.concatenate([times[h:], [pd.NaT] * h])
    df["label_end_timestamp"] = pd.to_datetime(np.repeat(end, symbols), utc=True)
    return df


def fold_fit(X, y, train, test, params, seed, threads):
    """Fit on ``train``, predict ``test``: (seconds, predictions)."""
    from mt5lab.model import estimators

    t = time.perf_counter()
    m, _ = estimators.fit("lightgbm", X[train], y[train], seed=seed, params=params, n_jobs=threads)
    p = estimators.predict(m, X[test])
    return time.perf_counter() - t, p


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--symbols", type=int, default=200)
    ap.add_argument("--bars", type=int, default=5000)
    ap.add_argument("--trees", type=int, default=40)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--threads", type=int, default=1,
                    help="LightGBM threads (1: steady timings on a shared machine, where OpenMP spin-waits)")
    a = ap.parse_args()
    from sklearn.model_selection import TimeSeriesSplit

    from mt5lab.model import cv, metrics

    t = time.perf_counter()
    df = data(a.symbols, a.bars, a.seed)
    feats = [c for c in df.columns if c[0] == "f" and c[1:].isdigit()]
    X = df[feats].to_numpy(dtype=float)
    y = df["fwd_return_5"].to_numpy(dtype=float)
    print(f"data: {len(df):,} rows x {len(feats)} features ({a.symbols} symbols x {a.bars} bars), "
          f"label fwd_return_5, built in {time.perf_counter() - t:.1f} s; LightGBM {a.trees} trees, "
          f"{a.threads} thread(s), {os.cpu_count()} cores")
    params = {"n_estimators": a.trees, "num_leaves": 31, "min_child_samples": 200}

    t = time.perf_counter()
    sk = list(TimeSeriesSplit(n_splits=5).split(X))
    split_sk = time.perf_counter() - t
    t = time.perf_counter()
    wf = cv.walk_forward(df, 5)
    split_wf = time.perf_counter() - t
    fold_fit(X[:5000], y[:5000], np.arange(4000), np.arange(4000, 5000), params, a.seed, a.threads)  # warm-up
    # Interleaved fold by fold (alternating which goes first), so that a shared machine's load
    # drifts over both loops alike.
    t_sk, t_wf = split_sk, split_wf
    p_sk, p_wf, y_sk, y_wf = [], [], [], []
    for k, ((tr, te), f) in enumerate(zip(sk, wf, strict=True)):
        order = [("sk", tr, te), ("wf", f.train, f.test)]
        for name, train, test in (order if k % 2 == 0 else order[::-1]):
            sec, p = fold_fit(X, y, train, test, params, a.seed, a.threads)
            if name == "sk":
                t_sk += sec
                p_sk.append(p)
                y_sk.append(y[test])
            else:
                t_wf += sec
                p_wf.append(p)
                y_wf.append(y[test])
    ic_sk = metrics.ic(np.concatenate(p_sk), np.concatenate(y_sk))
    ic_wf = metrics.ic(np.concatenate(p_wf), np.concatenate(y_wf))
    folds_sk = [metrics.ic(p, v) for p, v in zip(p_sk, y_sk, strict=True)]
    folds_wf = [metrics.ic(p, v) for p, v in zip(p_wf, y_wf, strict=True)]
    purged = sum(f.purged for f in wf)
    split_s = split_wf

    print(f"{'loop':<44}{'time s':>9}{'IC':>9}   IC per fold")
    print(f"{'sklearn TimeSeriesSplit (unpurged)':<44}{t_sk:>9.1f}{ic_sk:>9.4f}   "
          + " ".join(f"{v:.4f}" for v in folds_sk))
    print(f"{'mt5lab purged walk-forward':<44}{t_wf:>9.1f}{ic_wf:>9.4f}   "
          + " ".join(f"{v:.4f}" for v in folds_wf))
    print(f"purging: {purged:,} training rows dropped over 5 folds; split computation {split_s:.2f} s")
    print(f"ratio purged / unpurged time: {t_wf / t_sk:.3f} (goal < 1.10)")
    print(f"IC inflation of the unpurged loop: {ic_sk - ic_wf:+.4f} ({(ic_sk - ic_wf) / abs(ic_wf):+.1%} of the purged IC)"
          if ic_wf else f"IC inflation of the unpurged loop: {ic_sk - ic_wf:+.4f}")


if __name__ == "__main__":
    main()
