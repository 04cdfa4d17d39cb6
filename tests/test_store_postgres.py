"""The PostgreSQL store beside SQLite: equivalent schemas after every migration, migrations applied once
however many processes start together, placeholders translated in one place, and ``routeway migrate
--from-sqlite`` copying an embedded install with every row and agreeing balances."""

from __future__ import annotations

import asyncio
import inspect
import os
import subprocess
import sys
import threading
from pathlib import Path

import psycopg
import pytest

from routeway.store.accounts import AccountRepository, AccountRow
from routeway.store.base import Store
from routeway.store.endpoint_minutes import EndpointMinuteRepository, MinuteRow
from routeway.store.generations import GenerationRepository
from routeway.store.ledger import LedgerRepository
from routeway.store.migrations import MIGRATIONS, applied_migrations
from routeway.store.postgres import PostgresStore, translate, translate_ddl
from routeway.store.sqlite import SQLiteStore, StoreUnavailable
from routeway.store.transfer import BATCH_ROWS, tables_of

from tests.support.postgres import ThrowawayDatabase, available
from tests.test_store_repositories import entry, generation, key_row

pytestmark = pytest.mark.skipif(not available(), reason="no PostgreSQL on 127.0.0.1:5432")


@pytest.fixture()
def pg_url(database: ThrowawayDatabase, tmp_path: Path) -> str:
    return database.url_for(str(tmp_path))


@pytest.mark.parametrize("implementation", [SQLiteStore, PostgresStore], ids=lambda c: c.__name__)
def test_both_stores_have_every_member_of_the_store_interface(implementation: type) -> None:
    for name, wanted in vars(Store).items():
        if name.startswith("_") or not (callable(wanted) or isinstance(wanted, property)):
            continue
        found = getattr(implementation, name, None)
        if isinstance(wanted, property):  # a property, or an attribute set in __init__
            initialisers = [inspect.getsource(cls.__init__) for cls in implementation.__mro__ if "__init__" in vars(cls)
                            and cls is not object]
            assert isinstance(found, property) or any(f"self.{name} = " in source for source in initialisers), name
        else:
            assert found is not None, f"{implementation.__name__} has no {name}"
            assert list(inspect.signature(found).parameters) == list(inspect.signature(wanted).parameters), name
            assert inspect.iscoroutinefunction(found) == inspect.iscoroutinefunction(wanted), name


def test_a_database_that_cannot_be_reached_is_one_clear_line_before_listening() -> None:
    with pytest.raises(StoreUnavailable, match=r"cannot reach postgresql://postgres@127\.0\.0\.1:1/nowhere"):
        PostgresStore("postgresql://postgres:secret@127.0.0.1:1/nowhere").claim()
    assert "secret" not in repr(PostgresStore("postgresql://postgres:secret@127.0.0.1:1/nowhere"))


def test_placeholders_and_types_are_translated_in_one_place() -> None:
    assert translate("SELECT a FROM t WHERE b = ? AND c LIKE 'x%' LIMIT ?") == (
        "SELECT a FROM t WHERE b = %s AND c LIKE 'x%%' LIMIT %s")
    assert translate_ddl("a INTEGER NOT NULL, b REAL, c BIGINT, d TEXT") == (
        "a BIGINT NOT NULL, b DOUBLE PRECISION, c BIGINT, d TEXT")


def test_sqlite_and_postgresql_schemas_are_equivalent(tmp_path: Path, pg_url: str) -> None:
    sqlite, postgres = SQLiteStore(tmp_path / "db.sqlite3"), PostgresStore(pg_url)
    sqlite.open()
    postgres.open()
    try:
        on_sqlite, on_postgres = sqlite.schema(), postgres.schema()
        assert set(on_sqlite["tables"]) >= {"accounts", "api_keys", "ledger", "generations", "endpoint_minutes"}
        for part in ("tables", "primary_keys", "indexes"):
            assert on_postgres[part] == on_sqlite[part], part
        assert on_postgres["tables"]["endpoint_minutes"]["tps_p50"] == ("real", False)
        assert applied_migrations(postgres) == applied_migrations(sqlite) == [m.__name__ for m in MIGRATIONS]
        # 64-bit where SQLite is: a nano-USD amount or a token count past 2^31 fits on both
        [(kind,)] = postgres.fetch_now("SELECT data_type FROM information_schema.columns WHERE"
                                       " table_schema = current_schema() AND table_name = 'generations'"
                                       " AND column_name = 'tokens_prompt'")
        assert kind == "bigint"
    finally:
        sqlite.close()
        postgres.close()


def test_replicas_starting_together_migrate_once(pg_url: str) -> None:
    stores = [PostgresStore(pg_url) for _ in range(4)]
    errors: list[BaseException] = []

    def start(store: PostgresStore) -> None:
        try:
            store.open()
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=start, args=(store,)) for store in stores]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    try:
        assert errors == []
        rows = stores[0].fetch_now("SELECT id FROM schema_migrations ORDER BY id")
        assert [r[0] for r in rows] == [m.__name__ for m in MIGRATIONS]
        assert stores[0].writable and stores[3].writable  # no claim: every process writes
    finally:
        for store in stores:
            store.close()


def test_a_bad_write_fails_alone_and_booleans_are_stored_as_integers(pg_url: str) -> None:
    store = PostgresStore(pg_url)
    store.open()
    insert = "INSERT INTO accounts (id, name, created_at) VALUES (?, ?, ?)"

    async def main() -> list[object]:
        writes = [store.write([(insert, (f"a{i}", "n", 0))]) for i in range(100)]
        writes.insert(10, store.write([(insert, ("huge", "n", 10**30))]))  # out of BIGINT's range
        writes.insert(20, store.write([(insert, ("dup", "n", 0)), (insert, ("dup", "n", 0))]))
        return await asyncio.gather(*writes, return_exceptions=True)

    try:
        results = asyncio.run(main())
        assert isinstance(results[10], psycopg.errors.NumericValueOutOfRange)
        assert isinstance(results[20], psycopg.errors.UniqueViolation)
        assert all(r is None for i, r in enumerate(results) if i not in (10, 20))
        assert store.writable and store.commits < 100
        assert store.fetch_now("SELECT COUNT(*) FROM accounts") == [(100,)]
        asyncio.run(store.write([AccountRepository.insert_key(key_row("h", "a1", disabled=True))]))
        assert store.fetch_now("SELECT disabled, is_management FROM api_keys") == [(1, 0)]
    finally:
        store.close()


def fill_embedded_install(path: Path, generations: int) -> None:
    store = SQLiteStore(path)
    store.open()
    accounts, ledger = AccountRepository(store), LedgerRepository(store)
    ops = [accounts.insert(AccountRow("a1", "one", 1)), accounts.insert(AccountRow("a2", "two", 2)),
           accounts.insert_key(key_row("k1", "a1", limit=5_000_000_000, limit_reset="daily")),
           accounts.insert_key(key_row("k2", "a2", deleted=True)),
           ledger.insert(entry("g1", "a1", 10_000_000_000, 1)), ledger.insert(entry("g2", "a2", 3, 1)),
           EndpointMinuteRepository.upsert(MinuteRow("mock/echo", 29_000_000, 5, 1, 0, 1234.56789012, 0.1 + 0.2))]  # doubles, not floats
    for i in range(generations):
        ops.append(GenerationRepository.insert(generation(f"gen-{i:05}", "a1", "m/x", 1000 + i, cost=7 + i, key_hash="k1")))
        ops.append(ledger.insert(entry(f"c-{i:05}", "a1", -(7 + i), 1000 + i, "charge", "k1", f"gen-{i:05}")))
    store.write_now(ops)
    store.close()


def postgres_tables(store: PostgresStore) -> list[str]:
    return list(store.schema()["tables"])


def migrate(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "routeway", "migrate", *args], capture_output=True, text=True,
                          timeout=120, env={**os.environ, "COLUMNS": "200", **(env or {})})


def test_migrate_copies_an_embedded_install_with_every_row_and_agreeing_balances(tmp_path: Path, pg_url: str) -> None:
    rows = BATCH_ROWS + 234  # more than one batch
    fill_embedded_install(tmp_path / "data" / "routeway.sqlite3", rows)
    result = migrate("--from-sqlite", str(tmp_path / "data"), "--database-url", pg_url)
    assert result.returncode == 0, result.stderr + result.stdout
    assert "every balance agrees" in " ".join(result.stdout.split()) and "Traceback" not in result.stderr  # rich wraps at 80 columns

    source, target = SQLiteStore(tmp_path / "data" / "routeway.sqlite3"), PostgresStore(pg_url)
    source.open()
    target.open()
    try:
        tables = [t.name for t in tables_of(source)]
        assert tables[0] == "accounts" and {"api_keys", "ledger", "generations", "endpoint_minutes"} <= set(tables)
        assert set(tables) == set(postgres_tables(target))  # every table, whatever later migrations add
        for table in tables:
            sql = f"SELECT * FROM {table} ORDER BY 1, 2"
            assert target.fetch_now(sql) == source.fetch_now(sql), table
        assert LedgerRepository(target).balances_now() == {
            "a1": (10_000_000_000, sum(7 + i for i in range(rows))), "a2": (3, 0)}
        assert LedgerRepository(target).key_charges_now([]) == LedgerRepository(source).key_charges_now([])
        assert sorted(AccountRepository(target).keys_now()) == sorted(AccountRepository(source).keys_now())
    finally:
        source.close()
        target.close()

    again = migrate("--from-sqlite", str(tmp_path / "data"), "--database-url", pg_url)
    assert again.returncode != 0 and "already holds" in again.stderr and "--into-non-empty" in again.stderr
    with psycopg.connect(pg_url, autocommit=True) as conn:  # as if the first copy had stopped half-way
        conn.execute("DELETE FROM ledger WHERE id >= 'c-00500'")
        conn.execute("DELETE FROM generations WHERE id >= 'gen-00500'")
    short = migrate("--from-sqlite", str(tmp_path / "data"), "--database-url", pg_url, "--into-non-empty")
    assert short.returncode == 0, short.stderr
    assert "every balance agrees" in " ".join(short.stdout.split())  # the missing rows copied, none doubled
    [(ledger_rows,)] = psycopg.connect(pg_url).execute("SELECT COUNT(*) FROM ledger").fetchall()
    assert ledger_rows == rows + 2


def test_migrate_applies_pending_migrations_and_refuses_a_live_install(tmp_path: Path, pg_url: str) -> None:
    result = migrate(env={"ROUTEWAY_DATABASE_URL": pg_url})
    assert result.returncode == 0, result.stderr
    assert f"schema at {MIGRATIONS[-1].__name__}" in result.stdout
    embedded = migrate("--data-dir", str(tmp_path / "data"))
    assert embedded.returncode == 0 and (tmp_path / "data" / "routeway.sqlite3").exists()

    live = SQLiteStore(tmp_path / "data" / "routeway.sqlite3")
    live.open()  # as a serving routeway holds it
    try:
        refused = migrate("--from-sqlite", str(tmp_path / "data"), "--database-url", pg_url)
    finally:
        live.close()
    assert refused.returncode != 0 and "another routeway" in refused.stderr and "Traceback" not in refused.stderr
    no_target = migrate("--from-sqlite", str(tmp_path / "data"), env={"ROUTEWAY_DATABASE_URL": ""})
    assert no_target.returncode != 0 and "copies into PostgreSQL" in no_target.stderr


def test_the_store_is_chosen_by_url_with_the_environment_first(tmp_path: Path) -> None:
    from routeway.config import ConfigError, load_settings
    from routeway.services import build_store

    config = tmp_path / "c.toml"
    config.write_text('[store]\nurl = "postgresql://routeway@db/routeway"\n')
    assert isinstance(build_store(load_settings(env={}, data_dir=tmp_path)), SQLiteStore)
    assert load_settings(config, env={}).store_url == "postgresql://routeway@db/routeway"
    chosen = load_settings(config, env={"ROUTEWAY_DATABASE_URL": "postgres://other/x"})
    assert chosen.store_url == "postgres://other/x" and isinstance(build_store(chosen), PostgresStore)
    for text, message in (('[store]\nurl = "mysql://db/x"\n', "postgresql:// URL"),
                          ('[store]\npath = "x"\n', "unknown settings")):
        config.write_text(text)
        with pytest.raises(ConfigError, match=message):
            load_settings(config, env={})
