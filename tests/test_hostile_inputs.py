"""Hostile input corpus: every bad file, value or name is either stored safely or rejected by a clear
rule, and a rejected ingest leaves the stores byte-for-byte unchanged.

Each case runs in-process through :func:`mt5lab.bars.ingest.ingest_files` (what ``mt5lab ingest
FILE`` calls) against a store pre-loaded with the real sample bars, on both profiles: the local
Parquet store (SHA-256 of every file under the data dir before and after) and the PostgreSQL store
(row count and md5 of every table's rows, in a fresh database). A representative subset runs
through the real CLI in a subprocess with its own ``MT5LAB_DATA_DIR``: one line on stderr naming the
file, the row and the rule; exit code 2; nothing changed.

Expected bars are written by the test from its own numbers, never read back from mt5lab first.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import polars as pl
import pytest

from mt5lab.errors import BarValidationError, Mt5LabError

ROOT = Path(__file__).resolve().parents[1]
HEADER = "<DATE>\t<TIME>\t<OPEN>\t<HIGH>\t<LOW>\t<CLOSE>\t<TICKVOL>\t<VOL>\t<SPREAD>"
T0 = datetime(2024, 1, 2, tzinfo=UTC)  # a Tuesday, after the samples (EURUSD H1 ends 2018-02-07)
SQLI = "'; DROP TABLE market_data.ohlcv_d1; --"


def mt5_row(t: datetime, o=1.1, h=1.2, lo=1.0, c=1.15, tv=10, v=0, s=2, clock: str | None = None) -> str:
    return f"{t:%Y.%m.%d}\t{clock or format(t, '%H:%M:%S')}\t{o}\t{h}\t{lo}\t{c}\t{tv}\t{v}\t{s}"


def good_rows(n: int = 5, start: datetime = T0) -> list[str]:
    return [mt5_row(start + timedelta(hours=i), c=1.1 + i / 1000) for i in range(n)]


def mt5_text(rows: list[str], header: str = HEADER, nl: str = "\n") -> str:
    return nl.join([header, *rows]) + nl


def with_row(**kw) -> bytes:
    """Five good H1 rows, then one (row 6) built with ``kw``."""
    return mt5_text([*good_rows(), mt5_row(T0 + timedelta(hours=5), **kw)]).encode()


@dataclass(frozen=True)
class Case:
    """A rejected input: the file's bytes, the ingest arguments and the expected rule and row."""

    id: str
    data: bytes
    rule: str
    row: int | None
    symbol: str | None = "HOSTILE"
    timeframe: str = "H1"
    server_tz: str = "UTC"
    suffix: str = ".csv"
    batch_rows: int = 250_000


def _generic(lines: list[str]) -> bytes:
    return ("\n".join(lines) + "\n").encode()


_moved = good_rows(6)
_moved[3], _moved[4] = _moved[4], _moved[3]
_long = [mt5_row(T0 + timedelta(hours=i), c=1.1) for i in range(30)]

REJECTED = [
    # -- files ---------------------------------------------------------------------------------
    Case("empty-file", b"", "empty file", None),
    Case("header-only", (HEADER + "\n").encode(), "no data rows", None),
    Case("header-only-utf16", (HEADER + "\r\n").encode("utf-16"), "no data rows", None),
    Case("wrong-delimiter", mt5_text(good_rows()).replace("\t", ";").encode(), "missing column <DATE>", None),
    Case("missing-column", mt5_text(["\t".join(r.split("\t")[:4] + r.split("\t")[5:]) for r in good_rows()],
                                    HEADER.replace("\t<LOW>", "")).encode(), "missing column <LOW>", None),
    Case("truncated-last-line", mt5_text(good_rows()).encode() + b"2024.01.02\t05:00:00\t1.1\t1.2", "truncated row", 6),
    Case("too-many-fields", mt5_text([*good_rows(), mt5_row(T0 + timedelta(hours=5)) + "\t9"]).encode(),
         "too many fields", 6),
    Case("binary-garbage", bytes(range(256)) * 8, "invalid encoding", None),
    Case("generic-csv-no-symbol", _generic(["time,open,high,low,close,tick_volume",
                                            "2024-01-02T00:00:00,1,2,0.5,1.5,3"]), "missing column symbol", None,
         symbol=None),
    # -- values --------------------------------------------------------------------------------
    Case("non-numeric", with_row(o="1.1O"), "non-numeric open", 6),
    Case("nan-price", with_row(c="nan"), "price not finite", 6),
    Case("inf-price", with_row(h="inf"), "price not finite", 6),
    Case("zero-price", with_row(lo=0), "price not positive", 6),
    Case("negative-price", with_row(o=-1.1, lo=-2), "price not positive", 6),
    Case("high-below-low", with_row(h=0.9), "high below low", 6),
    Case("open-outside-range", with_row(o=1.5), "open outside low-high", 6),
    Case("close-outside-range", with_row(c=0.5), "close outside low-high", 6),
    Case("negative-volume", with_row(tv=-5), "negative tick_volume", 6),
    Case("negative-spread", with_row(s=-1), "negative spread", 6),
    Case("duplicate-time", mt5_text([*good_rows(), mt5_row(T0 + timedelta(hours=4))]).encode(), "duplicate time", 6),
    Case("earlier-time-again", mt5_text([*good_rows(), mt5_row(T0 + timedelta(hours=1))]).encode(),
         "time not increasing", 6),
    Case("unsorted-rows", mt5_text(_moved).encode(), "time not increasing", 5),
    Case("misaligned-time", with_row(clock="05:17:00"), "time not aligned", 6),
    Case("unparseable-time", with_row(clock="25:61:00"), "invalid time", 6),
    Case("mixed-timeframes", _generic(["symbol,timeframe,time,open,high,low,close,tick_volume",
                                       "X,H1,2024-01-02T00:00:00,1,2,0.5,1.5,3",
                                       "X,M15,2024-01-02T00:15:00,1,2,0.5,1.5,3"]), "timeframe mismatch", 2,
         symbol=None),
    Case("naive-then-aware", _generic(["time,open,high,low,close,tick_volume",
                                       "2024-01-02T00:00:00,1,2,0.5,1.5,3",
                                       "2024-01-02T01:00:00+00:00,1,2,0.5,1.5,3"]),
         "mixed naive and tz-aware times", 2),
    Case("aware-then-naive", _generic(["time,open,high,low,close,tick_volume",
                                       "2024-01-02T00:00:00+02:00,1,2,0.5,1.5,3",
                                       "2024-01-02T01:00:00,1,2,0.5,1.5,3"]),
         "mixed naive and tz-aware times", 2),
    # London repeats 01:00 on 2024-10-27: the first two rows are the two instants (by row order), the
    # third is a duplicate of the second
    Case("dst-fold-thrice", mt5_text([mt5_row(datetime(2024, 10, 27, 1, tzinfo=UTC)) for _ in range(3)]).encode(),
         "duplicate time", 3, server_tz="Europe/London"),
    Case("dst-non-existent", mt5_text([mt5_row(datetime(2024, 3, 31, h, tzinfo=UTC)) for h in (0, 1, 2)]).encode(),
         "non-existent local time in server_tz", 2, server_tz="Europe/London"),
    # -- streaming: rules across batch boundaries, and a bad row after many good batches --------
    Case("duplicate-across-batches", mt5_text([*_long, mt5_row(T0 + timedelta(hours=29))]).encode(),
         "duplicate time", 31, batch_rows=10),
    Case("unsorted-across-batches", mt5_text([*_long[:10], _long[11], _long[10], *_long[12:]]).encode(),
         "time not increasing", 12, batch_rows=11),
    Case("bad-row-in-last-batch", mt5_text([*_long, mt5_row(T0 + timedelta(hours=30), h=0.5)]).encode(),
         "high below low", 31, batch_rows=7),
    # -- names ---------------------------------------------------------------------------------
    Case("symbol-10000-chars", mt5_text(good_rows()).encode(), "invalid symbol", 1, symbol="a" * 10_000),
    Case("symbol-newline", mt5_text(good_rows()).encode(), "invalid symbol", 1, symbol="EUR\nUSD"),
    Case("symbol-padded", mt5_text(good_rows()).encode(), "invalid symbol", 1, symbol=" EURUSD"),
    Case("symbol-nul", _generic(["symbol,time,open,high,low,close,tick_volume",
                                 "A\x00B,2024-01-02T00:00:00,1,2,0.5,1.5,3"]), "invalid symbol", 1, symbol=None),
]

ACCEPTED_NAMES = [SQLI, "../../etc/passwd", "EUR/USD", "ÄÖÜ.€ 日本 \U0001f4b9", "x'); DELETE FROM features.d1; --",
                  "%(symbol)s", "$1", "a" * 64]


# -- stores and fingerprints ---------------------------------------------------------------------
def tree_hash(root: Path) -> dict[str, str]:
    """SHA-256 of every file under ``root`` (relative path -> digest)."""
    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*")) if p.is_file()}


def pg_fingerprint(conn) -> dict[str, tuple[int, str]]:
    """Row count and md5 of the ordered rows of every user table (registry tables included)."""
    from psycopg import sql

    tables = conn.execute("SELECT table_schema, table_name FROM information_schema.tables WHERE table_type = "
                          "'BASE TABLE' AND table_schema NOT IN ('pg_catalog', 'information_schema') "
                          "ORDER BY 1, 2").fetchall()
    out = {}
    for schema, name in tables:
        q = sql.SQL("SELECT count(*), md5(coalesce(string_agg(t::text, E'\\n' ORDER BY t::text), '')) FROM {} t")
        out[f"{schema}.{name}"] = tuple(conn.execute(q.format(sql.Identifier(schema, name))).fetchone())
    return out


@pytest.fixture(scope="module")
def samples():
    from mt5lab.bars.ingest import load_samples

    bars, reports = load_samples()
    return bars, reports


@pytest.fixture(scope="module")
def local_template(tmp_path_factory, samples):
    """A data dir holding the real sample bars (copied per test)."""
    from mt5lab.bars.ingest import write
    from mt5lab.storage.local import LocalStore

    root = tmp_path_factory.mktemp("hostile-template") / "data"
    write(LocalStore(root), *samples)
    return root


@pytest.fixture
def local_dir(local_template, tmp_path):
    d = tmp_path / "data"
    shutil.copytree(local_template, d)
    return d


@pytest.fixture(scope="module")
def pg_db(samples):
    """A fresh database with the samples ingested; yields (store, database name)."""
    from mt5lab.bars.ingest import write
    from mt5lab.storage.postgres import PostgresStore
    from mt5lab.testing.sandbox import postgres_database
    from tests.conftest import require_service

    require_service("PostgreSQL", "127.0.0.1", 5432)
    with postgres_database() as name:
        store = PostgresStore("127.0.0.1", 5432, name, "postgres", "", "disable")
        write(store, *samples)
        yield store, name
        store.close()


class Fingerprint:
    """Before/after fingerprint of one profile's store."""

    def __init__(self, profile: str, local: Path | None = None, pg=None):
        self.profile, self.local, self.pg = profile, local, pg

    def store(self):
        from mt5lab.storage.local import LocalStore

        return LocalStore(self.local) if self.profile == "local" else self.pg[0]

    def take(self):
        if self.profile == "local":
            return tree_hash(self.local)
        with self.pg[0].connect() as conn:
            return pg_fingerprint(conn)


@pytest.fixture(params=["local", "postgres"])
def target(request, tmp_path):
    if request.param == "local":
        return Fingerprint("local", local=request.getfixturevalue("local_dir"))
    return Fingerprint("postgres", pg=request.getfixturevalue("pg_db"))


def _ingest(store, path: Path, case: Case):
    from mt5lab.bars.ingest import ingest_files

    return ingest_files(store, [path], symbol=case.symbol, timeframe=case.timeframe, server_tz=case.server_tz,
                        batch_rows=case.batch_rows, progress=False)


# -- rejected: in-process on both profiles ---------------------------------------------------------
def test_corpus_is_large_enough():
    assert len({c.id for c in REJECTED}) == len(REJECTED) >= 30
    assert len(set(ACCEPTED_NAMES)) >= 5


@pytest.mark.parametrize("case", REJECTED, ids=lambda c: c.id)
def test_rejected_in_process_leaves_store_unchanged(case, target, tmp_path):
    path = tmp_path / f"input-{case.id}{case.suffix}"
    path.write_bytes(case.data)
    before = target.take()
    with pytest.raises(BarValidationError) as err:
        _ingest(target.store(), path, case)
    e = err.value
    assert (e.rule, e.row) == (case.rule, case.row), str(e)
    msg = str(e)
    assert "\n" not in msg and len(msg) < 600, msg
    assert path.name in msg and case.rule in msg
    if case.row is not None:
        assert f"row {case.row}:" in msg
    assert target.take() == before


# -- rejected: the real CLI ------------------------------------------------------------------------
CLI_LOCAL = ["empty-file", "missing-column", "truncated-last-line", "non-numeric", "duplicate-across-batches",
             "dst-non-existent", "symbol-10000-chars", "mixed-timeframes"]
CLI_PG = ["nan-price", "unsorted-rows", "wrong-delimiter"]
BY_ID = {c.id: c for c in REJECTED}


def _cli(args: list[str], env: dict[str, str]) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "mt5lab.cli", *args], capture_output=True, text=True, env=env,
                          cwd=ROOT, timeout=300)


def _base_env(data: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("MT5LAB_")}
    return env | {"MT5LAB_DATA_DIR": str(data), "TQDM_DISABLE": "1"}


def _pg_env(data: Path, db: str) -> dict[str, str]:
    from mt5lab.testing.sandbox import free_port

    return _base_env(data) | {
        "MT5LAB_PROFILE": "postgres", "MT5LAB_PG_HOST": "127.0.0.1", "MT5LAB_PG_PORT": "5432",
        "MT5LAB_PG_DATABASE": db, "MT5LAB_PG_USER": "postgres", "MT5LAB_PG_PASSWORD": "",
        "MT5LAB_PG_SSLMODE": "disable", "MT5LAB_REDIS_HOST": "127.0.0.1",
        "MT5LAB_REDIS_PORT": str(free_port()),  # ingest never touches Redis: a closed port proves it
        "MT5LAB_REDIS_DB": "0", "MT5LAB_REDIS_PASSWORD": ""}


def _cli_args(case: Case, path: Path) -> list[str]:
    args = ["ingest", str(path), "--timeframe", case.timeframe, "--server-tz", case.server_tz]
    return args + (["--symbol", case.symbol] if case.symbol is not None else [])


def _assert_clear_failure(out: subprocess.CompletedProcess, case: Case, path: Path) -> None:
    assert out.returncode == BarValidationError.exit_code, (out.returncode, out.stderr[-2000:])
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 1, out.stderr[-3000:]
    line = lines[0]
    assert line.startswith("error: ") and path.name in line and case.rule in line, line
    assert case.row is None or f"row {case.row}:" in line, line
    assert len(line) < 600 and "Traceback" not in out.stderr
    assert "ingested" not in out.stdout


@pytest.mark.parametrize("case_id", CLI_LOCAL)
def test_rejected_by_the_cli_local(case_id, local_dir, tmp_path):
    case = BY_ID[case_id]
    path = tmp_path / f"cli-{case.id}{case.suffix}"
    path.write_bytes(case.data)
    before = tree_hash(local_dir)
    out = _cli(_cli_args(case, path), _base_env(local_dir))
    _assert_clear_failure(out, case, path)
    assert tree_hash(local_dir) == before


@pytest.mark.services
@pytest.mark.parametrize("case_id", CLI_PG)
def test_rejected_by_the_cli_postgres(case_id, pg_db, tmp_path):
    case = BY_ID[case_id]
    path = tmp_path / f"cli-{case.id}{case.suffix}"
    path.write_bytes(case.data)
    data = tmp_path / "data"
    with pg_db[0].connect() as conn:
        before = pg_fingerprint(conn)
    out = _cli(_cli_args(case, path), _pg_env(data, pg_db[1]))
    _assert_clear_failure(out, case, path)
    with pg_db[0].connect() as conn:
        assert pg_fingerprint(conn) == before
    assert not data.exists() or tree_hash(data) == {}


# -- accepted files ----------------------------------------------------------------------------------
def _expected(n: int, symbol: str, start: datetime = T0) -> pl.DataFrame:
    """What good_rows(n) must become: built here from the same numbers, not by mt5lab."""
    return pl.DataFrame({
        "symbol": [symbol] * n, "timeframe": ["H1"] * n,
        "time": [start + timedelta(hours=i) for i in range(n)],
        "open": [1.1] * n, "high": [1.2] * n, "low": [1.0] * n, "close": [1.1 + i / 1000 for i in range(n)],
        "tick_volume": [10] * n, "spread": [2] * n, "real_volume": [0] * n,
    }, schema_overrides={"time": pl.Datetime("us", "UTC")})


ENCODINGS = {
    "utf16-bom-crlf": lambda t: t.replace("\n", "\r\n").encode("utf-16"),  # what MT5 writes
    "utf16-le-no-bom": lambda t: t.encode("utf-16-le"),
    "utf8-bom": lambda t: b"\xef\xbb\xbf" + t.encode(),
    "crlf": lambda t: t.replace("\n", "\r\n").encode(),
    "no-final-newline": lambda t: t.rstrip("\n").encode(),
}


@pytest.mark.parametrize("enc", list(ENCODINGS))
def test_accepted_encodings_store_exact_bars(enc, target, tmp_path):
    path = tmp_path / f"export-{enc}.csv"
    path.write_bytes(ENCODINGS[enc](mt5_text(good_rows(7))))
    res = _ingest(target.store(), path, Case("ok", b"", "", None, symbol=f"ENC{enc}"))
    assert (res.rows, res.write.inserted) == (7, 7)
    got = target.store().read_bars("H1", [f"ENC{enc}"])
    assert got.select(_expected(7, "x").columns).equals(_expected(7, f"ENC{enc}"))


def test_aware_offsets_are_converted_to_utc(target, tmp_path):
    path = tmp_path / "aware.csv"
    path.write_bytes(_generic(["time,open,high,low,close,tick_volume",
                               *(f"2024-01-02T{h + 2:02d}:00:00+02:00,1.1,1.2,1.0,{1.1 + h / 1000},10" for h in range(3))]))
    _ingest(target.store(), path, Case("ok", b"", "", None, symbol="AWARE"))
    got = target.store().read_bars("H1", ["AWARE"])
    assert got["time"].to_list() == [T0 + timedelta(hours=h) for h in range(3)]


def test_utf16_bom_through_the_cli(local_dir, tmp_path):
    path = tmp_path / "EURUSD_H1.csv"
    path.write_bytes(ENCODINGS["utf16-bom-crlf"](mt5_text(good_rows(4))))
    out = _cli(["ingest", str(path), "--symbol", "MT5EXPORT", "--timeframe", "H1", "--server-tz", "UTC"], _base_env(local_dir))
    assert out.returncode == 0, out.stderr
    assert "ingested 4 bars: 4 new" in out.stdout
    from mt5lab.storage.local import LocalStore

    got = LocalStore(local_dir).read_bars("H1", ["MT5EXPORT"])
    assert got.equals(_expected(4, "MT5EXPORT"))


# -- names: accepted and stored safely --------------------------------------------------------------
def test_hostile_symbols_are_data_not_paths_or_sql(target, tmp_path):
    """Every name is stored and read back exactly; no file or table is named after it."""
    store = target.store()
    counts = store.counts()
    listing = sorted(p.name for p in tmp_path.parent.iterdir())
    for i, sym in enumerate(ACCEPTED_NAMES):
        path = tmp_path / f"names-{i}.csv"
        path.write_text(mt5_text(good_rows(3)))
        res = _ingest(store, path, Case("ok", b"", "", None, symbol=sym))
        assert res.write.inserted == 3
    after = store.counts()
    assert after["bars_d1"] == counts["bars_d1"] == 2148  # GOOG's D1 bars survived the DROP TABLE
    assert after["bars_h1"] == counts["bars_h1"] + 3 * len(ACCEPTED_NAMES)
    for sym in ACCEPTED_NAMES:
        assert store.read_bars("H1", [sym]).equals(_expected(3, sym))
    assert sorted(p.name for p in tmp_path.parent.iterdir()) == listing  # nothing written beside us
    if target.profile == "local":
        files = set(tree_hash(target.local))
        assert files <= {".mt5lab.lock", "offline/bars/timeframe=D1/bars.parquet",
                         "offline/bars/timeframe=H1/bars.parquet", "offline/.generation/D1",
                         "offline/.generation/H1"}, files
    else:
        with store.connect() as conn:
            tables = {r[0] for r in conn.execute("SELECT format('%s.%s', schemaname, tablename) FROM pg_tables "
                                                 "WHERE schemaname NOT IN ('pg_catalog', 'information_schema')")}
        assert tables == {f"{s}.{p}{tf}" for tf in ("m1", "m5", "m15", "m30", "h1", "h4", "d1", "w1")
                          for s, p in (("market_data", "ohlcv_"), ("features", ""))} | {
                              "market_data.write_generation"}


def test_hostile_symbols_through_build(local_dir, tmp_path):
    """Names flow through feature computation too (local store: symbols are column values)."""
    from mt5lab.features.build import build
    from mt5lab.storage.local import LocalStore

    store = LocalStore(local_dir)
    for i, sym in enumerate(ACCEPTED_NAMES[:3]):
        path = tmp_path / f"b{i}.csv"
        path.write_text(mt5_text(good_rows(40)))
        _ingest(store, path, Case("ok", b"", "", None, symbol=sym))
    build(store, ["H1"], list(ACCEPTED_NAMES[:3]), progress=False)
    feats = store.read_features("H1", list(ACCEPTED_NAMES[:3]))
    assert feats.group_by("symbol").len().sort("symbol").rows() == sorted((s, 40) for s in ACCEPTED_NAMES[:3])


def test_cross_file_duplicate_names_both_files(target, tmp_path):
    a, b = tmp_path / "a.csv", tmp_path / "b.csv"
    a.write_text(mt5_text(good_rows(5)))
    b.write_text(mt5_text(good_rows(3, T0 + timedelta(hours=4))))
    before = target.take()
    from mt5lab.bars.ingest import ingest_files

    with pytest.raises(BarValidationError) as err:
        ingest_files(target.store(), [a, b], symbol="TWOFILES", timeframe="H1", server_tz="UTC", progress=False)
    assert err.value.rule == "duplicate time across inputs" and err.value.row == 1
    assert "b.csv" in str(err.value) and "a.csv row 5" in str(err.value)
    assert target.take() == before


def test_bad_arguments_are_mt5lab_errors(tmp_path, local_dir):
    from mt5lab.storage.local import LocalStore

    path = tmp_path / "x.csv"
    path.write_text(mt5_text(good_rows(2)))
    before = tree_hash(local_dir)
    for kw in ({"server_tz": "Mars/Olympus"}, {"timeframe": "H2"}):
        case = Case("arg", b"", "", None, **kw)
        with pytest.raises(Mt5LabError):
            _ingest(LocalStore(local_dir), path, case)
    with pytest.raises(BarValidationError, match="cannot open file"):
        _ingest(LocalStore(local_dir), tmp_path / "missing.csv", Case("arg", b"", "", None))
    assert tree_hash(local_dir) == before


def test_hostile_symbols_through_materialize_and_online(demo_store, tmp_path, monkeypatch):
    """Names as Feast entity keys: materialized to the online store and read back by Feast."""
    from mt5lab.feast_repo import store as store_mod
    from mt5lab.features.build import build
    from mt5lab.online.feast_read import online_frame
    from mt5lab.online.materialize import materialize
    from mt5lab.storage.local import LocalStore

    data = tmp_path / "data"
    shutil.copytree(demo_store["dir"], data)
    monkeypatch.setenv("MT5LAB_DATA_DIR", str(data))
    monkeypatch.delenv("MT5LAB_PROFILE", raising=False)
    store_mod._STORES.clear()
    try:
        store, names = LocalStore(data), ACCEPTED_NAMES[:5]
        for i, sym in enumerate(names):
            path = tmp_path / f"o{i}.csv"
            path.write_text(mt5_text(good_rows(30, T0 + timedelta(hours=i))))
            _ingest(store, path, Case("ok", b"", "", None, symbol=sym))
        build(store, ["H1"], list(names), progress=False)
        assert materialize(store, None, "H1", progress=False).written == len(names)
        online = online_frame(list(names), "H1").set_index("symbol")
        for sym in names:
            assert online.loc[sym, "close"] == 1.1 + 29 / 1000  # the last bar written for it
        assert online_frame(["GOOG"], "D1")["close"].tolist() == [806.19]  # the sample untouched
    finally:
        store_mod._STORES.clear()
