"""mt5lab's ``POST /get-online-features`` handler, in front of Feast's app in Feast's server.

Why: Feast's handler costs ~7 ms of CPU per request for one symbol (request model, registry
lookups, response protos), which caps a 2-core machine far below 300 requests/s. This handler
reads through :class:`mt5lab.online.reader.OnlineReader` (Feast's public ``OnlineStore.online_read``,
views resolved once per worker) and writes **Feast's response bytes**: ``results`` (per column
``values``, ``statuses``, ``event_timestamps``; the join key first) then ``metadata.feature_names``.

The rule: for every request, the status code and body are Feast's handler's, except the ttl
policy (feast-dev/feast#6821): an expired value is null with status ``OUTSIDE_MAX_AGE`` (Feast's own
status for this case, which its server never emits), a value whose bar closes after now is null
with ``INVALID``, a symbol the online store lacks is ``NOT_FOUND`` (Feast's Redis store says
``PRESENT``). mt5lab answers only the requests :func:`mt5lab.online.http_request.plan` proves it
answers exactly; every other one (an unknown or misplaced feature, duplicate refs, no symbols,
malformed JSON, no JSON ``Content-Type``, another join key, ...) runs through Feast's route as it
is, so its status and body are Feast's, errors included. A 200 from Feast's route gets the ttl
policy too. The route is only installed when the profile's ``auth`` is ``no_auth``: it does not run
Feast's permission checks.
"""

from __future__ import annotations

import json
import logging
import math
from datetime import UTC, datetime

from mt5lab.catalog import ENTITY
from mt5lab.errors import StoreError
from mt5lab.feast_repo.store import feature_store
from mt5lab.online.http_request import Index, parse_ts, plan
from mt5lab.online.reader import OnlineReader

log = logging.getLogger(__name__)
PATH = "/get-online-features"
_STATUS = {"fresh": "PRESENT", "expired": "OUTSIDE_MAX_AGE", "future": "INVALID", "missing": "NOT_FOUND"}
_EPOCH = "1970-01-01T00:00:00Z"
_HEADERS = [(b"content-type", b"application/json")]
_STAMPS: dict[datetime, str] = {}


def _ts(t) -> str:
    """Feast's timestamp text (``feast.feature_server_utils._timestamp_to_str``): no fraction, or
    3 or 6 digits, as few as are exact."""
    if t is None:
        return _EPOCH
    s = _STAMPS.get(t)
    if s is None:
        u = t.astimezone(UTC) if t.utcoffset() else t
        us = u.microsecond
        frac = "" if not us else f".{us // 1000:03d}" if us % 1000 == 0 else f".{us:06d}"
        s = u.strftime("%Y-%m-%dT%H:%M:%S") + frac + "Z"
        if len(_STAMPS) > 100_000:
            _STAMPS.clear()
        _STAMPS[t] = s
    return s


def _finite(values: list) -> list:
    """Non-finite floats as Feast writes them (protobuf JSON: ``"NaN"``, ``"Infinity"``)."""
    return [("NaN" if math.isnan(v) else "Infinity" if v > 0 else "-Infinity")
            if isinstance(v, float) and not math.isfinite(v) else v for v in values]


_ENCODER = json.JSONEncoder(ensure_ascii=False, allow_nan=False, indent=None, separators=(",", ":"))


def dumps(payload) -> bytes:
    """Starlette's ``JSONResponse.render``, byte for byte (its ``json.dumps`` arguments, on one
    reused encoder instead of a new one per call)."""
    return _ENCODER.encode(payload).encode("utf-8")


def response(rows, full_feature_names: bool = False) -> dict:
    """An :class:`~mt5lab.online.reader.OnlineRows` as Feast's ``/get-online-features`` JSON."""
    n = len(rows.symbols)
    names = [ENTITY]
    results = [{"values": list(rows.symbols), "statuses": ["PRESENT"] * n, "event_timestamps": [_EPOCH] * n}]
    per_view = {v: ([_STATUS[s] for s in rows.status[v]], [_ts(t) for t in rows.event_timestamps[v]])
                for v in rows.status}
    for feature, values in rows.values.items():
        view = rows.view_of[feature]
        statuses, stamps = per_view[view]
        names.append(f"{view}__{feature}" if full_feature_names else feature)
        results.append({"values": values, "statuses": statuses, "event_timestamps": stamps})
    return {"results": results, "metadata": {"feature_names": names}}


def render(rows, full_feature_names: bool = False) -> bytes:
    """``dumps(response(rows, full_feature_names))`` (non-finite values as Feast writes them), byte
    for byte, composed from parts: a view's ``statuses`` and ``event_timestamps`` lists are encoded
    once and shared by its features, instead of once per feature (42 columns, 6 views)."""
    n = len(rows.symbols)
    names = [ENTITY]
    parts = [b'{"values":' + dumps(list(rows.symbols)) + b',"statuses":' + dumps(["PRESENT"] * n)
             + b',"event_timestamps":' + dumps([_EPOCH] * n) + b"}"]
    per_view = {v: b',"statuses":' + dumps([_STATUS[s] for s in rows.status[v]]) + b',"event_timestamps":'
                + dumps([_ts(t) for t in rows.event_timestamps[v]]) + b"}" for v in rows.status}
    for feature, values in rows.values.items():
        view = rows.view_of[feature]
        names.append(f"{view}__{feature}" if full_feature_names else feature)
        try:
            encoded = dumps(values)
        except ValueError:  # a NaN or infinity: Feast's strings
            encoded = dumps(_finite(values))
        parts.append(b'{"values":' + encoded + per_view[view])
    return b'{"results":[' + b",".join(parts) + b'],"metadata":{"feature_names":' + dumps(names) + b"}}"


def ttl_policy(payload: dict, view_of: dict[str, str], index: Index, now: datetime | None = None) -> dict:
    """Feast's 200 answer with mt5lab's status policy applied (the reader's, on the same values):
    per feature column of a view, ``PRESENT`` with the epoch -> null ``NOT_FOUND``, after ``now``
    -> null ``INVALID``, older than the view's ttl -> null ``OUTSIDE_MAX_AGE``."""
    now = now or datetime.now(UTC)
    names = (payload.get("metadata") or {}).get("feature_names") or []
    for name, col in zip(names, payload.get("results") or [], strict=False):
        view = index.views.get(view_of.get(name, ""))
        if view is None:
            continue
        values, statuses = col.get("values", []), col.get("statuses", [])
        for i, (status, stamp) in enumerate(zip(statuses, col.get("event_timestamps", []), strict=False)):
            if status != "PRESENT":
                continue
            t = parse_ts(stamp)
            new = ("NOT_FOUND" if t is None else "INVALID" if t > now
                   else "OUTSIDE_MAX_AGE" if view.ttl is not None and now - t > view.ttl else None)
            if new:
                statuses[i], values[i] = new, None
    return payload


def install(app, profile, timeframe: str):
    """``app`` (Feast's FastAPI app) behind the mt5lab handler: the ASGI app to serve.

    ``POST /get-online-features`` reaches the handler before FastAPI's middleware stack and router
    (about a third of a request's CPU for one symbol); every other request, and every request the
    handler does not answer itself (see the module docs), goes to ``app`` unchanged, so its status,
    body and error handling are Feast's. A read that fails (an online store down) is also handed to
    Feast's route, which then answers as Feast does (its exception handler's 500)."""
    from feast.feature_server import GetOnlineFeaturesRequest

    index = Index(feature_store(profile, timeframe), ENTITY)
    readers: dict = {}  # per worker process, created on first use, dropped when the registry changes
    seen = [index.version]

    def reader_for(key):
        if seen[0] != index.version:
            readers.clear()
            seen[0] = index.version
        if key not in readers:
            if len(readers) > 256:  # many distinct ref lists: keep memory bounded
                readers.clear()
            try:
                readers[key] = OnlineReader(profile, timeframe, key if isinstance(key, str) else list(key))
            except StoreError:
                readers[key] = None
        return readers[key]

    async def feast_answer(scope, receive, send, raw: bytes) -> None:
        """Feast's route on the same request (body replayed); a 200 gets the ttl policy."""
        replayed = False
        start: dict | None = None
        chunks: list[bytes] = []

        async def replay():
            nonlocal replayed
            if not replayed:
                replayed = True
                return {"type": "http.request", "body": raw, "more_body": False}
            return await receive()

        async def capture(message):
            nonlocal start
            if message["type"] == "http.response.start" and message["status"] == 200:
                start = message
                return
            if start is None or message["type"] != "http.response.body":
                await send(message)
                return
            chunks.append(message.get("body", b""))
            if message.get("more_body"):
                return
            body = b"".join(chunks)
            request = GetOnlineFeaturesRequest.model_validate_json(raw)
            index.refresh()
            view_of = index.columns(request.feature_service, request.features, request.full_feature_names)
            body = dumps(ttl_policy(json.loads(body), view_of, index))
            headers = [(k, v) for k, v in start["headers"] if k.lower() != b"content-length"]
            await send({**start, "headers": [(b"content-length", str(len(body)).encode()), *headers]})
            await send({"type": "http.response.body", "body": body})

        await app(scope, replay, capture)

    async def get_online_features(scope, receive, send) -> None:
        chunks = []
        while True:
            message = await receive()
            if message["type"] != "http.request":  # client went away
                return
            chunks.append(message.get("body", b""))
            if not message.get("more_body"):
                break
        raw = b"".join(chunks)
        content_type = next((v for k, v in scope["headers"] if k.lower() == b"content-type"), None)
        p = plan(index, raw, content_type)
        reader = reader_for(p.key) if p is not None else None
        if reader is None:
            await feast_answer(scope, receive, send, raw)
            return
        try:
            rows = reader.read(p.symbols)  # one online-store round trip: not worth a thread hop
            body = render(rows, p.full_feature_names)
        except Exception as exc:  # the store failed: Feast's route answers (and fails) as Feast does
            log.warning("fast read failed (%s): answering through Feast's handler", type(exc).__name__)
            await feast_answer(scope, receive, send, raw)
            return
        await send({"type": "http.response.start", "status": 200,
                    "headers": [(b"content-length", str(len(body)).encode()), *_HEADERS]})
        await send({"type": "http.response.body", "body": body})

    return _FastPath(app, get_online_features)


class _FastPath:
    """ASGI: ``POST /get-online-features`` to ``handler``, everything else (lifespan included) to ``app``."""

    def __init__(self, app, handler):
        self.app = app
        self.handler = handler

    async def __call__(self, scope, receive, send):
        if scope["type"] == "http" and scope["method"] == "POST" and scope["path"] == PATH:
            await self.handler(scope, receive, send)
        else:
            await self.app(scope, receive, send)
