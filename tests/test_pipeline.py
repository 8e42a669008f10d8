"""The embedded default end to end: samples -> features -> Feast registry -> online store."""

from __future__ import annotations

import hashlib
import os

import numpy as np
import polars as pl

from mt5lab import catalog
from mt5lab.bars.samples import SAMPLES
from mt5lab.demo import run_demo
from mt5lab.feast_repo.store import feature_store
from mt5lab.online.feast_read import online_frame
from mt5lab.storage import open_store


def _digests(root) -> dict[str, str]:
    out = {}
    for dirpath, _, files in os.walk(root):
        for f in files:
            if f.endswith(".png"):
                continue
            p = os.path.join(dirpath, f)
            out[os.path.relpath(p, root)] = hashlib.sha256(open(p, "rb").read()).hexdigest()
    return out


def test_registry_is_exactly_the_catalog(demo_store):
    for tf in ("D1", "H1"):
        fs = feature_store(None, tf)
        views = {v.name: v for v in fs.list_feature_views()}
        assert sorted(views) == sorted(catalog.VIEW_NAMES)
        assert sum(len(v.features) for v in views.values()) == 42
        services = fs.list_feature_services()
        assert [s.name for s in services] == ["mt5_v1"]
        served = [(p.name, f.name) for p in services[0].feature_view_projections for f in p.features]
        assert sorted(served) == sorted((f.view, f.name) for f in catalog.FEATURES)
        for f in catalog.FEATURES:
            field = next(x for x in views[f.view].features if x.name == f.name)
            assert str(field.dtype) == f.dtype, f.name
            assert field.description.startswith(f.description)
        for v in views.values():
            assert v.ttl == catalog.ttl(tf)
            assert [e for e in v.entities] == ["symbol"]


def test_online_equals_offline_latest_and_is_complete(demo_store):
    store = open_store()
    for name, sample in SAMPLES.items():
        online = pl.from_pandas(online_frame([name], sample.timeframe)).row(0, named=True)
        offline = store.latest_features(sample.timeframe, [name]).row(0, named=True)
        for f in catalog.FEATURES:
            on, off = online[f.name], offline[f.name]
            if f.name == "spread":  # the samples carry no spread: null, as the catalog says
                assert off is None and (on is None or np.isnan(on))
                continue
            assert off is not None, f"{name} {f.name} is null offline"
            assert on == off, f"{name} {f.name}: online {on} != offline {off}"


def test_demo_is_idempotent(demo_store):
    d = demo_store["dir"]
    before = _digests(d / "offline")
    online_before = online_frame(["GOOG"], "D1")
    counts = open_store().counts()
    res = run_demo(None, progress=False, echo=lambda *_: None)
    assert res["ingest"]["inserted"] == 0 and res["ingest"]["updated"] == 0
    assert _digests(d / "offline") == before
    assert open_store().counts() == counts
    assert online_frame(["GOOG"], "D1").equals(online_before)
    assert res["chart"].exists() and res["chart"].stat().st_size > 10_000


def test_data_dir_isolation(data_dir, demo_store):
    # A fresh MT5LAB_DATA_DIR is a second, independent store: nothing of the demo is visible.
    assert open_store().counts() == {}
    assert data_dir != demo_store["dir"]
