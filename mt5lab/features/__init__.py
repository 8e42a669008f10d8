"""Stage 2, features: the 42 catalog features computed with TA-Lib from stored bars.

:mod:`.compute` is the pure computation (canonical bars in, feature rows out, warm-up nulls, carried
obv/ad state); :mod:`.build` recomputes whole histories into the offline store; :mod:`.incremental`
computes only the rows new or revised bars change, from the last ``MAX_WARMUP`` stored bars.

May import: the base modules, :mod:`mt5lab.storage` and :mod:`mt5lab.bars`. Nothing above.
"""
