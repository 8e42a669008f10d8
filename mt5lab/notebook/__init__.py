"""The notebook layer: what each research notebook holds, records and how all of them are run.

:mod:`.session` is the one object a notebook holds (its store, its records, where figures go);
:mod:`.record` writes the numbers a run records (asserted by ``tests/test_notebooks.py``);
:mod:`.report` runs every notebook with papermill into ``reports/`` (``python -m mt5lab.notebook.report``).

May import: :mod:`mt5lab.plots`, :mod:`mt5lab.research` and every stage below them.
"""

from mt5lab.notebook.session import items, numbers, start, tag

__all__ = ["items", "numbers", "start", "tag"]
