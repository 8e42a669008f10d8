"""A no-op ``apply`` leaves the registry alone: no Feast apply, no rewrite, and no Feast import.

Evidence without timings: the local registry file's bytes (mt5lab's atomic registry store gives
every write a new ``version_id`` and ``last_updated``), and whether ``feast`` was imported at all.
"""

from __future__ import annotations

import copy
import json
import os
import subprocess
import sys
from datetime import timedelta

import pytest

from tests.conftest import reset_caches


def _registry(d):
    from feast.protos.feast.core.Registry_pb2 import Registry

    raw = (d / "registry.db").read_bytes()
    return raw, Registry.FromString(raw)


@pytest.fixture
def goog(data_dir):
    from mt5lab.bars.ingest import write
    from mt5lab.bars.samples import load_sample
    from mt5lab.features.build import build
    from mt5lab.storage import open_store

    store = open_store()
    write(store, load_sample("GOOG"), [])
    build(store, ["D1"], progress=False)
    return data_dir


def test_second_apply_does_not_rewrite_the_registry(goog):
    from mt5lab.feast_repo.applied import SUFFIX
    from mt5lab.feast_repo.store import apply

    first = apply(None, "D1")
    assert first == {"views": 6, "features": 42, "services": 1, "catalog_views_present": 6}
    raw1, proto1 = _registry(goog)
    stamp = goog / f"registry.db{SUFFIX}"
    assert stamp.exists()
    stamp.unlink()  # force the comparison with Feast (not the stamp)
    reset_caches()
    assert apply(None, "D1") == first
    raw2, proto2 = _registry(goog)
    assert proto2.last_updated == proto1.last_updated and proto2.version_id == proto1.version_id
    assert raw2 == raw1, "Feast's apply ran although the registry already equals the catalog"
    assert stamp.exists(), "the comparison records the registry it found equal"


def test_a_stamped_noop_apply_never_imports_feast(goog):
    from mt5lab.feast_repo.store import apply

    first = apply(None, "D1")
    apply(None, "H1")  # a real apply of another project rewrites the registry: D1's stamp must survive it
    raw1, _ = _registry(goog)
    code = ("import sys, json\nfrom mt5lab.feast_repo.store import apply\n"
            "s = apply(None, 'D1')\nassert apply(None, 'H1')['views'] == 6\n"
            "print(json.dumps({'summary': s, 'feast': 'feast' in sys.modules}))")
    env = dict(os.environ, MT5LAB_DATA_DIR=str(goog))
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=300,
                         check=True)
    result = json.loads(out.stdout.strip().splitlines()[-1])
    assert result == {"summary": first, "feast": False}
    assert _registry(goog)[0] == raw1


def test_a_changed_registry_is_compared_and_repaired(goog):
    from mt5lab.feast_repo.store import apply, feature_store

    apply(None, "D1")
    fs = feature_store(None, "D1")
    fs.delete_feature_view("price_action")  # someone else changed the registry
    raw_deleted, proto_deleted = _registry(goog)
    assert "price_action" not in {v.spec.name for v in proto_deleted.feature_views}
    reset_caches()
    assert apply(None, "D1")["views"] == 6
    raw_fixed, proto_fixed = _registry(goog)
    assert raw_fixed != raw_deleted
    names = {v.spec.name for v in proto_fixed.feature_views if v.spec.project == "mt5lab"}
    assert "price_action" in names and len(names) == 6


def test_apply_after_materialize_writes_nothing(goog):
    from mt5lab.feast_repo.store import apply
    from mt5lab.online.materialize import materialize
    from mt5lab.storage import open_store

    apply(None, "D1")
    raw_applied, _ = _registry(goog)
    assert materialize(open_store(), None, "D1", progress=False).written == 1
    raw_mat, _ = _registry(goog)
    assert raw_mat != raw_applied, "materialize records its interval: the stamp no longer matches"
    reset_caches()
    apply(None, "D1")
    assert _registry(goog)[0] == raw_mat


def test_differences_sees_a_changed_ttl_a_missing_and_a_stale_view(goog):
    from mt5lab.feast_repo.applied import differences
    from mt5lab.feast_repo.definitions import definitions
    from mt5lab.feast_repo.store import apply, feature_store
    from mt5lab.storage import open_store

    apply(None, "D1")
    fs = feature_store(None, "D1")
    objects = definitions(open_store().feast_source("D1"), "D1")
    assert differences(fs, objects) == []
    changed = [copy.deepcopy(o) for o in objects]
    view = next(o for o in changed if o.name == "price_action")
    view.ttl = timedelta(days=1)
    assert differences(fs, changed) == ["FeatureView:price_action changed"]
    fewer = [o for o in objects if o.name not in ("price_action", "mt5_v1")]
    assert differences(fs, fewer) == ["FeatureView:price_action deleted", "FeatureService:mt5_v1 deleted"]
