"""Stage 4, models: from a point-in-time training set to an honest out-of-sample verdict, and from a
saved model to a live prediction that uses exactly the features it was trained on.

:mod:`.cv` purged walk-forward, purged k-fold with embargo and combinatorial purged CV;
:mod:`.sharpe` per-period, probabilistic and deflated Sharpe ratios; :mod:`.metrics` IC, rank IC,
ICIR, hit rate and a strategy net of costs; :mod:`.estimators` LightGBM and a scikit-learn linear
baseline with their null handling; :mod:`.importance` out-of-fold MDA per feature and per view
(clustered MDA) and MDI; :mod:`.evaluate` the whole verdict; :mod:`.tracking` MLflow runs (trials
for the DSR); :mod:`.artifact` a saved model and its contract (feature service, catalog hash);
:mod:`.predict` online predictions (ttl-aware); :mod:`.http` the ``POST /predict`` handler.

May import: the base modules and every runtime stage (storage, feast_repo, bars, features,
training, online). Not research, plots or the notebook layer, which sit above or beside it.
"""

from mt5lab.model.sharpe import (
    deflated_sharpe_ratio,
    expected_max_sharpe,
    probabilistic_sharpe_ratio,
    sharpe_ratio,
)

__all__ = ["deflated_sharpe_ratio", "expected_max_sharpe", "probabilistic_sharpe_ratio", "sharpe_ratio"]
