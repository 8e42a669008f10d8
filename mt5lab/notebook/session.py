"""The one object a research notebook holds: where its store, records and figures live.

``start(name, ...)`` is the notebook's first call after its ``parameters`` cell. It

- picks the output directory (the ``out_dir`` parameter, else ``$MT5LAB_NB_OUT``, else ``reports/``),
  where ``<name>.records.json`` and ``<name>.<tag>.<figure>.png`` are written next to the executed
  notebook (``tag`` holds the parameters that made the figure, so another run does not overwrite it);
- opens **the user's store**, the one the ``mt5lab`` CLI uses, wherever the kernel runs (JupyterLab
  in ``notebooks/``, papermill anywhere, ``make report``): the ``data_dir`` parameter, else
  ``MT5LAB_DATA_DIR``, else the checkout's ``data/``; relative paths against the checkout
  (:mod:`mt5lab.notebook.store_info`);
- loads the profile (credentials come from the environment or ``.env``, never from a parameter) and
  opens its offline store;
- only when asked (``samples=True``), loads the bundled samples (GOOG D1, EURUSD H1) into that store:
  validated, ingested and built. Idempotent: a second run writes nothing;
- prints, as the notebook's first output line, the store it reads and the symbols per timeframe
  it holds (recorded as ``store``).

Notebooks hold no logic: they call this module and the compute/plot modules and show the results.
"""

from __future__ import annotations

import os
import re
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
    """Where records and figures go: ``out_dir``, else ``$MT5LAB_NB_OUT``, else ``reports/``; a
    relative path is taken against the checkout."""
    from mt5lab.notebook.store_info import checkout_path

    chosen = str(out_dir or os.environ.get(ENV_OUT) or "")
    path = checkout_path(chosen or "reports")
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
    tag: str = ""
    interactive: bool = False
    started: float = field(default_factory=time.perf_counter)

    def __repr__(self) -> str:
        return f"Session({self.name!r}, profile={self.profile.name!r}, out={str(self.out)!r})"

    # -- results ---------------------------------------------------------------------------
    def record(self, name: str, value):
        """Record a number that matters (see :mod:`mt5lab.notebook.record`).

        Returns what a notebook shows for it: a table as it is, a dict or a list of rows as a
        compact table (:func:`mt5lab.notebook.show.table`), a scalar as it is.
        """
        from mt5lab.notebook.show import table

        self.recorder.record(name, value)
        return table(value)

    def figure_path(self, name: str) -> Path:
        """``<out>/<notebook>.<tag>.<name>.png`` (no tag: ``<notebook>.<name>.png``)."""
        return self.out / ".".join(p for p in (self.name, self.tag, name, "png") if p)

    def figure(self, fig, name: str) -> None:
        """Save ``fig`` as :meth:`figure_path`, show it, close it.

        Shown inline as that PNG, or, with ``interactive`` on, as the live figure (zoom, pan, hover
        coordinates; the PNG is written all the same). Returns None so that a notebook line ending
        in this call prints nothing but the picture.
        """
        import matplotlib.pyplot as plt

        from mt5lab.plots.base import save

        path = save(fig, self.figure_path(name))
        figures = self.recorder.values.get("figures", [])
        if path.name not in figures:
            self.recorder.record("figures", [*figures, path.name])
        if self.interactive:
            _show_live(fig)
        else:
            plt.close(fig)
            _show_png(path)

    def done(self):
        """Record the run time; return the records as one compact table (name, value)."""
        from mt5lab.notebook.show import records_table

        self.recorder.record("elapsed_s", round(time.perf_counter() - self.started, 2))
        return records_table(self.recorder.values)

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


def _show_live(fig) -> None:
    """Show ``fig`` as an ipympl widget, unless ipympl already did when the figure was created
    (its interactive mode displays every new figure)."""
    import matplotlib.pyplot as plt

    if plt.isinteractive():
        return
    try:
        from IPython.display import display
    except ImportError:  # pragma: no cover - plain python
        return
    display(fig.canvas)


def _show_png(path: Path) -> None:
    try:
        from IPython import get_ipython
        from IPython.display import Image, display
    except ImportError:  # pragma: no cover - plain python
        return
    if get_ipython() is not None:
        display(Image(filename=str(path)))


def tag(*parts) -> str:
    """The parameters that made a figure, for its file name: parts other than ``""`` and 0 joined by ``_``, each
    reduced to letters, digits, ``-`` and ``+``, a file path to its stem
    (``tag("GOOG", "D1", "", 250)`` -> ``GOOG_D1_250``; ``tag("/x/eurusd.csv")`` -> ``eurusd``)."""
    parts = [p for p in parts if p not in ("", None, 0)]  # unset parameters (0: "the default") say nothing
    texts = [Path(str(p)).stem if re.search(r"[/\\]", str(p)) else str(p) for p in parts]  # a file: its stem
    clean = [re.sub(r"[^A-Za-z0-9+-]+", "-", t).strip("-") for t in texts if t.strip()]
    return "_".join(c for c in clean if c)


def start(name: str, *, profile: str = "local", data_dir: str = "", out_dir: str = "",
          samples: bool = False, tag: str = "", interactive: bool = False) -> Session:
    """Open a notebook session (see the module docstring).

    Args:
        name: the notebook's file stem (records and figures are named after it).
        profile: ``local`` or ``postgres`` (credentials from the environment or ``.env``).
        data_dir: the local data directory; empty: ``MT5LAB_DATA_DIR``, else the checkout's ``data/``.
            Relative paths are taken against the checkout.
        out_dir: records and figures; empty: ``$MT5LAB_NB_OUT``, else the checkout's ``reports/``.
        samples: load the bundled samples into the store first (idempotent).
        tag: the parameters that make the figures (:func:`tag`), part of each figure's file name.
        interactive: live matplotlib figures (ipympl) in JupyterLab; ignored outside a Jupyter kernel
            and under papermill (:func:`mt5lab.notebook.show.interactive_enabled`).
    """
    from mt5lab.catalog import catalog_hash
    from mt5lab.config import load_profile, profile_name
    from mt5lab.errors import install_log_redaction
    from mt5lab.feast_repo import store as store_mod
    from mt5lab.notebook.show import interactive_enabled
    from mt5lab.notebook.store_info import describe, holdings, resolve_data_dir, store_contents
    from mt5lab.storage import open_store

    install_log_redaction()
    _display_options()
    out = out_directory(out_dir)
    prof_name = profile_name(profile)
    os.environ["MT5LAB_DATA_DIR"] = str(resolve_data_dir(data_dir))  # absolute: Feast and the CLI agree
    store_mod._STORES.clear()  # the data dir may have changed since the kernel started
    prof = load_profile(prof_name)
    rec = Recorder(records_path(out, name))
    live = interactive_enabled(interactive)
    session = Session(name, out, prof, open_store(prof), rec, progress_enabled(), tag, live)
    rec.record("notebook", name)
    rec.record("profile", prof.name)
    rec.record("catalog_hash", catalog_hash())
    rec.record("python_prefix", sys.prefix)
    if samples:
        rec.record("seed", session.seed_samples())
    contents = store_contents(session.store)
    line = describe(prof, contents)
    print(line, flush=True)
    rec.record("store", {"line": line, "profile": prof.name, "data_dir": os.environ["MT5LAB_DATA_DIR"],
                         "holdings": holdings(contents)})
    return session
