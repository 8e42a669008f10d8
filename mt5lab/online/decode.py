"""Feast's stored online bytes as numpy columns: ``Value`` protos and ``Timestamp`` protos.

Both online stores keep one serialized ``feast.types.Value`` per feature and symbol (Redis: a hash
field; SQLite: the ``value`` column) and the view's event time (Redis: a serialized
``google.protobuf.Timestamp`` in ``_ts:<view>``; SQLite: the ``event_ts`` text). Feast parses every
value into a proto and then into a Python object; a basket of 100 symbols x 42 features is 4,200
protos. Here a whole column is decoded at once:

- a set double is always the 9 bytes ``0x29`` + the little-endian IEEE 754 double (protobuf's
  encoding of a ``oneof`` member ``double_val``, field 5, wire type 1). When every value of a column
  has that form, the column is one ``numpy.frombuffer``; otherwise each value is decoded on its own,
  through the ``Value`` proto for anything but that form.
- an unset ``Value`` (empty bytes, or no field at all) is **null**, as Feast returns ``None``;
  a stored NaN double stays NaN (Feast returns ``nan``), and is not null.

Event times are converted exactly as Feast's stores do (Redis:
``datetime.fromtimestamp(seconds + nanos / 1e9, tz=UTC)``; SQLite: its ``timestamp`` converter on the
stored epoch seconds, then as UTC) and cached by their bytes, since every symbol of a bar shares one.
"""

from __future__ import annotations

from datetime import UTC, datetime

import numpy as np

from mt5lab.online.tables import to_python

_DOUBLE_TAG = 0x29
_TAGGED = np.dtype([("tag", "u1"), ("value", "<f8")])  # packed: itemsize 9, one serialized double
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


_VALUE = None


def _python(raw: bytes):
    """One serialized ``Value`` as Feast's ``to_dict`` gives it (None when unset)."""
    global _VALUE
    if _VALUE is None:
        from feast.protos.feast.types.Value_pb2 import Value

        _VALUE = Value
    return to_python(_VALUE.FromString(raw))


def doubles(raw: list) -> tuple[np.ndarray, np.ndarray]:
    """A float64 column and its null mask from serialized ``Value``\\ s (``None``/``b""``: null).

    Shape ``(len(raw),)`` each. Nulls hold 0.0 in the values (read the mask).
    """
    n = len(raw)
    # The usual case: every set value is a 9-byte double; nulls are None or b"". One join, one check
    # of every 9th byte, one structured view.
    present = [b for b in raw if b]
    k = len(present)
    joined = b"".join(present)
    if len(joined) == 9 * k and joined[::9] == b"\x29" * k:
        vals = np.frombuffer(joined, _TAGGED)["value"]
        if k == n:
            return vals.copy(), np.zeros(n, bool)
        null = np.fromiter([not b for b in raw], bool, n)
        out = np.zeros(n, np.float64)
        out[~null] = vals
        return out, null
    # Mixed: nulls, or values of another form. The 9-byte doubles still decode as one array.
    raw = [b or b"" for b in raw]
    lens = np.fromiter(map(len, raw), np.intp, n)
    buf = np.frombuffer(b"".join(raw), np.uint8)
    starts = np.cumsum(lens) - lens
    vals = np.zeros(n, np.float64)
    null = lens == 0
    nine = lens == 9
    if nine.any():
        mat = buf[starts[nine][:, None] + np.arange(9)]
        tagged = mat[:, 0] == _DOUBLE_TAG
        at = np.flatnonzero(nine)[tagged]
        vals[at] = np.ascontiguousarray(mat[tagged, 1:]).view("<f8").reshape(-1)
        nine[np.flatnonzero(nine)[~tagged]] = False
    for i in np.flatnonzero(~null & ~nine).tolist():
        v = _python(raw[i])
        if v is None:
            null[i] = True
        else:
            vals[i] = float(v)
    return vals, null


_INTS: dict[bytes, int | None] = {}  # serialized Value -> its int (None: unset), bounded below


def integers(raw: list) -> tuple[np.ndarray, np.ndarray]:
    """An int64 column and its null mask from serialized ``Value``\\ s (``None``/``b""``: null).

    Each distinct serialized value is parsed once through the ``Value`` proto and remembered (the
    catalog's int features repeat: pattern codes, volumes of liquid hours), so a basket costs a
    dict lookup per value."""
    n = len(raw)
    vals = np.zeros(n, np.int64)
    null = np.zeros(n, bool)
    cache = _INTS
    for i, b in enumerate(raw):
        if not b:
            null[i] = True
            continue
        v = cache.get(b, cache)
        if v is cache:
            v = _python(b)
            v = None if v is None else int(v)
            if len(cache) >= 100_000:
                cache.clear()
            cache[b] = v
        if v is None:
            null[i] = True
        else:
            vals[i] = v
    return vals, null


def column(raw: list, dtype: str) -> tuple[np.ndarray, np.ndarray]:
    """:func:`doubles` for a catalog ``Float64`` feature, :func:`integers` for ``Int64``."""
    return doubles(raw) if dtype == "Float64" else integers(raw)


class Stamps:
    """Event times from their stored form, cached (every symbol of one bar shares one).

    ``redis(b)`` takes a serialized ``Timestamp`` (None/empty/epoch 0: absent, returns None);
    ``sqlite(text)`` the ``event_ts`` Feast's SQLite store writes (epoch seconds). Both return a
    timezone-aware UTC ``datetime`` equal to what Feast's ``online_read`` returns.
    """

    def __init__(self, limit: int = 100_000):
        self._cache: dict = {}
        self._limit = limit

    def _put(self, key, value):
        if len(self._cache) >= self._limit:
            self._cache.clear()
        self._cache[key] = value
        return value

    def redis(self, raw: bytes | None) -> datetime | None:
        if not raw:
            return None
        hit = self._cache.get(raw, False)
        if hit is not False:
            return hit
        from google.protobuf.timestamp_pb2 import Timestamp

        ts = Timestamp()
        ts.ParseFromString(raw)
        # Feast's RedisOnlineStore._get_features_for_entity, exactly (float seconds included).
        t = datetime.fromtimestamp(ts.seconds + ts.nanos / 1_000_000_000.0, tz=UTC)
        return self._put(raw, None if t == _EPOCH else t)

    def sqlite(self, text) -> datetime | None:
        if text is None:
            return None
        hit = self._cache.get(text)
        if hit is not None:
            return hit
        if isinstance(text, datetime):
            t = text
        else:
            s = str(text)
            # Feast's SQLite store adapts a datetime to int(val.timestamp()) and converts it back with
            # datetime.fromtimestamp(int(val)) (both in local time, which cancels), then as UTC.
            t = datetime.fromtimestamp(int(s)) if s.lstrip("-").isdigit() else datetime.fromisoformat(s)  # noqa: DTZ006
        t = t.astimezone(UTC) if t.tzinfo is not None else t.replace(tzinfo=UTC)
        return self._put(text, t)


def ns_matrix(columns: list[list[datetime | None]], absent: int) -> np.ndarray:
    """Nanoseconds since the epoch of several equally long lists of UTC datetimes, shape
    ``(len(columns), n)`` int64, ``absent`` where an entry is None (one array built)."""
    ns, nat = _ns, absent
    flat = [nat if t is None else ns(t) for col in columns for t in col]
    return np.array(flat, np.int64).reshape(len(columns), -1 if flat else 0)


_NS: dict[datetime, int] = {}


def _ns(t: datetime) -> int:
    ns = _NS.get(t)
    if ns is None:
        d = t - _EPOCH
        ns = (d.days * 86_400 + d.seconds) * 1_000_000_000 + d.microseconds * 1_000
        if len(_NS) > 100_000:
            _NS.clear()
        _NS[t] = ns
    return ns
