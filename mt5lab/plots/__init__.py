"""Matplotlib figures of the research results; every figure is returned and saved as PNG too.

:mod:`.base` (saving, date axes, the demo's price chart), then one module per subject: :mod:`.quality`
(bars with gaps and rejected rows), :mod:`.views` (one figure per feature view), :mod:`.features`
(correlation heatmap, warm-up), :mod:`.training` (labels, nulls, splits), :mod:`.serving` (freshness
across a closure), :mod:`.monitoring` (PSI and drift).

May import: :mod:`mt5lab.research` and every stage below it. Only the notebook layer and the
entry points (the demo) import plots.
"""

import importlib
import importlib.util

_MODULES = ("base", "features", "monitoring", "quality", "serving", "training", "views")
__all__ = list(_MODULES)


def __getattr__(name: str):
    """``mt5lab.plots.<module>`` (any module of the package), imported on first use (a notebook's
    import cell stays cheap)."""
    if name.startswith("_") or importlib.util.find_spec(f"mt5lab.plots.{name}") is None:
        raise AttributeError(f"module 'mt5lab.plots' has no attribute {name!r}")
    module = importlib.import_module(f"mt5lab.plots.{name}")
    globals()[name] = module
    return module


def __dir__() -> list[str]:
    return sorted({*globals(), *_MODULES})
