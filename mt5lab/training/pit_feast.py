"""Feast's own ``get_historical_features``, as the reference mt5lab's training sets must equal.

Used by the equality tests and the benchmark; never on mt5lab's own path (it is 100-1000x slower).

What Feast 0.67 does (read from ``feast/infra/offline_stores/dask.py``, the Postgres store's
``MULTIPLE_FEATURE_VIEW_POINT_IN_TIME_JOIN`` template and ``offline_utils``; confirmed by the tests):

* Window: ``t - ttl <= event_timestamp <= t``, both ends inclusive, on both stores; latest
  ``event_timestamp`` wins, ties go to the larger ``created_timestamp``.
* Columns: the entity frame's columns in their order, then per view (in order of the view's first
  ref) its requested features; ``full_feature_names`` names them ``view__feature``.
* Dtypes: float features ``float64`` (NaN for null); an int feature column is ``int64`` without
  nulls and ``float64`` with NaN as soon as one value is null (arrow int64 with nulls -> pandas).
* File store (local profile): ``event_timestamp`` ``datetime64[ns, UTC]``. It DROPS an entity row
  whose symbol exists but has no feature row inside the window (before its first bar, or after ttl
  expiry: ``_filter_ttl`` runs after a left merge and only keeps null-timestamp rows), and MERGES
  entity rows with the same ``(symbol, event_timestamp)`` into one (``drop_duplicates`` on the join
  keys and timestamp, keeping an arbitrary one of them). Unknown symbols are kept, with nulls.
  Memory is entity rows x feature rows of the symbol (a left merge, then the filter).
* Postgres store: keeps every row and duplicate, but returns ``event_timestamp`` as naive
  ``datetime64[us]`` holding UTC, and its entity-row id is ``symbol || timestamp`` concatenated
  without a separator. It stores times at microsecond precision.
* Both return rows in an order of their own.

mt5lab returns every row, in input order, ``datetime64[ns, UTC]``; :func:`compare` checks exact
equality after only these normalisations: sort both by a row id, and read Feast-Postgres' naive
``event_timestamp`` as UTC.
"""

from __future__ import annotations

import pandas as pd

from mt5lab.catalog import check_timeframe
from mt5lab.training.refs import resolve


def feast_historical(entities: pd.DataFrame, features="mt5_v1", *, profile=None, timeframe: str = "D1",
                     full_feature_names: bool = False) -> pd.DataFrame:
    """``FeatureStore.get_historical_features(...).to_df()`` of the profile's Feast project."""
    from mt5lab.feast_repo.store import feature_store

    fs = feature_store(profile, check_timeframe(timeframe))
    sel = resolve(features)
    feats = fs.get_feature_service(sel.service) if sel.service else sel.refs
    return fs.get_historical_features(entity_df=entities, features=feats,
                                      full_feature_names=full_feature_names).to_df()


def normalize_feast(frame: pd.DataFrame, key: str) -> pd.DataFrame:
    """Feast's output sorted by ``key``, with a naive ``event_timestamp`` (Postgres) read as UTC."""
    out = frame.sort_values(key, kind="stable").reset_index(drop=True)
    ts = out["event_timestamp"]
    if not isinstance(ts.dtype, pd.DatetimeTZDtype):
        out["event_timestamp"] = ts.dt.tz_localize("UTC")
    out["event_timestamp"] = out["event_timestamp"].astype("datetime64[ns, UTC]")
    return out


def compare(ours: pd.DataFrame, feast: pd.DataFrame, key: str = "row_id") -> list[str]:
    """Differences between mt5lab's and Feast's frames for the same entity rows (empty: equal).

    Exact: same row ids, column names and order, dtypes, nulls and values (``check_exact``).
    """
    problems = []
    a = ours.sort_values(key, kind="stable").reset_index(drop=True)
    b = normalize_feast(feast, key)
    if list(a.columns) != list(b.columns):
        problems.append(f"columns differ: ours {list(a.columns)} feast {list(b.columns)}")
        return problems
    if not a[key].equals(b[key]):
        missing = sorted(set(a[key]) - set(b[key]))[:10]
        extra = sorted(set(b[key]) - set(a[key]))[:10]
        problems.append(f"row ids differ: only ours {missing}, only feast {extra}")
        return problems
    for c in a.columns:
        if a[c].dtype != b[c].dtype:
            problems.append(f"{c}: dtype ours {a[c].dtype} feast {b[c].dtype}")
            continue
        try:
            pd.testing.assert_series_equal(a[c], b[c], check_exact=True, check_names=True)
        except AssertionError as exc:
            bad = ~((a[c] == b[c]) | (a[c].isna() & b[c].isna()))
            rows = a.loc[bad, key].tolist()[:5]
            problems.append(f"{c}: values differ at {key} {rows}: {str(exc).splitlines()[0]}")
    return problems


def file_store_drops(ours: pd.DataFrame, feast: pd.DataFrame, known_symbols: set[str],
                     feature_columns: list[str], key: str = "row_id") -> list[str]:
    """Check that every row Feast's file store left out is one it is documented to leave out: a
    duplicate ``(symbol, event_timestamp)`` of a row it kept, or a known symbol's row for which
    mt5lab found no feature row in the window (all features null). Returns the unexplained ones."""
    kept = set(feast[key])
    nf = normalize_feast(feast, key)
    feast_keys = set(zip(nf["symbol"], nf["event_timestamp"], strict=True))
    problems = []
    for row in ours.loc[~ours[key].isin(kept)].itertuples(index=False):
        r = row._asdict()
        dup = (r["symbol"], r["event_timestamp"]) in feast_keys
        empty = r["symbol"] in known_symbols and all(pd.isna(r[c]) for c in feature_columns)
        if not (dup or empty):
            problems.append(f"{key} {r[key]} ({r['symbol']} {r['event_timestamp']}) missing from Feast")
    return problems
