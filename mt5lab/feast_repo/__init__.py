"""Feast wiring: the catalog as Feast objects, one ``FeatureStore`` per profile and timeframe.

:mod:`.store` builds Feast's store from a profile resolved in memory (secrets never written) and
``apply`` makes the registry equal the catalog; :mod:`.definitions` generates the entity, source, six
views and the ``mt5_v1`` service from :mod:`mt5lab.catalog` (``feature_repo/*.py`` calls it too, so
``feast apply`` sees the same objects); :mod:`.registry_store` writes the local registry file
atomically (Feast's own file store truncates in place). Named ``feast_repo`` so that
it never shadows the ``feast`` library.

May import: the base modules and :mod:`mt5lab.storage` (the offline store provides Feast's source and
the registry lock). Nothing above.
"""
