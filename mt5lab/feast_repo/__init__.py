"""Feast wiring: the catalog as Feast objects, one ``FeatureStore`` per profile and timeframe.

:mod:`.store` builds Feast's store from a profile resolved in memory (secrets never written) and
``apply`` makes the registry equal the catalog; :mod:`.definitions` generates the entity, source, six
views and the ``mt5_v1`` service from :mod:`mt5lab.catalog` (``feature_repo/*.py`` calls it too, so
``feast apply`` sees the same objects); :mod:`.registry_store` writes the local registry file
atomically (Feast's own file store truncates in place) and, like :mod:`.sqlite_store` (Feast's SQLite
online store), resolves an unset ``${MT5LAB_DATA_DIR}`` to the default data dir, so Feast's own
``feast`` CLI reads and writes the same files as mt5lab; :mod:`.feast_cli` makes a ``feast`` command
work on one project and its timeframe (the yaml's ``project:`` decides; a disagreeing
``MT5LAB_TIMEFRAME`` or ``MT5LAB_PROFILE`` stops it). Named ``feast_repo`` so that it never shadows
the ``feast`` library.

May import: the base modules and :mod:`mt5lab.storage` (the offline store provides Feast's source and
the registry lock). Nothing above.
"""
