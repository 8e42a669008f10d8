"""Stage 3a, training: point-in-time-correct training sets, exactly Feast's answer, fast.

:mod:`.assemble` is ``training_set`` (entities -> point-in-time features -> labels); the join itself
has one engine per store (:mod:`.pit` numpy over the local store or its Arrow mirror
:mod:`.pit_mirror`, :mod:`.pit_sql` inside PostgreSQL) and Feast's own as the reference
(:mod:`.pit_feast`); :mod:`.refs` resolves a feature service or ``view:feature`` refs;
:mod:`.labels` computes forward labels (never stored); :mod:`.splits` purged train/val/test and
walk-forward; :mod:`.manifest` saves reproducibly; :mod:`.files` is the CLI's file side.

May import: the base modules, :mod:`mt5lab.storage`, :mod:`mt5lab.feast_repo` and
:mod:`mt5lab.bars`. Nothing above (not online, not research).
"""
