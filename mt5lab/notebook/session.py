"""The one object a research notebook holds: where its store, records and figures live.

``start(name, ...)`` is the notebook's first call after its ``parameters`` cell. It

- picks the output directory (the ``out_dir`` parameter, else ``$MT5LAB_NB_OUT``, else ``reports/``),
  where ``<name>.records.json`` and ``<name>.<figure>.png`` are written next to the executed notebook;
- on the local profile, points ``MT5LAB_DATA_DIR`` at an isolated data directory
  (``<out_dir>/data/<name>``) unless the ``data_dir`` parameter names one, so CI runs and reports never
  touch a user's store;
- loads the profile (credentials come from the environment or ``.env``, never from a parameter) and
  opens its offline store;
- optionally seeds the store with the bundled samples (GOOG D1, EURUSD H1): validated, ingested and
  built. Idempotent: a second run writes nothing.

Notebooks hold no logic: they call this module and the compute/plot modules and show the results.
"""

from __future__ import annotations

import os
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

from mt5lab.notebook.record import Recorder, records_path

ENV_OUT = "MT5LAB_NB_OUT"


def items(text: str) -> list[str]:
    """A comma-separated parameter as a list: ``"GOOG, EURUSD"`` -> ``["GOOG", "EURUSD"]``."""
    return [s.strip() for s in str(text).split(",") if s.strip()]


def numbers(text: str) -> list[float]:
    """A comma-separated numeric parameter: ``"0.7,0.15,0.15"`` -> ``[0.7, 0.15, 0.15]``."""
    try:
        return [float(s) for s in items(text)]
    except ValueError:
        raise ValueError(f"expected comma-separated numbers, got {text!r}") from None


def progress_enabled() -> bool:
    """tqdm bars unless ``TQDM_DISABLE`` is set (CI, papermill runs)."""
    return os.environ.get("TQDM_DISABLE", "").strip().lower() not in ("1", "true", "yes")


def out_directory(out_dir: str | Path = "") -> Path:
    from mt5lab.config import project_root

    chosen = str(out_dir or os.environ.get(ENV_OUT) or "")
    path = Path(chosen) if chosen else project_root() / "reports"
    path = path.expanduser().resolve()
    path.mkdir(parents=True, exist_ok=True)
    return path


@dataclass
class Session:
    name: str
    out: Path
    profile: object  # mt5lab.config.Profile (its repr hides secrets)
    store: object  # mt5lab.storage.OfflineStore
    recorder: Recorder
    progress: bool = False
    started: float = field(default_factory=time.perf_counter)

    def __repr__(self) -> str:
        return f"Session({self.name!r}, profile={self.profile.name!r}, out={str(self.out)!r})"

    # -- results ---------------------------------------------------------------------------
    def record(self, name: str, value):
        """Record a number that matters (see :mod:`mt5lab.notebook.record`); returns ``value``."""
        return self.recorder.record(name, value)

    def figure(self, fig, name: str) -> None:
        """Save ``fig`` as ``<out>/<notebook>.<name>.png``, show that PNG inline, close the figure.

        Returns None so that a notebook line ending in this call prints nothing but the picture.
        """
        import matplotlib.pyplot as plt

        from mt5lab.plots.base import save

        path = save(fig, self.out / f"{self.name}.{name}.png")
        plt.close(fig)
        figures = self.recorder.values.get("figures", [])
        if path.name not in figures:
            self.record("figures", [*figures, path.name])
        _show_png(path)

    def done(self) -> dict:
        """Record the run time; return everything recorded."""
        self.record("elapsed_s", round(time.perf_counter() - self.started, 2))
        return dict(self.recorder.values)

    # -- store steps ------------------------------------------------------------------------
    def seed_samples(self, names: list[str] | None = None) -> dict:
        """Validate, ingest and build the bundled samples (idempotent). Returns counts."""
        from mt5lab.bars.ingest import load_samples, write
        from mt5lab.features.build import build

        bars, reports = load_samples(names)
        res = write(self.store, bars, reports)
        built = build(self.store, sorted(set(bars["timeframe"].to_list())), progress=self.progress)
        return {"bars": res.rows, "inserted": res.write.inserted, "unchanged": res.write.unchanged,
                "feature_rows_changed": sum(r.changed for r in built.values())}

    def apply(self, timeframe: str) -> dict:
        """Register the six views and ``mt5_v1`` for ``timeframe`` (idempotent)."""
        from mt5lab.feast_repo.store import apply

        return apply(self.profile, timeframe)

    def apply_each(self, timeframes: list[str]) -> dict:
        """:meth:`apply` for several timeframes: ``{timeframe: summary}``."""
        return {tf: self.apply(tf) for tf in timeframes}


def _display_options() -> None:
    """Tables as a person reads them: whole descriptions, all 42 features, no wrapping."""
    import pandas as pd
    import polars as pl

    pd.set_option("display.max_colwidth", None)
    pd.set_option("display.max_rows", 120)
    pd.set_option("display.max_columns", 60)
    pd.set_option("display.width", 250)
    pl.Config.set_tbl_rows(50)
    pl.Config.set_fmt_str_lengths(80)


def _show_png(path: Path) -> None:
    try:
        from IPython import get_ipython
        from IPython.display import Image, display
    except ImportError:  # pragma: no cover - plain python
        return
    if get_ipython() is not None:
        display(Image(filename=str(path)))


def start(name: str, *, profile: str = "local", data_dir: str = "", out_dir: str = "",
          samples: bool = True) -> Session:
    """Open a notebook session (see the module docstring). ``samples`` seeds the bundled samples."""
    from mt5lab.catalog import catalog_hash
    from mt5lab.config import load_profile, profile_name
    from mt5lab.errors import install_log_redaction
    from mt5lab.feast_repo import store as store_mod
    from mt5lab.storage import open_store

    install_log_redaction()
    _display_options()
    out = out_directory(out_dir)
    prof_name = profile_name(profile)
    if data_dir:
        os.environ["MT5LAB_DATA_DIR"] = str(Path(data_dir).expanduser().resolve())
    elif prof_name == "local":
        os.environ["MT5LAB_DATA_DIR"] = str(out / "data" / name)
    store_mod._STORES.clear()  # the data dir may have changed since the kernel started
    prof = load_profile(prof_name)
    rec = Recorder(records_path(out, name))
    session = Session(name, out, prof, open_store(prof), rec, progress_enabled())
    session.record("notebook", name)
    session.record("profile", prof.name)
    session.record("catalog_hash", catalog_hash())
    session.record("python_prefix", sys.prefix)
    if samples:
        session.record("seed", session.seed_samples())
    return session
