"""One online read as columns, and its three outputs: a pandas frame, a polars frame, plain lists.

:class:`OnlineRows` holds, for ``n`` symbols, each feature as a numpy column with a null mask, and
per view the event times and statuses. The outputs share one column order: ``symbol``, the
features in the service's order, then per view ``<view>__event_timestamp`` and ``<view>__status``,
then ``status`` (the worst view of the row).

Building a pandas frame the ordinary way (``pd.DataFrame(dict)``) costs ~0.1 ms per column, which
for 56 columns is ten times the read itself. :meth:`OnlineRows.to_pandas` therefore assembles the
frame from whole blocks (one float64 block for the double features, one ``Int64`` array per integer
feature, one ``datetime64[ns, UTC]`` block for the event times, one object block for the text
columns), each handed to its pandas block class as the final array (what
``pandas.core.internals.api.make_block``, the call pyarrow's ``to_pandas`` uses, would build after
its per-call type inference and checks, which cost more than the frame itself for one symbol).
The frame is an ordinary DataFrame; a test compares it with the one ``pd.DataFrame(dict)`` builds,
dtypes included.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from pandas.core.arrays import DatetimeArray, IntegerArray
from pandas.core.internals import BlockManager
from pandas.core.internals.blocks import DatetimeTZBlock, ExtensionBlock, NumpyBlock

from mt5lab.catalog import BY_NAME

STATUSES = ("fresh", "expired", "future", "missing")
_RANK = {s: i for i, s in enumerate(STATUSES)}
_NAT = np.iinfo(np.int64).min
_UTC_NS = pd.DatetimeTZDtype("ns", "UTC")


def _columns(index: pd.Index) -> pd.Index:
    """A new column index over ``index``'s values, sharing its cache (values-derived: the lookup
    engine), so a caller may rename its frame's columns. Not ``Index._view()``: that registers
    every view in the index's copy-on-write reference list, a list of weak references that grows
    with every frame and is swept from time to time (a tail of ~0.2 ms per sweep measured)."""
    out = type(index)._simple_new(index._values, name=index.name)
    out._cache = index._cache
    return out


def _range(n: int) -> pd.RangeIndex:
    """A new row index of an ``n``-row frame (its own object: a caller may rename it)."""
    return pd.RangeIndex._simple_new(range(n))


def _lists(vals: np.ndarray, null: np.ndarray) -> list[list]:
    """Rows of a ``(k, n)`` matrix as lists of Python scalars, ``None`` where ``null`` (one pass)."""
    if not null.any():
        return vals.tolist()
    obj = vals.astype(object)
    obj[null] = None
    return obj.tolist()


class Layout:
    """Column positions of a read's output, computed once per reader (features in order, views)."""

    def __init__(self, features: list[str], views: list[str]):
        from pandas._libs.internals import BlockPlacement

        self.features = list(features)
        self.views = list(views)
        self.floats = [f for f in features if BY_NAME[f].dtype != "Int64"]
        self.ints = [f for f in features if BY_NAME[f].dtype == "Int64"]
        at = {f: 1 + j for j, f in enumerate(features)}
        n_f, n_v = len(features), len(views)
        self.float_place = BlockPlacement(np.array([at[f] for f in self.floats], dtype=np.intp))
        self.int_place = [BlockPlacement(slice(at[f], at[f] + 1)) for f in self.ints]
        self.ts_place = BlockPlacement(np.arange(n_v, dtype=np.intp) * 2 + 1 + n_f)
        self.text_place = BlockPlacement(np.array([0, *(np.arange(n_v) * 2 + 2 + n_f), 1 + n_f + 2 * n_v],
                                                  dtype=np.intp))
        names = ["symbol", *features]
        for v in views:
            names += [f"{v}__event_timestamp", f"{v}__status"]
        self.names = [*names, "status"]
        self.index = pd.Index(self.names)  # immutable: shared by every frame of this layout


class OnlineRows:
    """One read of ``n`` symbols.

    ``floats``/``float_null``: the double features (``layout.floats``), float64 and bool, shape
    ``(k, n)``; ``ints``: per integer feature ``(int64 values, null mask)``, shape ``(n,)`` each.
    Values of views that are not ``fresh`` are already masked (see
    :class:`~mt5lab.online.reader.OnlineReader`). ``event_timestamps[view]`` (UTC ``datetime`` or
    None) and ``status[view]`` are lists of ``n``. ``view_of``: feature -> view.
    """

    def __init__(self, symbols: list[str], layout: Layout, floats: np.ndarray, float_null: np.ndarray,
                 ints: dict[str, tuple[np.ndarray, np.ndarray]], event_timestamps: dict[str, list],
                 status: dict[str, list[str]], view_of: dict[str, str]):
        self.symbols = symbols
        self.layout = layout
        self.floats = floats
        self.float_null = float_null
        self.ints = ints
        self.event_timestamps = event_timestamps
        self.status = status
        self.view_of = view_of
        self._values: dict[str, list] | None = None

    @property
    def columns(self) -> dict[str, tuple[np.ndarray, np.ndarray]]:
        """Feature -> ``(values, null mask)``, shape ``(n,)`` each, in the service's order."""
        row = {f: j for j, f in enumerate(self.layout.floats)}
        return {f: self.ints[f] if f in self.ints else (self.floats[row[f]], self.float_null[row[f]])
                for f in self.layout.features}

    @property
    def values(self) -> dict[str, list]:
        """Per feature, a list of Python scalars (``None`` for null), as Feast's ``to_dict`` gives."""
        if self._values is None:
            lay = self.layout
            out = dict(zip(lay.floats, _lists(self.floats, self.float_null), strict=True))
            if lay.ints:
                ints = _lists(np.vstack([self.ints[f][0] for f in lay.ints]),
                              np.vstack([self.ints[f][1] for f in lay.ints]))
                out.update(zip(lay.ints, ints, strict=True))
            self._values = {f: out[f] for f in lay.features}
        return self._values

    def row_status(self) -> list[str]:
        """Per symbol, the worst status over its views (missing > future > expired > fresh)."""
        per_view = list(self.status.values())
        if len(per_view) == 1:
            return list(per_view[0])
        return [max(col, key=_RANK.__getitem__) for col in zip(*per_view, strict=True)]

    def stamps_matrix(self) -> np.ndarray:
        """Every view's event times (``layout.views`` order) as int64 ns, shape ``(views, n)``, NaT's
        integer when absent; one conversion for all views."""
        from mt5lab.online.decode import ns_matrix

        return ns_matrix([self.event_timestamps[v] for v in self.layout.views], _NAT)

    def column_names(self) -> list[str]:
        return list(self.layout.names)

    # -- outputs ---------------------------------------------------------------------------------
    def to_pandas(self) -> pd.DataFrame:
        """The read as a pandas DataFrame (features ``float64`` / nullable ``Int64``, event times
        ``datetime64[ns, UTC]``, NaN or ``<NA>`` for nulls), one row per symbol."""
        lay = self.layout
        n = len(self.symbols)
        blocks = []
        if lay.floats:
            vals = np.where(self.float_null, np.nan, self.floats) if self.float_null.any() else self.floats
            blocks.append(NumpyBlock(vals, lay.float_place, 2))
        for f, place in zip(lay.ints, lay.int_place, strict=True):
            vals, null = self.ints[f]
            blocks.append(ExtensionBlock(IntegerArray._simple_new(vals, null.copy()), place, 2))
        if lay.views:
            ts = self.stamps_matrix().view("M8[ns]")
            blocks.append(DatetimeTZBlock(DatetimeArray._simple_new(ts, dtype=_UTC_NS), lay.ts_place, 2))
        text = np.empty((len(lay.views) + 2, n), dtype=object)
        text[0] = self.symbols
        for k, v in enumerate(lay.views):
            text[1 + k] = self.status[v]
        text[-1] = self.row_status()
        blocks.append(NumpyBlock(text, lay.text_place, 2))
        mgr = BlockManager(tuple(blocks), [_columns(lay.index), _range(n)], verify_integrity=False)
        return pd.DataFrame._from_mgr(mgr, mgr.axes)

    to_df = to_pandas

    def to_polars(self):
        """The read as a polars DataFrame (features ``Float64``/``Int64`` with nulls, event times
        ``Datetime("ns", "UTC")``), one row per symbol. A stored NaN stays NaN; null is null.

        Slower than :meth:`to_pandas` for a few rows (polars builds each of the 56 columns on its
        own, ~40 us each); ``benchmarks/bench_online.py`` prints all three outputs side by side."""
        import polars as pl

        def series(name, vals, null):
            s = pl.Series(name, vals)
            return s.scatter(np.flatnonzero(null), None) if null.any() else s

        cols = [pl.Series("symbol", self.symbols, pl.String)]
        cols += [series(f, vals, null) for f, (vals, null) in self.columns.items()]
        for v, ns in zip(self.layout.views, self.stamps_matrix(), strict=True):
            ts = series(f"{v}__event_timestamp", ns, ns == _NAT).cast(pl.Datetime("ns", "UTC"))
            cols += [ts, pl.Series(f"{v}__status", self.status[v], pl.String)]
        cols.append(pl.Series("status", self.row_status(), pl.String))
        return pl.DataFrame(cols)

    def to_dict(self) -> dict[str, list]:
        """Column name -> list of Python values (``None`` for null; event times as UTC datetimes),
        like Feast's ``OnlineResponse.to_dict()`` plus the timestamp and status columns."""
        out: dict[str, list] = {"symbol": list(self.symbols), **self.values}
        for v in self.event_timestamps:
            out[f"{v}__event_timestamp"] = list(self.event_timestamps[v])
            out[f"{v}__status"] = list(self.status[v])
        out["status"] = self.row_status()
        return out
