"""Matplotlib figures of the research results; every figure is returned and saved as PNG too.

:mod:`.base` (saving, date axes, the demo's price chart), then one module per subject: :mod:`.quality`
(bars with gaps and rejected rows), :mod:`.views` (one figure per feature view), :mod:`.features`
(correlation heatmap, warm-up), :mod:`.training` (labels, nulls, splits), :mod:`.serving` (freshness
across a closure), :mod:`.monitoring` (PSI and drift).

May import: :mod:`mt5lab.research` and every stage below it. Only the notebook layer and the
entry points (the demo) import plots.
"""

from mt5lab.plots import base, features, monitoring, quality, serving, training, views

__all__ = ["base", "features", "monitoring", "quality", "serving", "training", "views"]
