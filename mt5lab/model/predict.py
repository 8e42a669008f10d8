"""Live predictions: a saved model applied to the online features, ttl-aware.

For each symbol, the contract's features are read through :mod:`mt5lab.online.reader` (the same
reader as ``mt5lab online``, with mt5lab's ttl policy). A prediction is made only when **every**
view the model needs is ``fresh``; otherwise the symbol gets no prediction and a status saying why
(``expired``, ``future`` or ``missing``, with the view and its event timestamp). Nulls inside a
fresh row (warm-up, a source with no ``spread``) are values the model was trained with and go in
as NaN.

The **decision time** is the close of the bar the features come from (the views' common
``event_timestamp``): the instant a training-set row with the same features has as its
``event_timestamp``. The training-serving skew test compares this prediction with the offline one
(``training_set`` at the decision time, same model) for equality.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from datetime import datetime

import numpy as np
import pandas as pd

from mt5lab.model.artifact import SavedModel, load


@dataclass
class Prediction:
    """One symbol's answer. ``prediction`` (float) and ``decision_time`` (UTC) are None unless
    ``status == "ok"``; ``reason`` says why not; ``views`` maps each view to its online status."""

    symbol: str
    status: str
    prediction: float | None
    decision_time: datetime | None
    reason: str
    views: dict

    def as_dict(self) -> dict:
        d = asdict(self)
        d["decision_time"] = self.decision_time.isoformat() if self.decision_time else None
        return d


def predict_online(model: SavedModel | str, symbols: list[str] | str, *, profile=None,
                   now: datetime | None = None) -> list[Prediction]:
    """Predict ``symbols`` from the online store of ``profile`` as of ``now`` (default: the clock).

    ``model``: a :class:`SavedModel` or a model directory (loaded and its contract checked against
    the registry; raises :class:`mt5lab.model.artifact.ModelContractError` on a mismatch).
    Returns one :class:`Prediction` per symbol, in order.
    """
    from mt5lab.online.reader import reader

    saved = model if isinstance(model, SavedModel) else load(model, profile=profile)
    if isinstance(symbols, str):
        symbols = [symbols]
    c = saved.contract
    rdr = reader(profile, c["timeframe"], c["feature_service"])
    rows = rdr.read(list(symbols), now)
    needed = {rows.view_of[f] for f in saved.features}
    frame = pd.DataFrame({f: pd.to_numeric(pd.Series(rows.values[f], dtype=object), errors="coerce")
                          for f in saved.features})
    preds = saved.predict_frame(frame) if len(symbols) else np.array([])
    out = []
    for i, sym in enumerate(symbols):
        views = {v: rows.status[v][i] for v in sorted(needed)}
        bad = {v: s for v, s in views.items() if s != "fresh"}
        stamps = {rows.event_timestamps[v][i] for v in needed}
        if bad:
            v, s = next(iter(sorted(bad.items())))
            ts = rows.event_timestamps[v][i]
            reason = f"{v} is {s}" + (f" (bar closed {ts.isoformat()})" if ts else "") + \
                (f"; {len(bad) - 1} other view(s) not fresh" if len(bad) > 1 else "")
            out.append(Prediction(sym, s, None, None, reason, views))
        elif len(stamps) != 1:
            out.append(Prediction(sym, "inconsistent", None, None,
                                  "views hold different bars (a write in progress?): "
                                  + ", ".join(sorted(t.isoformat() for t in stamps)), views))
        else:
            out.append(Prediction(sym, "ok", float(preds[i]), stamps.pop(), "", views))
    return out


def predict_offline(model: SavedModel, symbols: list[str], decision_times, *, profile=None) -> np.ndarray:
    """Predictions from the offline store: ``training_set`` at ``(symbol, decision_time)`` pairs with
    the contract's feature service and timeframe, then the same model."""
    from mt5lab.training.assemble import training_set

    ents = pd.DataFrame({"symbol": list(symbols), "event_timestamp": pd.to_datetime(list(decision_times), utc=True)})
    c = model.contract
    ts = training_set(ents, c["feature_service"], profile=profile, timeframe=c["timeframe"], progress=False)
    return model.predict_frame(ts)
