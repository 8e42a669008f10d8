"""``POST /predict``: the live prediction endpoint, for Feast's feature server (``mt5lab serve``) or
any Starlette/FastAPI app.

Request (``Content-Type: application/json``): ``{"symbols": ["EURUSD", ...]}``, optionally
``"now": "2024-03-05T13:00:00Z"`` (ISO with offset; replays). Response 200::

    {"model": {"label": ..., "model": ..., "feature_service": ..., "catalog_hash": ..., "timeframe": ...},
     "predictions": [{"symbol", "status", "prediction", "decision_time", "reason", "views"}, ...]}

``status`` is ``ok`` with a prediction, else why there is none (``expired``, ``missing``,
``future``: see :mod:`mt5lab.model.predict`). A body that is not a JSON object with a non-empty list
of string ``symbols``, or a bad ``now``, gets 422 ``{"detail": "<one line>"}``.

:func:`install` adds the route to an app; the model is loaded (contract checked against the
registry) when it is installed, so a mismatched model stops the server from starting.
"""

from __future__ import annotations

import json
from datetime import datetime

from mt5lab.model.artifact import load
from mt5lab.model.predict import predict_online

PATH = "/predict"


def _bad(msg: str):
    from starlette.responses import JSONResponse

    return JSONResponse({"detail": msg}, status_code=422)


def parse(body: bytes) -> tuple[list[str], datetime | None]:
    """``(symbols, now)`` from a request body; ``ValueError`` with one line when it is invalid."""
    try:
        req = json.loads(body or b"null")
    except ValueError:
        raise ValueError("body is not JSON") from None
    if not isinstance(req, dict):
        raise ValueError('body must be a JSON object like {"symbols": ["EURUSD"]}')
    syms = req.get("symbols")
    if not isinstance(syms, list) or not syms or not all(isinstance(s, str) and s for s in syms):
        raise ValueError('"symbols" must be a non-empty list of symbol strings')
    now = req.get("now")
    if now is None:
        return syms, None
    try:
        t = datetime.fromisoformat(str(now).replace("Z", "+00:00"))
    except ValueError:
        raise ValueError(f'"now" {now!r} is not an ISO time') from None
    if t.tzinfo is None:
        raise ValueError(f'"now" {now!r} has no UTC offset')
    return syms, t


def handler(model_dir, profile=None):
    """The ASGI endpoint answering ``POST /predict`` with the model in ``model_dir``."""
    from starlette.concurrency import run_in_threadpool
    from starlette.responses import JSONResponse

    saved = load(model_dir, profile=profile)
    info = {k: saved.contract.get(k) for k in ("label", "model", "feature_service", "catalog_hash", "timeframe")}

    async def endpoint(request):
        if request.headers.get("content-type", "").split(";")[0].strip() != "application/json":
            return _bad("Content-Type must be application/json")
        try:
            symbols, now = parse(await request.body())
        except ValueError as exc:
            return _bad(str(exc))
        preds = await run_in_threadpool(predict_online, saved, symbols, profile=profile, now=now)
        return JSONResponse({"model": info, "predictions": [p.as_dict() for p in preds]})

    return endpoint


def install(app, model_dir, profile=None) -> None:
    """Add ``POST /predict`` (the model in ``model_dir``) to a Starlette or FastAPI ``app``."""
    from starlette.routing import Route

    app.router.routes.append(Route(PATH, handler(model_dir, profile), methods=["POST"]))
