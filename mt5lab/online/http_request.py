"""What a ``POST /get-online-features`` asks for, and whether mt5lab's handler may answer it.

The rule (README, *HTTP*): for every request, ``mt5lab serve`` answers with the status code and body
of Feast's own handler, except the ttl policy of :mod:`mt5lab.online.reader` (an expired value is
null with status ``OUTSIDE_MAX_AGE``, a value whose bar closes after now is null with ``INVALID``,
a symbol the online store lacks is ``NOT_FOUND``). So mt5lab's fast handler
(:mod:`mt5lab.online.route`) only takes a request that Feast's handler would answer with 200 and
whose body mt5lab rebuilds exactly (:func:`plan`); every other request goes to Feast's route
itself, and its errors are Feast's by construction. The fast subset:

- the body is read as JSON by FastAPI: a ``Content-Type`` of ``application/json`` or
  ``application/*+json`` (FastAPI's strict content type: none, or ``x-www-form-urlencoded`` as
  ``curl -d`` sends, is a 422), non-empty, valid JSON;
- a JSON object whose fields have the plain JSON types of Feast's ``GetOnlineFeaturesRequest``
  (``full_feature_names`` a true boolean, not ``"yes"``; no ``include_feature_view_version_metadata``);
- ``entities`` is exactly ``{join key: [one or more strings]}``;
- a feature service the registry has, or ``view:feature`` refs that each name a feature of a
  registered view, no two with the same output name (Feast: ``FeatureNameCollisionError``).

The registry's views and services are indexed once per registry refresh (:class:`Index`; Feast's
server refreshes its registry every ``registry_ttl_sec``), so the check is a few dict lookups.
"""

from __future__ import annotations

import email.message
import json
from dataclasses import dataclass
from datetime import datetime, timedelta

_CONTENT_TYPES: dict[bytes, bool] = {}


def json_content_type(value: bytes | None) -> bool:
    """FastAPI's test (``fastapi.routing``, strict content type) of a body it parses as JSON."""
    if not value:
        return False
    known = _CONTENT_TYPES.get(value)
    if known is None:
        message = email.message.Message()
        message["content-type"] = value.decode("latin-1")
        subtype = message.get_content_subtype()
        known = message.get_content_maintype() == "application" and (
            subtype == "json" or subtype.endswith("+json"))
        if len(_CONTENT_TYPES) > 256:
            _CONTENT_TYPES.clear()
        _CONTENT_TYPES[value] = known
    return known


@dataclass(frozen=True)
class View:
    features: frozenset[str]
    ttl: timedelta | None  # None: no ttl (Feast's 0)
    join_keys: tuple[str, ...]


@dataclass(frozen=True)
class Plan:
    """A request mt5lab answers itself: the reader key (feature service name or refs), the
    symbols, and ``full_feature_names``."""

    key: str | tuple[str, ...]
    symbols: list[str]
    full_feature_names: bool


def _unique(names: list[str]) -> bool:
    return len(set(names)) == len(names)


class Index:
    """The registry's feature views and services of one Feast project, rebuilt when Feast's registry
    cache is (``cached_registry_proto_created`` changes). ``version`` changes only when the content
    does, so callers can drop what they derived from it (readers)."""

    def __init__(self, fs, join_key: str):
        self.fs = fs
        self.join_key = join_key
        self.stamp: object = None
        self.content: tuple | None = None
        self.version = 0
        self.views: dict[str, View] = {}
        # name -> ([(view name to use, view, feature)], fast without / with full_feature_names)
        self.services: dict[str, tuple[list[tuple[str, str, str]], bool, bool]] = {}

    def refresh(self) -> None:
        registry = self.fs.registry
        stamp = getattr(registry, "cached_registry_proto_created", None)
        if stamp is not None and stamp == self.stamp:
            return
        self.stamp = stamp
        project = self.fs.project
        views = {}
        for fv in registry.list_feature_views(project, allow_cache=True):
            ttl = fv.ttl if fv.ttl and fv.ttl.total_seconds() > 0 else None
            views[fv.name] = View(frozenset(f.name for f in fv.features), ttl, tuple(fv.join_keys))
        services = {}
        for service in registry.list_feature_services(project, allow_cache=True):
            cols, plain = [], True
            for p in service.feature_view_projections:
                cols += [(p.name_to_use(), p.name, f.name) for f in p.features]
                view = views.get(p.name)
                plain = plain and view is not None and p.name_alias is None and p.version_tag is None \
                    and not p.join_key_map and view.join_keys == (self.join_key,) \
                    and all(f.name in view.features for f in p.features)
            services[service.name] = (cols, plain and _unique([f for _, _, f in cols]),
                                      plain and _unique([f"{v}__{f}" for v, _, f in cols]))
        content = (views, services)
        if content != self.content:
            self.views, self.services, self.content = views, services, content
            self.version += 1

    def fast_ref(self, ref: object) -> tuple[str, str] | None:
        """``(view, feature)`` of a ref mt5lab reads itself, else None (Feast decides)."""
        if not isinstance(ref, str):
            return None
        view_name, sep, feature = ref.partition(":")
        view = self.views.get(view_name)
        if not sep or view is None or feature not in view.features or view.join_keys != (self.join_key,):
            return None
        return view_name, feature

    def columns(self, feature_service, features, full_feature_names: bool) -> dict[str, str]:
        """Output feature name -> view, for a request Feast answered (the ttl policy's map)."""
        if feature_service:
            cols = self.services.get(feature_service, ([], False, False))[0]
        else:
            cols = []
            for ref in features:
                head, _, feature = str(ref).partition(":")
                view = head.partition("@")[0]
                cols.append((head, view, feature))
        return {f"{use}__{f}" if full_feature_names else f: view for use, view, f in cols if view in self.views}


def plan(index: Index, raw: bytes, content_type: bytes | None) -> Plan | None:
    """The :class:`Plan` of a request mt5lab answers exactly as Feast would (with the ttl policy),
    or None: then Feast's handler answers it."""
    if not raw or not json_content_type(content_type):
        return None
    try:
        body = json.loads(raw)
    except ValueError:  # JSONDecodeError, UnicodeDecodeError: Feast's 422 / 400
        return None
    if not isinstance(body, dict):
        return None
    entities = body.get("entities")
    service = body.get("feature_service")
    features = body.get("features", [])
    ffn = body.get("full_feature_names", False)
    if (not isinstance(entities, dict) or len(entities) != 1 or type(ffn) is not bool
            or body.get("include_feature_view_version_metadata", False) is not False
            or not (service is None or isinstance(service, str)) or not isinstance(features, list)
            or not all(isinstance(f, str) for f in features)):
        return None
    symbols = entities.get(index.join_key)
    if not isinstance(symbols, list) or not symbols or not all(type(s) is str for s in symbols):
        return None
    index.refresh()
    if service:  # Feast ignores "features" when a service is named
        known = index.services.get(service)
        return Plan(service, symbols, ffn) if known and known[2 if ffn else 1] else None
    refs = [index.fast_ref(f) for f in features]
    if not refs or None in refs:
        return None
    if not _unique([f"{v}__{f}" if ffn else f for v, f in refs]):
        return None
    return Plan(tuple(features), symbols, ffn)


def parse_ts(text: str) -> datetime | None:
    """A Feast response timestamp (``2024-01-02T00:00:00[.fff[fff[fff]]]Z``); None for the epoch."""
    if text == "1970-01-01T00:00:00Z":
        return None
    head, dot, frac = text.rstrip("Z").partition(".")
    return datetime.fromisoformat(head + (dot + frac[:6] if dot else "") + "+00:00")
