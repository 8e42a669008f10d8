"""Computations behind the research notebooks: tables and numbers, never figures.

One module per question a notebook asks: :mod:`.quality` (what validation found; 01 and 06),
:mod:`.registry` (the applied Feast registry next to the catalog; 02), :mod:`.explore` (a symbol's
feature window and correlations; 03), :mod:`.lookahead` (training-set checks: look-ahead by
recomputation, nulls, splits; 04), :mod:`.serving` (what the online store serves and whether it
equals offline; 05), :mod:`.replay` (what was served and how fresh, at a past instant; 05),
:mod:`.monitoring` (PSI drift; 06). Figures of these results live in
:mod:`mt5lab.plots` (compute and plot kept apart, as alphalens does).

May import: every stage below (bars, storage, feast_repo, features, training, online). Not plots.
"""

import importlib
import importlib.util

_MODULES = ("explore", "lookahead", "monitoring", "quality", "registry", "replay", "serving")
__all__ = list(_MODULES)


def __getattr__(name: str):
    """``mt5lab.research.<module>`` (any module of the package), imported on first use (a notebook's
    import cell stays cheap)."""
    if name.startswith("_") or importlib.util.find_spec(f"mt5lab.research.{name}") is None:
        raise AttributeError(f"module 'mt5lab.research' has no attribute {name!r}")
    module = importlib.import_module(f"mt5lab.research.{name}")
    globals()[name] = module
    return module


def __dir__() -> list[str]:
    return sorted({*globals(), *_MODULES})
