"""Configuration parsing, the catalog data file, and the SQLite store's migrations and group commits."""

from __future__ import annotations

import asyncio
import os
import sqlite3
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from routeway.catalog import Catalog
from routeway.config import ConfigError, load_settings
from routeway.store.sqlite import SQLiteStore, StoreUnavailable

from tests.conftest import ADMIN_KEY, Gateway

ROOT = Path(__file__).resolve().parents[1]


def test_example_config_is_valid() -> None:
    settings = load_settings(ROOT / "routeway.example.toml", env={})
    catalog = Catalog.build(settings)
    [endpoint] = catalog.endpoints_for("nousresearch/hermes-4-70b")
    assert endpoint.provider.timeouts.first_byte == 300 and endpoint.quantization == "fp8"
    assert catalog.get("acme/tiny-chat") is not None


def test_seed_model_is_in_the_catalog_as_the_page_gives_it() -> None:
    model = Catalog.build(load_settings(env={})).get("nousresearch/hermes-4-70b")
    assert model is not None
    assert model.name == "Nous: Hermes 4 70B" and model.context_length == 131072
    assert str(model.prompt_price) == "0.13" and str(model.completion_price) == "0.40"
    assert model.created == 1756166400  # 2025-08-26
    assert model.description.startswith("Hermes 4 70B is a hybrid reasoning model from Nous Research")
    assert set(model.supported_parameters) == {"reasoning", "include_reasoning", "max_tokens", "temperature", "top_p",
                                               "frequency_penalty", "presence_penalty", "top_k", "repetition_penalty",
                                               "response_format"}


def test_environment_keys_add_providers() -> None:
    catalog = Catalog.build(load_settings(env={"OPENROUTER_API_KEY": "x", "OPENAI_API_KEY": "y"}))
    assert {e.tag for e in catalog.endpoints_for("openai/gpt-4o")} == {"openrouter", "openai"}
    assert [e.upstream_model for e in catalog.endpoints_for("openai/gpt-4o") if e.tag == "openai"] == ["gpt-4o"]
    assert [e.tag for e in catalog.endpoints_for("nousresearch/hermes-4-70b")] == ["openrouter"]


@pytest.mark.parametrize(("text", "message"), [
    ("[[providers]]\nname='a'\nkind='openai'\n", "base_url"),
    ("[[endpoints]]\nmodel='x/y'\nprovider='nope'\n", "provider 'nope'"),
    ("[[providers]]\nname='a'\nkind='openai'\nbase_url='http://x'\ndata_collection='maybe'\n", "data_collection"),
    ("not = [toml", "not valid TOML"),
    ("[[providers]]\nname='a'\nkind='openai'\nbase_url='ftp://x'\n", "base_url must start with http"),
    ("[limits]\nkey_requests = 'lots'\n", "not a rate such as"),
    ("[limits]\nburst = 5\n", "unknown settings"),
    ("[[providers]]\nname='a'\nkind='openai'\nbase_url='http://x'\nheaders={x-team=\"a\\nb\"}\n", "line break"),
    ("[[providers]]\nname='a'\nkind='local'\n", "missing required key 'model_path'"),
    ("[[providers]]\nname='a'\nkind='local'\nmodel_path='/nonexistent.gguf'\n", "is not a file"),
    ("[[providers]]\nname='a'\nkind='local'\nmodel_path='/etc/hostname'\nn_ctx=0\n", "n_ctx must be a whole number"),
    ("[[providers]]\nname='a'\nkind='local'\nmodel_path='/etc/hostname'\nbase_url='http://x'\n", "unknown settings"),
    ("[server]\ndefault_model = 'no'\n", "default_model must be true or false"),
])
def test_bad_config_says_what_is_wrong(tmp_path: Path, text: str, message: str) -> None:
    path = tmp_path / "c.toml"
    path.write_text(text)
    with pytest.raises(ConfigError, match=message.replace("[", r"\[")):
        load_settings(path, env={})


def test_serve_refuses_a_bad_config_with_a_clear_message(tmp_path: Path) -> None:
    path = tmp_path / "c.toml"
    path.write_text("[[providers]]\nname='a'\nkind='grpc'\nbase_url='http://x'\n")
    result = subprocess.run([sys.executable, "-m", "routeway", "serve", "--config", str(path), "--data-dir",
                             str(tmp_path / "d")], capture_output=True, text=True, timeout=60)
    assert result.returncode != 0
    assert "unknown kind 'grpc'" in result.stderr and "valid kinds: anthropic, local, openai" in result.stderr
    assert "Traceback" not in result.stderr


@pytest.mark.parametrize("durability", ["normal", "full"])
def test_with_normal_durability_the_wal_reaches_the_disk_in_the_background(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, durability: str) -> None:
    import time

    from routeway.store import sqlite as sqlite_store

    synced: list[str] = []
    real = os.fdatasync
    monkeypatch.setattr(sqlite_store.os, "fdatasync",
                        lambda fd: (synced.append(os.readlink(f"/proc/self/fd/{fd}")), real(fd)))
    store = SQLiteStore(tmp_path / "db.sqlite3", durability)
    store.open()
    time.sleep(sqlite_store.WAL_FLUSH_SECONDS * 3)
    idle = len(synced)  # nothing committed yet: nothing to flush
    store.write_now([("INSERT INTO accounts (id, name, created_at) VALUES ('a', 'n', 0)", ())])
    deadline = time.monotonic() + 2
    while durability == "normal" and len(synced) == idle and time.monotonic() < deadline:
        time.sleep(0.01)
    store.close()
    if durability == "normal":
        assert idle == 0 and synced and all(path.endswith("db.sqlite3-wal") for path in synced)
    else:
        assert synced == []  # every commit is already fsynced by SQLite itself: no flusher


def test_one_process_owns_a_database_until_it_closes_it(tmp_path: Path) -> None:
    first = SQLiteStore(tmp_path / "db.sqlite3")
    first.open()
    second = SQLiteStore(tmp_path / "db.sqlite3")
    with pytest.raises(StoreUnavailable, match="could spend the same credits twice"):
        second.claim()  # flock is per open file description: a second claim in one process is refused too
    first.close()
    second.open()
    second.close()


def test_a_lock_file_of_another_user_is_a_clear_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from routeway.store import sqlite as sqlite_store

    def refused(path: str, flags: int, mode: int = 0o777) -> int:
        raise PermissionError(13, "Permission denied", path)

    monkeypatch.setattr(sqlite_store.os, "open", refused)
    with pytest.raises(StoreUnavailable, match="Run routeway as the user that owns"):
        SQLiteStore(tmp_path / "db.sqlite3").claim()


def test_a_folder_that_cannot_be_locked_is_served_with_a_warning(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                                  caplog: pytest.LogCaptureFixture) -> None:
    import errno
    import fcntl

    def no_locks(fd: int, operation: int) -> None:
        raise OSError(errno.ENOLCK, "No locks available")

    monkeypatch.setattr(fcntl, "flock", no_locks)
    store = SQLiteStore(tmp_path / "db.sqlite3")
    store.open()
    store.close()
    assert "make sure no other routeway serves from this data folder" in caplog.text


def test_a_second_server_on_one_data_folder_stops_with_a_clear_message(fresh_gateway: Gateway) -> None:
    result = subprocess.run([sys.executable, "-m", "routeway", "serve", "--data-dir", str(fresh_gateway.data_dir),
                             "--port", "0"], capture_output=True, text=True, timeout=60,
                            env={**os.environ, "ROUTEWAY_ADMIN_KEY": ADMIN_KEY})
    assert result.returncode != 0
    assert f"another routeway (pid {fresh_gateway.process.pid}) is serving" in result.stderr
    assert "Traceback" not in result.stderr
    assert httpx.get(fresh_gateway.url + "/health").status_code == 200  # the first one is untouched


def test_migrations_apply_once_from_a_blank_database(tmp_path: Path) -> None:
    for _ in range(2):
        store = SQLiteStore(tmp_path / "db.sqlite3")
        store.open()
        store.close()
    tables = {r[0] for r in sqlite3.connect(tmp_path / "db.sqlite3").execute("SELECT name FROM sqlite_master WHERE type='table'")}
    assert {"accounts", "api_keys", "ledger", "generations", "endpoint_minutes", "schema_migrations"} <= tables
    from routeway.store.migrations import MIGRATIONS
    applied = sqlite3.connect(tmp_path / "db.sqlite3").execute("SELECT id FROM schema_migrations ORDER BY id").fetchall()
    assert applied == [(m.__name__,) for m in MIGRATIONS]


def test_an_older_database_loses_the_unused_ledger_key_index_and_keeps_its_rows(tmp_path: Path) -> None:
    from routeway.store import sqlite as sqlite_store
    from routeway.store.migrations import MIGRATIONS
    older = [m for m in MIGRATIONS if m.__name__ < "m004"]
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(sqlite_store, "MIGRATIONS", older)
        store = SQLiteStore(tmp_path / "db.sqlite3")
        store.open()
        store.write_now([("INSERT INTO accounts (id, name, created_at) VALUES ('a', 'n', 0)", ()),
                         ("INSERT INTO ledger (id, account_id, kind, amount_nano, note, created_at)"
                          " VALUES ('l1', 'a', 'grant', 5, 'g', 0)", ())])
        store.close()
    db = sqlite3.connect(tmp_path / "db.sqlite3")
    indexes = lambda: {r[0] for r in db.execute("SELECT name FROM sqlite_master WHERE type = 'index'")}  # noqa: E731
    assert "ledger_key" in indexes()
    store = SQLiteStore(tmp_path / "db.sqlite3")
    store.open()
    store.close()
    assert "ledger_key" not in indexes() and "ledger_account" in indexes()
    assert db.execute("SELECT id, amount_nano FROM ledger").fetchall() == [("l1", 5)]


def test_group_commit_batches_writers_and_isolates_a_failing_one(tmp_path: Path) -> None:
    store = SQLiteStore(tmp_path / "db.sqlite3")
    store.open()

    async def main() -> list[object]:
        insert = "INSERT INTO accounts (id, name, created_at) VALUES (?, ?, 0)"
        writes = [store.write([(insert, (f"a{i}", "n"))]) for i in range(200)]
        writes.append(store.write([(insert, ("dup", "n")), (insert, ("dup", "n"))]))  # fails alone
        return await asyncio.gather(*writes, return_exceptions=True)

    results = asyncio.run(main())
    store.close()
    assert all(r is None for r in results[:200]) and isinstance(results[200], sqlite3.IntegrityError)
    rows = sqlite3.connect(tmp_path / "db.sqlite3").execute("SELECT COUNT(*) FROM accounts").fetchone()[0]
    assert rows == 200  # the failing batch left nothing behind
    assert store.commits < 200  # writers shared commits


@pytest.mark.parametrize(("setting", "pragma"), [("full", 2), ("normal", 1)])
def test_durability_setting_sets_sqlite_synchronous(tmp_path: Path, setting: str, pragma: int) -> None:
    path = tmp_path / "c.toml"
    path.write_text(f'[server]\ndurability = "{setting}"\n')
    settings = load_settings(path, env={})
    store = SQLiteStore(tmp_path / "db.sqlite3", settings.durability)
    store.open()
    try:
        assert store.fetch_now("PRAGMA synchronous") == [(pragma,)]
    finally:
        store.close()
    path.write_text('[server]\ndurability = "sometimes"\n')
    with pytest.raises(ConfigError, match="durability"):
        load_settings(path, env={})
