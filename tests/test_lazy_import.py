"""``import mt5lab`` is cheap: Feast, Spark and the plotting stack load only when a name needs them."""

from __future__ import annotations

import json
import subprocess
import sys

HEAVY = ("feast", "pyspark", "matplotlib", "talib", "pandas")


def _modules_after(code: str) -> dict:
    probe = (f"import sys, json\n{code}\n"
             f"print(json.dumps({{m: m in sys.modules for m in {list(HEAVY)!r}}}))")
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=300, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def test_import_mt5lab_loads_no_heavy_stack():
    loaded = _modules_after("import mt5lab")
    assert loaded == dict.fromkeys(HEAVY, False)


def test_a_notebooks_import_cell_loads_no_heavy_stack():
    loaded = _modules_after("from mt5lab import notebook, plots, research")
    assert loaded == dict.fromkeys(HEAVY, False)


def test_the_public_api_still_resolves_and_loads_what_it_needs():
    loaded = _modules_after(
        "import mt5lab\n"
        "from mt5lab import compute_features, training_set, save_training_set, update, online_features\n"
        "from mt5lab import OnlineReader, freshness, feature_store, follow, catalog\n"
        "assert compute_features.__module__ == 'mt5lab.features.compute'\n"
        "assert training_set.__module__ == 'mt5lab.training.assemble'\n"
        "assert save_training_set.__module__ == 'mt5lab.training.manifest'\n"
        "assert update.__module__ == 'mt5lab.online.update' and callable(update)\n"
        "assert online_features.__module__ == OnlineReader.__module__ == 'mt5lab.online.reader'\n"
        "assert freshness.__module__ == 'mt5lab.online.freshness'\n"
        "assert feature_store.__module__ == 'mt5lab.feast_repo.store'\n"
        "assert follow.__module__ == 'mt5lab.online.follow'\n"
        "assert len(catalog.FEATURE_NAMES) == 42 and mt5lab.catalog is catalog\n"
        "assert mt5lab.plots.views.__name__ == 'mt5lab.plots.views'\n"
        "assert mt5lab.research.monitoring.__name__ == 'mt5lab.research.monitoring'\n")
    assert loaded["talib"] and loaded["matplotlib"], "compute_features needs TA-Lib, plots.views matplotlib"


def test_an_unknown_name_is_an_attribute_error():
    import pytest

    import mt5lab

    with pytest.raises(AttributeError, match="no attribute 'nope'"):
        mt5lab.nope  # noqa: B018
    with pytest.raises(AttributeError):
        mt5lab.plots.nope  # noqa: B018
    assert {"training_set", "plots", "catalog"} <= set(dir(mt5lab))
