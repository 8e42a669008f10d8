"""What a bar file is before any value is parsed: its encoding, delimiter, header, and which column
is which.

MT5 terminal exports are tab-separated with ``<DATE> <TIME> <OPEN> ...`` headers, in UTF-8, UTF-8 with
BOM or UTF-16 (BOM, or detected by its NUL bytes), LF or CRLF; daily files have no ``<TIME>``. MT4
History Center exports have no header: ``2019.02.15,14:00,open,high,low,close,volume`` (the volume is
tick volume), recognized by their first line. Generic
tables match canonical names case-insensitively or through an alias (``date``/``datetime``/
``timestamp`` -> time, ``volume`` -> tick_volume, ``vol`` -> real_volume), or a ``mapping``. Every
failure is a :class:`~mt5lab.errors.BarValidationError` built by the caller's ``fail`` (file, row, rule).
"""

from __future__ import annotations

import codecs
import csv
import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from mt5lab.errors import BarValidationError, ConfigError

FORMATS = ("auto", "mt5", "csv", "parquet")
_MT5 = {"<DATE>": "date", "<TIME>": "clock", "<OPEN>": "open", "<HIGH>": "high", "<LOW>": "low",
        "<CLOSE>": "close", "<TICKVOL>": "tick_volume", "<VOL>": "real_volume", "<SPREAD>": "spread"}
_ALIASES = {"time": ("time", "date", "datetime", "timestamp"), "tick_volume": ("tick_volume", "volume"),
            "real_volume": ("real_volume", "vol"), "symbol": ("symbol",), "timeframe": ("timeframe",),
            **{c: (c,) for c in ("open", "high", "low", "close", "spread")}}
_REQUIRED = ("time", "open", "high", "low", "close", "tick_volume")
Fail = Callable[..., BarValidationError]
MT4_COLUMNS: dict[str, int | tuple[int, ...]] = {"time": (0, 1), "open": 2, "high": 3, "low": 4, "close": 5,
                                                  "tick_volume": 6}
"""An MT4 History Center export's columns: date, time, open, high, low, close, tick volume."""
_MT4_FIRST = (re.compile(r"\d{4}\.\d{2}\.\d{2}"), re.compile(r"\d{1,2}:\d{2}(:\d{2})?"))


@dataclass(frozen=True)
class TextLayout:
    """What the first line of a delimited text file says: encoding, delimiter and header."""

    encoding: str  # Python codec
    arrow_encoding: str  # pyarrow.csv ReadOptions encoding
    delimiter: str
    header: list[str]  # for a headerless MT4 export, the first data row
    mt4: bool = False  # a headerless MT4 History Center export: every line is data

    @property
    def looks_mt5(self) -> bool:
        return self.header[0].strip().startswith("<")

    @property
    def delimiter_hint(self) -> str:
        line = self.delimiter.join(self.header)
        for d, name in ((";", "semicolon"), ("|", "pipe")):
            if len(self.header) == 1 and d in line:
                return f" (the header is {name}-separated; expected tab or comma)"
        return ""


def sniff_text(path: Path, fail: Fail) -> TextLayout:
    """Detect encoding (BOM, else UTF-16 by NUL bytes, else UTF-8), delimiter and header."""
    with open(path, "rb") as fh:
        head = fh.read(1 << 16)
    if head.startswith(codecs.BOM_UTF8):
        enc, arrow_enc = "utf-8-sig", "utf8"
    elif head.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        enc = arrow_enc = "utf-16"
    elif len(head) >= 4 and head[1] == 0 and head[3] == 0 and head[0] != 0:
        enc = arrow_enc = "utf-16-le"
    elif len(head) >= 4 and head[0] == 0 and head[2] == 0 and head[1] != 0:
        enc = arrow_enc = "utf-16-be"
    else:
        enc, arrow_enc = "utf-8", "utf8"
    try:
        text = codecs.getincrementaldecoder(enc)().decode(head, final=len(head) < 1 << 16)
    except UnicodeDecodeError as exc:
        raise fail("invalid encoding", f"not {enc}: {exc.reason}") from exc
    if not text.strip():
        raise fail("empty file", "no header and no data")
    if "\n" not in text and len(head) == 1 << 16:
        raise fail("unreadable file", "first line longer than 64 KiB")
    line = text.splitlines()[0]
    if not line.strip():
        raise fail("missing header", "the first line is blank")
    delimiter = "\t" if "\t" in line else ","
    fields = next(csv.reader([line], delimiter=delimiter))
    mt4 = (len(fields) == len(MT4_COLUMNS) + 1 and bool(_MT4_FIRST[0].fullmatch(fields[0].strip()))
           and bool(_MT4_FIRST[1].fullmatch(fields[1].strip())))
    return TextLayout(enc, arrow_enc, delimiter, fields, mt4)


def first_bad_row(path: Path, layout: TextLayout) -> tuple[int | None, int]:
    """Error path only: the first data row whose field count differs from the header's."""
    with open(path, encoding=layout.encoding, newline="") as fh:
        rows = csv.reader(fh, delimiter=layout.delimiter)
        if not layout.mt4:
            next(rows, None)
        n = 0
        for fields in rows:
            if fields:
                n += 1
                if len(fields) != len(layout.header):
                    return n, len(fields)
    return None, 0


def _missing(fail: Fail, names: list[str], header: list[str], hint: str) -> BarValidationError:
    found = ", ".join(repr(h) for h in header)
    return fail(f"missing column {names[0]}", f"missing {', '.join(names)}; columns found: {found}{hint}")


def resolve_mt5(layout: TextLayout, timeframe: str, fail: Fail) -> dict[str, int | tuple[int, ...]]:
    """Canonical name -> column index for an MT5 export; ``<TIME>`` is optional for D1/W1 only."""
    index = {h.strip().upper(): i for i, h in enumerate(layout.header)}
    need = [c for c in _MT5 if c != "<TIME>" or timeframe not in ("D1", "W1")]
    missing = [c for c in need if c not in index]
    if missing:
        raise _missing(fail, missing, layout.header, layout.delimiter_hint)
    cols: dict[str, int | tuple[int, ...]] = {_MT5[c]: index[c] for c in need if c not in ("<DATE>", "<TIME>")}
    cols["time"] = (index["<DATE>"], index["<TIME>"]) if "<TIME>" in index else index["<DATE>"]
    return cols


def resolve_table(header: list[str], mapping: dict[str, str] | None, symbol: str | None, fail: Fail,
                  hint: str) -> dict[str, int | tuple[int, ...]]:
    """Canonical name -> column index (or (date, time) pair) for a generic table."""
    lower = [h.strip().lower() for h in header]
    cols: dict[str, int | tuple[int, ...]] = {}
    for name, src in (mapping or {}).items():
        if name not in _ALIASES:
            raise ConfigError(f"mapping key {name!r} is not a bar column; expected one of {', '.join(_ALIASES)}")
        hits = [i for i, h in enumerate(header) if h == src] or [i for i, h in enumerate(lower) if h == src.lower()]
        if not hits:
            raise _missing(fail, [src], header, hint)
        cols[name] = hits[0]
    mapped = set((mapping or {}).values())
    for name, aliases in _ALIASES.items():
        if name in cols:
            continue
        hits = [i for i, h in enumerate(lower) if h in aliases and header[i] not in mapped]
        if name == "time" and {"date", "time"} <= {lower[i] for i in hits} and len(hits) == 2:
            cols[name] = (lower.index("date"), lower.index("time"))
        elif len(hits) > 1:
            raise fail(f"ambiguous column {name}", f"{', '.join(header[i] for i in hits)} all match; pass mapping=")
        elif hits:
            cols[name] = hits[0]
        elif name == "time" and lower and lower[0] in ("", "unnamed: 0", "index"):
            cols[name] = 0  # a pandas index written by to_csv()
    missing = [c for c in _REQUIRED if c not in cols]
    if missing:
        raise _missing(fail, missing, header, hint)
    if "symbol" not in cols and symbol is None:
        raise fail("missing column symbol", "the file has no symbol column; pass symbol=...")
    return cols
