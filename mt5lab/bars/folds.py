"""DST folds across calls: the second occurrence of a repeated server hour, sent on its own.

Within one file or frame, :mod:`mt5lab.bars.clock` resolves a repeated server wall time by row order
(first row = the earlier instant). The hot path sends bars one call at a time, so the second 01:00 of
a DST night can arrive alone, after the first one was stored: by row order it would be the earlier
instant again and overwrite the stored bar, losing one bar without a gap. Rule across calls: a row
resolved to a fold's earlier instant whose earlier instant the store already holds *with other
values* is the second occurrence, the later instant. (A broker correction of the first occurrence,
sent alone, is therefore read as the second; send the night's bars together to correct the first.)
"""

from __future__ import annotations

from datetime import timedelta

import polars as pl

from mt5lab.bars.clock import from_server, resolve_server_tz, to_server

_VALUES = ("open", "high", "low", "close", "tick_volume")


def second_occurrences(frame: pl.DataFrame, timeframe: str, server_tz: str | None, store) -> pl.DataFrame:
    """``frame`` (canonical bars, UTC) with each lone second occurrence of a fold moved to its later
    instant (see the module docstring). ``store``: an :class:`mt5lab.storage.OfflineStore`. One read
    of the store, only when the frame holds a fold's earlier instant."""
    tz = resolve_server_tz(server_tz, "<frame>", required=False)
    if frame.is_empty() or tz == "UTC":
        return frame
    wall = to_server(frame["time"], tz)
    early, late = from_server(wall, tz, "earliest"), from_server(wall, tz, "latest")
    first = (early != late) & (frame["time"] == early)
    if not first.any():
        return frame
    cand = frame.with_columns(_late=late, _i=pl.int_range(pl.len())).filter(first)
    stored = store.read_bars(timeframe, sorted(cand["symbol"].unique().to_list()), start=cand["time"].min(),
                             end=cand["time"].max() + timedelta(microseconds=1))
    if stored.is_empty():
        return frame
    clash = cand.join(stored.select("symbol", "time", *_VALUES), on=["symbol", "time"], suffix="_stored")
    differs = pl.any_horizontal(pl.col(c).ne_missing(pl.col(f"{c}_stored")) for c in _VALUES)
    moved = clash.filter(differs)
    taken = frame.select("symbol", "time").join(moved.select("symbol", pl.col("_late").alias("time")),
                                                on=["symbol", "time"], how="semi")
    if moved.is_empty() or taken.height:  # the later instant is in the frame too: row order decided
        return frame
    idx = moved["_i"]
    new_time = frame["time"].scatter(idx, moved["_late"])
    return frame.with_columns(time=new_time).sort("symbol", "time", maintain_order=True)
