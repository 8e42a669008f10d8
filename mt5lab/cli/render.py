"""How ``mt5lab online`` and ``mt5lab demo`` print an online read: a table and JSON records.

Both show exactly what :class:`mt5lab.online.reader.OnlineReader` returned (the read path of
:func:`mt5lab.online_features`): per symbol and view the event timestamp and the status (fresh,
expired, future, missing), and the values, null wherever the reader nulled them (expired, future,
missing). Nothing here decides a status; the ``ttl`` row only says which ttl the reader applied (its
views' ttl as registered in Feast, :func:`mt5lab.catalog.ttl` at ``mt5lab apply``).

Table: one column per symbol; rows ``as of`` (the ``now`` of the read), ``ttl``, ``status`` (the
worst view), then per view its ``event_timestamp``, ``status`` and features. Floats print as
``repr`` (the shortest text that reads back as the same float), times as ISO-8601 UTC, null as
``null``. JSON: one record per symbol with the columns of :func:`mt5lab.online_features`, floats
exact (``json`` writes ``repr``), times ISO-8601 UTC strings, null as ``null``.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from datetime import UTC, datetime

from mt5lab.online.reader import OnlineReader, OnlineRows

NULL = "null"


@dataclass(frozen=True)
class Column:
    """One symbol of one read: ``rows.symbols[index]``, read at ``now`` with views of ``ttl``."""

    label: str
    rows: OnlineRows
    index: int
    now: datetime
    ttl: str


def ttl_text(reader: OnlineReader) -> str:
    """The ttl of the reader's views as registered: one value when they all share it (the catalog's
    rule), else each distinct one."""
    return " / ".join(dict.fromkeys(str(fv.ttl) for fv, _ in reader.tables.views))


def columns(reader: OnlineReader, rows: OnlineRows, now: datetime, suffix: str = "") -> list[Column]:
    """One column per symbol of ``rows`` (read by ``reader`` at ``now``), labelled ``SYMBOL`` + ``suffix``."""
    ttl = ttl_text(reader)
    return [Column(f"{s}{suffix}", rows, i, now, ttl) for i, s in enumerate(rows.symbols)]


def iso(ts: datetime | None) -> str | None:
    """ISO-8601 in UTC (``2013-03-02T00:00:00+00:00``), None for None."""
    return None if ts is None else ts.astimezone(UTC).isoformat()


def scalar(v):
    """A value for JSON: Python int or float unchanged (exact), None for null or NaN."""
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return None
    return v


def _text(v) -> str:
    v = scalar(v)
    return NULL if v is None else repr(v)


def records(rows: OnlineRows) -> list[dict]:
    """One dict per symbol, keys in the order of :meth:`OnlineRows.to_df` (``online_features``)."""
    worst = rows.row_status()
    out = []
    for i, symbol in enumerate(rows.symbols):
        rec: dict[str, object] = {"symbol": symbol}
        for f, vals in rows.values.items():
            rec[f] = scalar(vals[i])
        for view, stamps in rows.event_timestamps.items():
            rec[f"{view}__event_timestamp"] = iso(stamps[i])
            rec[f"{view}__status"] = rows.status[view][i]
        rec["status"] = worst[i]
        out.append(rec)
    return out


def to_json(rows: OnlineRows) -> str:
    return json.dumps(records(rows))


def _views(rows: OnlineRows) -> dict[str, list[str]]:
    """View -> its features, in the read's order."""
    out: dict[str, list[str]] = {view: [] for view in rows.event_timestamps}
    for f in rows.values:
        out[rows.view_of[f]].append(f)
    return out


def table(cols: list[Column]) -> str:
    """The columns side by side (views and features taken from the first column's read)."""
    if not cols:
        return ""
    lines: list[list[str]] = [["", "", *(c.label for c in cols)]]
    lines.append(["as of (UTC)", "", *(iso(c.now) for c in cols)])
    lines.append(["ttl", "", *(c.ttl for c in cols)])
    lines.append(["status", "", *(c.rows.row_status()[c.index] for c in cols)])
    for view, feats in _views(cols[0].rows).items():
        stamps = [c.rows.event_timestamps.get(view) for c in cols]
        lines.append([view, "event_timestamp",
                      *(iso(s[c.index]) or NULL if s else NULL for s, c in zip(stamps, cols, strict=True))])
        lines.append(["", "status", *(c.rows.status[view][c.index] if view in c.rows.status else "missing"
                                       for c in cols)])
        for f in feats:
            lines.append(["", f, *(_text(c.rows.values[f][c.index]) if f in c.rows.values else NULL
                                   for c in cols)])
    widths = [max(len(line[k]) for line in lines) for k in range(len(lines[0]))]
    return "\n".join("  ".join(cell.ljust(w) for cell, w in zip(line, widths, strict=True)).rstrip()
                     for line in lines)
