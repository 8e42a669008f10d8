"""Stage 4, spark: the batch work (build, training sets, materialize) on an Apache Spark cluster.

One switch selects it: ``MT5LAB_ENGINE=spark`` or ``--engine spark`` on ``build``, ``training-set``
and ``materialize`` (:mod:`.session`, which also reads ``MT5LAB_SPARK_MASTER``: ``local[N]``,
``spark://host:7077``, ``yarn``, ``k8s://...``). :mod:`.build` computes the 42 features with the very
same :func:`mt5lab.features.compute.compute_features`, one symbol per group of ``applyInArrow``, and
commits a Parquet dataset atomically (:mod:`.dataset`, which is also an offline store the local engine
reads). :mod:`.feast_config` is the Feast config of the engine (``SparkOfflineStore``, ``spark.engine``
batch engine, SparkSource views from the catalog); :mod:`.training` runs Feast's
``get_historical_features`` on it; :mod:`.materialize` runs Feast's materialization on Spark into the
profile's Redis. :mod:`.cluster` starts a throwaway standalone cluster on loopback (tests, benchmarks).

May import: the base modules, :mod:`mt5lab.storage`, :mod:`mt5lab.feast_repo`, :mod:`mt5lab.features`
and :mod:`mt5lab.training` (it sits above both). Nothing imports it but the command line.
"""
