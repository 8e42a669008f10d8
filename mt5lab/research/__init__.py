"""Computations behind the research notebooks: tables and numbers, never figures.

One module per question a notebook asks: :mod:`.quality` (what validation found; 01 and 06),
:mod:`.registry` (the applied Feast registry next to the catalog; 02), :mod:`.explore` (a symbol's
feature window and correlations; 03), :mod:`.lookahead` (training-set checks: look-ahead by
recomputation, nulls, splits; 04), :mod:`.serving` (what the online store serves and whether it
equals offline; 05), :mod:`.monitoring` (PSI drift; 06). Figures of these results live in
:mod:`mt5lab.plots` (compute and plot kept apart, as alphalens does).

May import: every stage below (bars, storage, feast_repo, features, training, online). Not plots.
"""

from mt5lab.research import explore, lookahead, monitoring, quality, registry, serving

__all__ = ["explore", "lookahead", "monitoring", "quality", "registry", "serving"]
