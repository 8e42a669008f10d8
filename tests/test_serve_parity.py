"""``mt5lab serve`` answers every request exactly like Feast's own handler, except the ttl policy.

A differential test: the same corpus of requests (valid, invalid, edge) goes over real HTTP to
``mt5lab serve`` (mt5lab's handler) and ``mt5lab serve --feast-handler`` (Feast's, unmodified) on one
store; status codes, content types and bodies must be equal. Error bodies are compared byte for
byte; a 200 body as JSON, with the feature columns keyed by name (Feast orders a service's features
by a Python set, so its own order changes from process to process). The only difference allowed is
the documented ttl policy, checked here independently of mt5lab's code: a value Feast serves as
``PRESENT`` whose event is older than its view's ttl comes back from mt5lab null with status
``OUTSIDE_MAX_AGE``; the corpus must show it (symbol ``OLD``) on both of mt5lab's paths.
"""

from __future__ import annotations

import http.client
import json
from datetime import UTC, datetime, timedelta

import pytest

from mt5lab.testing.sandbox import serve_process
from tests.test_serve import fresh_store  # noqa: F401  (the module-scoped store fixture)

pytestmark = pytest.mark.filterwarnings("ignore:Using `httpx` with `starlette.testclient`")

JSON = "application/json"
S = {"feature_service": "mt5_v1"}
ONE = {"symbol": ["GOOG"]}
MANY = ["GOOG", *(f"SYM{i:04d}" for i in range(998)), "OLD"]
FULL = {**S, "entities": {"symbol": ["GOOG"]}}
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def _refs(*refs: str, **extra) -> dict:
    return {"features": list(refs), "entities": ONE, **extra}


# (name, method, body: bytes or a JSON value, Content-Type or None for no header)
CORPUS: list[tuple[str, str, object, str | None]] = [
    ("service, 1 symbol", "POST", FULL, JSON),
    ("service, fresh + unknown symbol", "POST", {**S, "entities": {"symbol": ["GOOG", "NOPE"]}}, JSON),
    ("service, expired symbol OLD (ttl)", "POST", {**S, "entities": {"symbol": ["OLD", "GOOG"]}}, JSON),
    ("service, 1,000 symbols", "POST", {**S, "entities": {"symbol": MANY}}, JSON),
    ("service, duplicate symbols", "POST", {**S, "entities": {"symbol": ["GOOG", "GOOG", "NOPE"]}}, JSON),
    ("service, unknown symbol only", "POST", {**S, "entities": {"symbol": ["NOPE"]}}, JSON),
    ("service, empty-string symbol", "POST", {**S, "entities": {"symbol": [""]}}, JSON),
    ("service, non-ASCII symbol", "POST", {**S, "entities": {"symbol": ["ÄPFEL€"]}}, JSON),
    ("service, numeric symbols", "POST", {**S, "entities": {"symbol": [1, 2.5]}}, JSON),
    ("service, mixed str/int symbols", "POST", {**S, "entities": {"symbol": ["GOOG", 7, True]}}, JSON),
    ("service, null symbol", "POST", {**S, "entities": {"symbol": [None]}}, JSON),
    ("service, empty symbol list", "POST", {**S, "entities": {"symbol": []}}, JSON),
    ("service, empty entities", "POST", {**S, "entities": {}}, JSON),
    ("service, wrong join key", "POST", {**S, "entities": {"ticker": ["GOOG"]}}, JSON),
    ("service, extra entity column", "POST", {**S, "entities": {"symbol": ["GOOG"], "ticker": [1]}}, JSON),
    ("service, entity columns of 2 lengths", "POST",
     {**S, "entities": {"symbol": ["GOOG"], "ticker": [1, 2]}}, JSON),
    ("service, full_feature_names", "POST", {**FULL, "full_feature_names": True}, JSON),
    ("service, full_feature_names \"yes\"", "POST", {**FULL, "full_feature_names": "yes"}, JSON),
    ("service, full_feature_names \"maybe\"", "POST", {**FULL, "full_feature_names": "maybe"}, JSON),
    ("service, version metadata, OLD (ttl)", "POST",
     {**S, "include_feature_view_version_metadata": True, "entities": {"symbol": ["GOOG", "OLD"]}}, JSON),
    ("service plus features (ignored)", "POST", {**FULL, "features": ["ohlcv_features:close"]}, JSON),
    ("service plus unknown feature (ignored)", "POST", {**FULL, "features": ["ohlcv_features:nope"]}, JSON),
    ("service, extra fields", "POST", {**FULL, "foo": 1, "bar": {"x": [1]}}, JSON),
    ("service, NaN in an extra field", "POST",
     b'{"feature_service":"mt5_v1","entities":{"symbol":["GOOG"]},"x":NaN}', JSON),
    ("unknown service", "POST", {"feature_service": "nope", "entities": ONE}, JSON),
    ("refs, two views", "POST", _refs("price_action:cdl_doji", "ohlcv_features:close"), JSON),
    ("refs, interleaved views", "POST",
     _refs("price_action:cdl_doji", "ohlcv_features:close", "price_action:hl_range"), JSON),
    ("refs, full_feature_names", "POST",
     _refs("ohlcv_features:close", "technical_indicators_ma:sma_200", full_feature_names=True), JSON),
    ("refs, expired symbol OLD (ttl)", "POST",
     {"features": ["volume_indicators:obv", "ohlcv_features:close"], "entities": {"symbol": ["OLD"]}}, JSON),
    ("refs, empty service name", "POST", {**_refs("ohlcv_features:close"), "feature_service": ""}, JSON),
    ("refs, null service", "POST", {**_refs("ohlcv_features:close"), "feature_service": None}, JSON),
    ("unknown feature", "POST", _refs("ohlcv_features:nope"), JSON),
    ("real feature, wrong view", "POST", _refs("technical_indicators_ma:close"), JSON),
    ("unknown view", "POST", _refs("nope:close"), JSON),
    ("ref without a view", "POST", _refs("close"), JSON),
    ("ref with a version", "POST", _refs("ohlcv_features@v1:close"), JSON),
    ("ref to the join key", "POST", _refs("ohlcv_features:symbol"), JSON),
    ("duplicate refs", "POST", _refs("ohlcv_features:close", "ohlcv_features:close"), JSON),
    ("duplicate refs, full_feature_names", "POST",
     _refs("ohlcv_features:close", "ohlcv_features:close", full_feature_names=True), JSON),
    ("no features, no service", "POST", {"entities": ONE}, JSON),
    ("empty features", "POST", _refs(), JSON),
    ("features is a string", "POST", {"features": "ohlcv_features:close", "entities": ONE}, JSON),
    ("malformed JSON", "POST", b'{"feature_service": "mt5_v1", "entities": {', JSON),
    ("empty body", "POST", b"", JSON),
    ("missing entities", "POST", S, JSON),
    ("scalar symbol", "POST", {**S, "entities": {"symbol": "GOOG"}}, JSON),
    ("list body", "POST", [FULL], JSON),
    ("invalid UTF-8", "POST", b'{"feature_service":"mt5_v1","entities":{"symbol":["\xff"]}}', JSON),
    ("no Content-Type (README's old curl)", "POST", FULL, None),
    ("form Content-Type (curl -d)", "POST", FULL, "application/x-www-form-urlencoded"),
    ("text/plain Content-Type", "POST", FULL, "text/plain"),
    ("application/json; charset=utf-8", "POST", FULL, "application/json; charset=utf-8"),
    ("application/vnd.api+json", "POST", FULL, "application/vnd.api+json"),
    ("GET", "GET", None, None),
]


def send(port: int, method: str, body: object, content_type: str | None) -> tuple[int, str, bytes]:
    """One request on a fresh connection, headers exactly as given: (status, content type, body)."""
    raw = body if isinstance(body, bytes) or body is None else json.dumps(body).encode()
    headers = {} if content_type is None else {"Content-Type": content_type}
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    try:
        conn.request(method, "/get-online-features", body=raw, headers=headers)
        r = conn.getresponse()
        return r.status, r.getheader("content-type", ""), r.read()
    finally:
        conn.close()


def by_name(body: dict) -> dict:
    """A 200 body with its columns keyed by name (Feast's feature order is a set's)."""
    meta = dict(body["metadata"])
    names = meta.pop("feature_names")
    assert len(names) == len(set(names)) == len(body["results"])
    return {"columns": dict(zip(names, body["results"], strict=True)), "metadata": meta,
            **{k: v for k, v in body.items() if k not in ("results", "metadata")}}


def documented_difference(feast: dict, ttls: dict, view_of: dict[str, str], now: datetime) -> int:
    """Apply the documented difference to Feast's answer, in place, and return how many values it
    changed: a value Feast serves as PRESENT whose event is older than its view's ttl is null with
    OUTSIDE_MAX_AGE; one Feast serves as PRESENT at the epoch (its Redis store's answer for a symbol
    it does not have) is null with NOT_FOUND."""
    changed = 0
    for name, col in feast["columns"].items():
        view = name.split("__")[0] if "__" in name else view_of.get(name)
        if view not in ttls:
            continue
        for i, (status, stamp) in enumerate(zip(col["statuses"], col["event_timestamps"], strict=True)):
            t = datetime.fromisoformat(stamp.replace("Z", "+00:00"))
            if status != "PRESENT":
                continue
            if t == EPOCH:
                col["statuses"][i], col["values"][i] = "NOT_FOUND", None
            elif now - t > ttls[view]:
                col["statuses"][i], col["values"][i] = "OUTSIDE_MAX_AGE", None
            else:
                continue
            changed += 1
    return changed


def differential(*serve_args: str) -> tuple[list[str], dict[str, int], set[str]]:
    """Send the corpus to both handlers (same store, one run) and compare. Returns the table rows,
    Feast's status code per request and the requests where the documented difference applied."""
    from mt5lab.catalog import BY_NAME
    from mt5lab.feast_repo.store import feature_store

    fs = feature_store(None, "D1")
    ttls = {fv.name: fv.ttl for fv in fs.list_feature_views()}
    view_of = {name: f.view for name, f in BY_NAME.items()}
    assert len(CORPUS) >= 30 and len({c[0] for c in CORPUS}) == len(CORPUS)
    with serve_process("--workers", "1", *serve_args, timeout=120) as (ours, _), \
            serve_process("--workers", "1", "--feast-handler", *serve_args, timeout=120) as (theirs, _):
        answers = [(name, send(theirs, *req), send(ours, *req)) for name, *req in CORPUS]
    now = datetime.now(UTC)
    rows, bad, differs = [], [], set()
    for name, (f_code, f_type, f_body), (m_code, m_type, m_body) in answers:
        if f_code == 200:
            feast, ours_ = by_name(json.loads(f_body)), by_name(json.loads(m_body)) if m_code == 200 else None
            if documented_difference(feast, ttls, view_of, now):
                differs.add(name)
            equal = (m_code, m_type, ours_) == (f_code, f_type, feast)
        else:
            equal = (m_code, m_type, m_body) == (f_code, f_type, f_body)
        rows.append(f"| {name} | {f_code} | {m_code} | {'yes' if equal else 'NO'} |")
        if not equal:
            bad.append(f"{name}: Feast {f_code} {f_body[:300]!r}\n    mt5lab {m_code} {m_body[:300]!r}")
    print("\n| request | Feast | mt5lab | equal |\n|---|---|---|---|\n" + "\n".join(rows))
    assert bad == [], "\n".join(bad)
    codes = {name: f_code for name, (f_code, _, _), _ in answers}
    # The corpus covers what it claims: errors of each kind, Feast's and FastAPI's.
    assert {codes[n] for n in ("unknown feature", "real feature, wrong view", "duplicate refs",
                               "service, empty symbol list")} == {500}
    assert {codes[n] for n in ("malformed JSON", "empty body", "missing entities", "scalar symbol",
                               "list body", "no Content-Type (README's old curl)")} == {422}
    assert codes["unknown view"] == codes["unknown service"] == 404 and codes["GET"] == 405
    return rows, codes, differs


# The ttl applies on both of mt5lab's paths: its reader, and Feast's route plus the policy.
EXPIRED = {"service, expired symbol OLD (ttl)", "service, 1,000 symbols", "service, version metadata, OLD (ttl)",
           "refs, expired symbol OLD (ttl)"}


@pytest.mark.slow
def test_mt5lab_handler_answers_every_request_like_feasts(fresh_store):  # noqa: F811
    _, _, differs = differential()
    assert differs == EXPIRED


@pytest.mark.slow
@pytest.mark.services
def test_same_answers_on_the_team_profile_redis_and_postgres(tmp_path, monkeypatch):
    import polars as pl

    from mt5lab.bars.samples import load_sample
    from mt5lab.feast_repo import store as store_mod
    from mt5lab.feast_repo.store import apply
    from mt5lab.online.update import update
    from mt5lab.testing.sandbox import postgres_profile_env
    from tests.conftest import require_service

    require_service("PostgreSQL", "127.0.0.1", 5432)
    monkeypatch.setenv("MT5LAB_DATA_DIR", str(tmp_path / "data"))
    store_mod._STORES.clear()
    try:
        with postgres_profile_env():
            apply(None, "D1")
            goog = load_sample("GOOG")
            today = datetime.now(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
            update(goog.with_columns(pl.col("time") + (today - timedelta(days=1) - goog["time"][-1])),
                   calendar="equity")
            update(goog.head(300).with_columns(pl.lit("OLD").alias("symbol")), calendar="equity")
            _, _, differs = differential()
    finally:
        store_mod._STORES.clear()
    # Feast's Redis store answers a symbol it lacks with PRESENT: every request naming one differs.
    unknown = {"service, fresh + unknown symbol", "service, duplicate symbols", "service, unknown symbol only",
               "service, empty-string symbol", "service, non-ASCII symbol", "service, numeric symbols",
               "service, mixed str/int symbols"}
    assert differs == EXPIRED | unknown
