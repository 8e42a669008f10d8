"""Imported first by :mod:`mt5lab`: warnings that are noise for every user.

In a Jupyter kernel without ipywidgets, ``tqdm.auto`` falls back to text progress bars (fine) and
warns "IProgress not found" on import, into every executed notebook.
"""

import warnings

warnings.filterwarnings("ignore", message="IProgress not found")
