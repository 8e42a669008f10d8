"""A no-op ``apply`` without Feast: is the registry still what the catalog would write?

``mt5lab apply`` (and a notebook's ``nb.apply``) is called far more often than anything changes, and
most of its cost is importing Feast (seconds to tens of seconds on a loaded machine), not Feast's
apply. Two checks, cheapest first:

1. **Stamp** (local profile, file registry; no Feast import). After every apply that left the
   registry equal to the catalog, ``<registry>.applied.json`` records the SHA-256 of the registry
   file's bytes and, per Feast project, a fingerprint of everything ``apply`` registers from:
   the source text of the modules that generate the Feast objects (:mod:`mt5lab.catalog`,
   :mod:`mt5lab.feast_repo.definitions`, the offline store's module that builds the batch source),
   the Feast version, the project, the registry, online-store and feature-file paths. If the registry
   file still has exactly those bytes and the fingerprint is the same, the registry still equals the
   catalog: nothing to do. Anything else (another timeframe applied, a materialization, ``feast
   apply``, a catalog edit, a deleted ``online.db``) falls through to 2.
2. **Compare** (:func:`differences`, with Feast). The desired objects against the registry's, spec
   by spec (Feast's own rule in ``feast.diff.registry_diff``: the object's spec, ``project`` and the
   data source's ``meta`` timestamps ignored, and the ``entity_columns`` apply infers from the
   entities), plus stale views or services. Equal: Feast's ``apply``
   is not called, so the registry is not rewritten (its ``last_updated`` does not move).

Secrets: only the local profile (no credentials) uses the stamp; nothing else is written.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

from mt5lab.config import Profile, expand_defaults, project_for

SUFFIX = ".applied.json"
_SOURCES = ("catalog.py", "feast_repo/definitions.py", "storage/local.py", "storage/base.py")
# Cleared before comparing: where an object lives, when it was written, and what Feast's apply infers
# (``entity_columns`` follow from ``entities``, which are compared).
_IGNORED = {"project", "meta", "created_timestamp", "last_updated_timestamp", "entity_columns"}


def registry_file(profile: Profile) -> Path | None:
    """The local registry file of ``profile``; None for a SQL (or any non-file) registry."""
    reg = profile.raw.get("registry")
    if isinstance(reg, str):
        path = reg
    elif isinstance(reg, dict) and reg.get("registry_type", "file") == "file":
        path = reg.get("path")
    else:
        return None
    if not path or "://" in str(path):
        return None
    return Path(expand_defaults(str(path))).resolve()


def _online_file(profile: Profile) -> Path | None:
    path = profile.setting("online_store", "path")
    return Path(expand_defaults(str(path))).resolve() if path else None


def online_missing(profile: Profile) -> bool:
    """The local online store file is gone (Feast's apply creates its tables)."""
    online = _online_file(profile)
    return online is not None and not online.exists()


def _digest(path: Path) -> str | None:
    try:
        return hashlib.sha256(path.read_bytes()).hexdigest()
    except FileNotFoundError:
        return None


def fingerprint(profile: Profile, timeframe: str, features_path: Path | None = None) -> str:
    """What ``apply`` of ``timeframe`` would register, as a hash computed without Feast."""
    root = Path(__file__).resolve().parents[1]
    try:
        feast_version = version("feast")
    except PackageNotFoundError:  # pragma: no cover
        feast_version = "?"
    parts = {
        "sources": {name: hashlib.sha256((root / name).read_bytes()).hexdigest() for name in _SOURCES},
        "feast": feast_version,
        "project": project_for(profile.base_project, timeframe),
        "registry": str(registry_file(profile)),
        "online": str(_online_file(profile)),
        "features": str(features_path),
    }
    return hashlib.sha256(json.dumps(parts, sort_keys=True).encode()).hexdigest()


def _stamp_path(registry: Path) -> Path:
    return registry.with_name(registry.name + SUFFIX)


def _read(registry: Path) -> dict:
    try:
        data = json.loads(_stamp_path(registry).read_text())
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def unchanged(profile: Profile, timeframe: str, features_path: Path | None = None) -> dict | None:
    """The summary recorded by the last apply of ``timeframe`` if the registry still equals the
    catalog for it (stamp check, no Feast); None when that cannot be shown this cheaply."""
    registry = registry_file(profile)
    if registry is None:
        return None
    if online_missing(profile):
        return None
    stamp = _read(registry)
    entry = stamp.get("projects", {}).get(project_for(profile.base_project, timeframe))
    if not entry or stamp.get("registry_sha256") != _digest(registry):
        return None
    if entry.get("fingerprint") != fingerprint(profile, timeframe, features_path):
        return None
    return entry.get("summary")


def registry_digest(profile: Profile) -> str | None:
    """SHA-256 of the local registry file's bytes (None: no file registry, or no file yet)."""
    registry = registry_file(profile)
    return None if registry is None else _digest(registry)


def remember(profile: Profile, timeframe: str, summary: dict, features_path: Path | None = None,
             previous: str | None = None) -> None:
    """Record that the registry, as it is now, equals the catalog for ``timeframe``.

    ``previous``: the registry's digest before this apply wrote it. Feast's apply of one project
    leaves the others alone, so projects stamped at ``previous`` stay stamped."""
    registry = registry_file(profile)
    if registry is None or not registry.exists():
        return
    digest = _digest(registry)
    stamp = _read(registry)
    keep = stamp.get("registry_sha256") in {digest, previous} - {None}
    projects = stamp.get("projects", {}) if keep else {}
    projects[project_for(profile.base_project, timeframe)] = {
        "fingerprint": fingerprint(profile, timeframe, features_path), "summary": summary}
    target, tmp = _stamp_path(registry), None
    try:
        fd, tmp = tempfile.mkstemp(prefix=".applied-", suffix=".tmp", dir=target.parent)
        with os.fdopen(fd, "w") as fh:
            json.dump({"registry_sha256": digest, "projects": projects}, fh, indent=1, sort_keys=True)
        os.chmod(tmp, 0o644)
        os.replace(tmp, target)
    except OSError:  # a stamp is an optimisation: without it the next apply compares with Feast
        if tmp is not None:
            Path(tmp).unlink(missing_ok=True)


def _spec(obj):
    """The part of a Feast object that ``apply`` compares: its spec (a data source: all of it),
    with the project, the data source ``meta`` and timestamps cleared, at any depth."""
    proto = obj.to_proto()
    spec = proto if type(proto).__name__ == "DataSource" else proto.spec
    spec = type(spec).FromString(spec.SerializeToString())
    _clear(spec)
    return spec


def _clear(message) -> None:
    for field, value in message.ListFields():
        if field.name in _IGNORED:
            message.ClearField(field.name)
        elif field.type == field.TYPE_MESSAGE:
            if field.message_type.GetOptions().map_entry:
                continue  # a map<string, string> (tags): compared as it is
            for item in (value if field.is_repeated else [value]):
                _clear(item)


def differences(fs, objects: list) -> list[str]:
    """What ``apply(objects, partial=False)`` would change in ``fs``'s registry, as
    ``"<Type>:<name> <added|changed|deleted>"`` strings; ``[]`` means a no-op."""
    existing = {}
    for kind, listed in (("Entity", fs.list_entities()), ("DataSource", fs.list_data_sources()),
                         ("FeatureView", fs.list_feature_views()),
                         ("FeatureService", fs.list_feature_services())):
        for o in listed:
            existing[(kind, o.name)] = o
    out, wanted = [], set()
    for o in objects:
        kind = "DataSource" if type(o).__name__.endswith("Source") else type(o).__name__
        wanted.add((kind, o.name))
        old = existing.get((kind, o.name))
        if old is None:
            out.append(f"{kind}:{o.name} added")
        elif _spec(old) != _spec(o):
            out.append(f"{kind}:{o.name} changed")
    out += [f"{kind}:{name} deleted" for kind, name in existing
            if kind in ("FeatureView", "FeatureService") and (kind, name) not in wanted]
    return out
