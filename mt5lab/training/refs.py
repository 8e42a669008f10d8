"""Which features a training set asks for: a feature service name or ``view:feature`` refs.

Resolved against :mod:`mt5lab.catalog` only (never a hand-written list), in the order Feast uses for
its output columns: views in order of their first ref, features within a view in ref order
(``feast.utils._get_requested_feature_views_to_features_dict``). For the ``mt5_v1`` service that is
the catalog order. Duplicate refs are refused, as Feast refuses them (``FeatureNameCollisionError``).
"""

from __future__ import annotations

from dataclasses import dataclass

from mt5lab.catalog import BY_NAME, FEATURE_SERVICE, FEATURES, VIEW_NAMES, Feature
from mt5lab.errors import TrainingSetError

SERVICES: dict[str, tuple[str, ...]] = {FEATURE_SERVICE: tuple(f"{f.view}:{f.name}" for f in FEATURES)}
"""Feature services by name: the catalog's (``mt5_v1`` = all 42 features)."""


@dataclass(frozen=True)
class Selection:
    """Resolved features: ``service`` (or None for explicit refs) and ``by_view`` in Feast order."""

    service: str | None
    by_view: tuple[tuple[str, tuple[Feature, ...]], ...]

    @property
    def refs(self) -> list[str]:
        return [f"{v}:{f.name}" for v, feats in self.by_view for f in feats]

    @property
    def features(self) -> list[Feature]:
        return [f for _, feats in self.by_view for f in feats]

    @property
    def views(self) -> list[str]:
        return [v for v, _ in self.by_view]

    def output_names(self, full_feature_names: bool = False) -> list[str]:
        """Feast's column names: ``feature`` or, with ``full_feature_names``, ``view__feature``."""
        return [f"{v}__{f.name}" if full_feature_names else f.name
                for v, feats in self.by_view for f in feats]


def resolve(features: str | list[str] | tuple[str, ...] = FEATURE_SERVICE) -> Selection:
    """A :class:`Selection` from a service name or ``view:feature`` refs; clear errors otherwise."""
    service = None
    if isinstance(features, str):
        if ":" not in features:
            if features not in SERVICES:
                raise TrainingSetError(f"unknown feature service {features!r}; expected one of "
                                       f"{', '.join(SERVICES)} or a list of 'view:feature' refs")
            service, refs = features, list(SERVICES[features])
        else:
            refs = [features]
    else:
        refs = [str(r) for r in features]
    if not refs:
        raise TrainingSetError("no features requested")
    seen: dict[str, list[Feature]] = {}
    names: set[str] = set()
    for ref in refs:
        view, sep, name = ref.partition(":")
        if not sep or not view or not name:
            raise TrainingSetError(f"bad feature ref {ref!r}: expected 'view:feature', e.g. "
                                   f"'technical_indicators_ma:sma_20'")
        if view not in VIEW_NAMES:
            raise TrainingSetError(f"unknown feature view {view!r} in ref {ref!r}; expected one of "
                                   f"{', '.join(VIEW_NAMES)}")
        feat = BY_NAME.get(name)
        if feat is None or feat.view != view:
            hint = f" (it is in view {feat.view!r})" if feat is not None else ""
            raise TrainingSetError(f"unknown feature {name!r} in view {view!r} (ref {ref!r}){hint}")
        if name in names:
            raise TrainingSetError(f"feature ref {ref!r} is requested twice (Feast refuses duplicate "
                                   f"feature names too)")
        names.add(name)
        seen.setdefault(view, []).append(feat)
    return Selection(service, tuple((v, tuple(fs)) for v, fs in seen.items()))
