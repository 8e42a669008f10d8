"""PostgreSQL layout of the team profile, and its migration (safe to run twice, or concurrently).

Layout (one table per timeframe, so each gets its own TimescaleDB chunk interval and small indexes;
table names come from the catalog's timeframe list, never from user input):

- ``market_data.ohlcv_<tf>``: bars; primary key ``(symbol, time)``; BRIN on ``time``.
- ``market_data.write_generation``: per timeframe a counter that every write changing its bars
  or features through mt5lab raises, in the write's own transaction (``PostgresStore.write_token``).
- ``features.<tf>``: ``symbol, time, event_timestamp, created_timestamp`` and the catalog's 42
  features (float8 / int8 as the catalog says); primary key ``(symbol, time)``; B-tree on
  ``event_timestamp`` (Feast's point-in-time and materialization scans filter on it).

Every timestamp is ``timestamptz``; ``symbol`` is ``text COLLATE "C"`` (byte order: cheap key
comparisons, and the same order as polars). Bars are read by symbol (the primary key serves that);
the BRIN on ``time`` costs almost nothing to maintain at ingest (a B-tree there halves COPY speed)
and serves cross-symbol time scans of live, time-ordered appends. The Feast SQL registry's tables
are Feast's own (created by Feast in the database's default schema).

TimescaleDB: the migration tries ``CREATE EXTENSION IF NOT EXISTS timescaledb`` inside a savepoint.
If that works, every table becomes a hypertable on ``time`` (the primary keys contain ``time``, as
hypertables require); if not (not installed, no privilege), the tables stay plain. The path taken is
logged and kept in :attr:`Migration.timescale`. CI proves the plain path only.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import psycopg
from psycopg import sql

from mt5lab.catalog import FEATURES, TIMEFRAMES, check_timeframe

log = logging.getLogger(__name__)

BARS_SCHEMA = "market_data"
FEATURES_SCHEMA = "features"
LOCK_CLASS = 0x6D74_356C  # "mt5l": advisory-lock namespace of mt5lab
LOCK_WRITER, LOCK_REGISTRY, LOCK_MIGRATE = 1, 2, 3

BAR_COLUMNS_SQL = (
    ("symbol", 'text COLLATE "C" NOT NULL'), ("time", "timestamptz NOT NULL"),
    ("open", "float8 NOT NULL"), ("high", "float8 NOT NULL"), ("low", "float8 NOT NULL"),
    ("close", "float8 NOT NULL"), ("tick_volume", "int8 NOT NULL"), ("spread", "int8"),
    ("real_volume", "int8 NOT NULL"),
)
_PG_TYPE = {"Float64": "float8", "Int64": "int8"}

# Chunk sizes aim at a few thousand bars per symbol and chunk.
CHUNK_INTERVAL = {"M1": "3 days", "M5": "14 days", "M15": "30 days", "M30": "60 days",
                  "H1": "120 days", "H4": "1 year", "D1": "5 years", "W1": "25 years"}


WRITE_GENERATION = sql.Identifier(BARS_SCHEMA, "write_generation")


def bump_generation(cur, timeframe: str) -> None:
    """Raise ``timeframe``'s write generation, inside the caller's write transaction."""
    cur.execute(sql.SQL("INSERT INTO {} AS g (timeframe, generation) VALUES (%s, 1) ON CONFLICT (timeframe) "
                        "DO UPDATE SET generation = g.generation + 1").format(WRITE_GENERATION),
                (check_timeframe(timeframe),))


def bars_table(timeframe: str) -> sql.Identifier:
    return sql.Identifier(BARS_SCHEMA, f"ohlcv_{check_timeframe(timeframe).lower()}")


def features_table(timeframe: str) -> sql.Identifier:
    return sql.Identifier(FEATURES_SCHEMA, check_timeframe(timeframe).lower())


def features_table_name(timeframe: str) -> str:
    """``features.<tf>``, as Feast's PostgreSQLSource pastes it into its queries."""
    return f"{FEATURES_SCHEMA}.{check_timeframe(timeframe).lower()}"


def feature_columns_sql() -> list[tuple[str, str]]:
    return [("symbol", 'text COLLATE "C" NOT NULL'), ("time", "timestamptz NOT NULL"),
            ("event_timestamp", "timestamptz NOT NULL"), ("created_timestamp", "timestamptz NOT NULL"),
            *((f.name, _PG_TYPE[f.dtype]) for f in FEATURES)]


@dataclass(frozen=True)
class Migration:
    timescale: bool
    tables: int


def _create_table(cur, schema: str, name: str, columns: list[tuple[str, str]], index: tuple[str, str]) -> None:
    table = sql.Identifier(schema, name)
    cols = sql.SQL(", ").join(sql.SQL("{} {}").format(sql.Identifier(n), sql.SQL(t)) for n, t in columns)
    cur.execute(sql.SQL("CREATE TABLE IF NOT EXISTS {} ({}, PRIMARY KEY (symbol, time))").format(table, cols))
    # Columns the catalog gained since the table was created (new features are nullable).
    for col, typ in columns:
        cur.execute(sql.SQL("ALTER TABLE {} ADD COLUMN IF NOT EXISTS {} {}").format(
            table, sql.Identifier(col), sql.SQL(typ.replace(" NOT NULL", ""))))
    column, method = index
    idx = sql.Identifier(f"{name}_{column}_idx")  # lives in the table's schema
    cur.execute(sql.SQL("CREATE INDEX IF NOT EXISTS {} ON {} USING {} ({})").format(
        idx, table, sql.SQL(method), sql.Identifier(column)))


def _try_timescale(conn: psycopg.Connection) -> bool:
    try:
        with conn.transaction():  # a savepoint: a failure here leaves the migration going
            conn.execute("CREATE EXTENSION IF NOT EXISTS timescaledb")
        return True
    except psycopg.Error as exc:
        log.info("TimescaleDB not available (%s): plain tables", type(exc).__name__)
        return False


def migrate(conn: psycopg.Connection) -> Migration:
    """Create schemas, tables and indexes that are missing; hypertables where TimescaleDB works."""
    with conn.transaction(), conn.cursor() as cur:
        cur.execute("SELECT pg_advisory_xact_lock(%s, %s)", (LOCK_CLASS, LOCK_MIGRATE))
        cur.execute("SET LOCAL client_min_messages = warning")  # no NOTICEs for IF NOT EXISTS
        for schema in (BARS_SCHEMA, FEATURES_SCHEMA):
            cur.execute(sql.SQL("CREATE SCHEMA IF NOT EXISTS {}").format(sql.Identifier(schema)))
        timescale = _try_timescale(conn)
        cur.execute(sql.SQL("CREATE TABLE IF NOT EXISTS {} (timeframe text PRIMARY KEY, generation int8 NOT NULL)")
                    .format(WRITE_GENERATION))
        n = 0
        for tf in TIMEFRAMES:
            for schema, name, cols, idx in (
                    (BARS_SCHEMA, f"ohlcv_{tf.lower()}", list(BAR_COLUMNS_SQL), ("time", "brin")),
                    (FEATURES_SCHEMA, tf.lower(), feature_columns_sql(), ("event_timestamp", "btree"))):
                _create_table(cur, schema, name, cols, idx)
                if timescale:
                    cur.execute(
                        "SELECT create_hypertable(%s::regclass, 'time', chunk_time_interval => %s::interval,"
                        " if_not_exists => TRUE, migrate_data => TRUE)",
                        (f"{schema}.{name}", CHUNK_INTERVAL[tf]))
                n += 1
    log.info("PostgreSQL schema ready: %d tables, %s", n,
             "TimescaleDB hypertables" if timescale else "plain tables (no TimescaleDB)")
    return Migration(timescale, n)
