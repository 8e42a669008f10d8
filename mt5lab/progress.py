"""tqdm progress for long work; off when asked (``progress=False``) or with ``TQDM_DISABLE=1``."""

from __future__ import annotations

import os

from tqdm.auto import tqdm


def enabled(progress: bool = True) -> bool:
    return progress and os.environ.get("TQDM_DISABLE", "").lower() not in ("1", "true", "yes")


def bar(iterable, desc: str, unit: str = "it", progress: bool = True, **kw):
    return tqdm(iterable, desc=desc, unit=unit, disable=not enabled(progress), **kw)
