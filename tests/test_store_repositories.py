"""The store's repositories against a real store in a temporary folder. Every test takes ``make_store``, a
factory parametrized by backend, so a PostgreSQL store (issue 12) runs the same suite by adding itself
to STORES."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from routeway.store.accounts import AccountRepository, AccountRow, KeyRow
from routeway.store.base import Store
from routeway.store.endpoint_minutes import EndpointMinuteRepository, MinuteRow
from routeway.store.generations import COLUMNS, GenerationRepository
from routeway.store.ledger import LedgerEntry, LedgerRepository
from routeway.store.postgres import PostgresStore
from routeway.store.sqlite import SQLiteStore
from routeway.store.usage import DAY_MS, UsageQueries

from tests.support.postgres import ThrowawayDatabase, available


def sqlite_store(folder: Path) -> Store:
    return SQLiteStore(folder / "routeway.sqlite3")


THROWAWAY = ThrowawayDatabase()  # created by the first PostgreSQL test, dropped after the last


def postgres_store(folder: Path) -> Store:
    """The folder names the test: its tables live in a schema of their own, so a reopen sees the same data."""
    if not postgres_available:
        pytest.skip("no PostgreSQL on 127.0.0.1:5432")
    return PostgresStore(THROWAWAY.url_for(str(folder)))


postgres_available = available()
STORES: dict[str, Callable[[Path], Store]] = {"sqlite": sqlite_store, "postgresql": postgres_store}


@pytest.fixture(scope="module", autouse=True)
def _drop_throwaway_database() -> Iterator[None]:
    yield
    THROWAWAY.drop()


@pytest.fixture(params=sorted(STORES))
def make_store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Callable[[], Store]]:
    """Opens the backend's store on one folder; calling it again after ``close`` reopens the same data."""
    opened: list[Store] = []

    def make() -> Store:
        store = STORES[request.param](tmp_path)
        store.open()
        opened.append(store)
        return store

    yield make
    for store in opened:
        store.close()


def write(store: Store, *ops: Any) -> None:
    asyncio.run(store.write(list(ops)))


def key_row(key_hash: str, account_id: str, **changes: Any) -> KeyRow:
    row = KeyRow(hash=key_hash, account_id=account_id, name="ci", label="sk-rw-v1-ab...xyz", is_management=False,
                 limit=None, limit_reset=None, include_byok_in_limit=False, expires_at=None, disabled=False,
                 deleted=False, created_at=1_000, updated_at=None)
    return row._replace(**changes)


def entry(id_: str, account_id: str, amount: int, at: int, kind: str = "grant", key_hash: str | None = None,
          generation_id: str | None = None) -> LedgerEntry:
    return LedgerEntry(id_, account_id, key_hash, kind, amount, generation_id, "note", at)


def generation(id_: str, account_id: str, model: str, at: int, cost: int = 0, tokens: tuple[int, int] = (0, 0),
               referer: str | None = None, title: str | None = None, key_hash: str = "k1") -> list[Any]:
    record: dict[str, Any] = {column: None for column in COLUMNS}
    record.update(id=id_, account_id=account_id, key_hash=key_hash, model=model, provider_name="P",
                  provider_slug="p", upstream_model="u", http_referer=referer, app_title=title,
                  tokens_prompt=tokens[0], tokens_completion=tokens[1], usage_estimated=False, usage_capped=True,
                  total_cost_nano=cost, streamed=True, cancelled=False, status=200, attempts="[]", created_at=at,
                  api="chat", cache_hit=False, cache_saved_nano=0)
    return [record[column] for column in COLUMNS]


def test_accounts_and_keys_round_trip_through_a_reopen(make_store: Callable[[], Store]) -> None:
    store = make_store()
    accounts = AccountRepository(store)
    write(store, accounts.insert(AccountRow("acct-1", "one", 5)), accounts.insert(AccountRow("acct-2", "two", 6)))
    limited = key_row("h1", "acct-1", limit=3_000_000_000, limit_reset="daily", is_management=True, expires_at=9)
    write(store, accounts.insert_key(limited), accounts.insert_key(key_row("h2", "acct-2")))
    write(store, accounts.update_key("h2", {"disabled": True, "limit": 7, "updated_at": 2_000}))
    store.close()
    reopened = AccountRepository(make_store())
    assert sorted(reopened.all_now()) == [AccountRow("acct-1", "one", 5), AccountRow("acct-2", "two", 6)]
    keys = {row.hash: row for row in reopened.keys_now()}
    assert keys["h1"] == limited
    assert keys["h2"] == key_row("h2", "acct-2", disabled=True, limit=7, updated_at=2_000)
    assert isinstance(keys["h2"].disabled, bool)


def test_a_key_change_names_only_changeable_fields(make_store: Callable[[], Store]) -> None:
    accounts = AccountRepository(make_store())
    for changes in ({"hash": "other"}, {"account_id": "acct-2"}, {"limit_nano = 0 --": 1}, {}):
        with pytest.raises(ValueError):
            accounts.update_key("h1", changes)


def test_balances_and_key_charges_are_sums_of_the_ledger(make_store: Callable[[], Store]) -> None:
    store = make_store()
    accounts, ledger = AccountRepository(store), LedgerRepository(store)
    write(store, accounts.insert(AccountRow("a1", "one", 0)), accounts.insert(AccountRow("a2", "two", 0)))
    write(store, ledger.insert(entry("l1", "a1", 10_000, 1)), ledger.insert(entry("l2", "a1", -3_000, 2, "revoke")),
          ledger.insert(entry("l3", "a1", -400, 100, "charge", "k1", "g1")),
          ledger.insert(entry("l4", "a1", -50, 200, "charge", "k1", "g2")),
          ledger.insert(entry("l5", "a2", 7, 3)))
    assert ledger.balances_now() == {"a1": (10_000, 3_450), "a2": (7, 0)}
    assert ledger.balances_now("a2") == {"a2": (7, 0)}
    charges = ledger.key_charges_now([150, 0])
    assert charges["k1"].total == 450 and charges["k1"].since == (50, 450)
    assert ledger.positive_charges_now() == 0
    rows = asyncio.run(ledger.of_account("a1"))
    assert [row.id for row in rows] == ["l1", "l2", "l3", "l4"]
    assert rows[2] == entry("l3", "a1", -400, 100, "charge", "k1", "g1")


def test_generations_are_read_back_only_within_their_account(make_store: Callable[[], Store]) -> None:
    store = make_store()
    generations = GenerationRepository(store)
    records = (generation("g1", "a1", "m/x", 10), generation("g2", "a1", "m/y", 20), generation("g3", "a2", "m/x", 30))
    write(store, *(generations.insert(record) for record in records))

    async def read() -> None:
        found = await generations.get("g1", "a1")
        assert found is not None and found["model"] == "m/x" and found["usage_capped"] == 1
        assert await generations.get("g3", "a1") is None  # another account's
        assert (await generations.get("g3", None) or {}).get("account_id") == "a2"  # the operator sees all
        assert [g["id"] for g in await generations.page("a1", 10, 0)] == ["g2", "g1"]
        assert [g["id"] for g in await generations.page(None, 2, 1)] == ["g2", "g1"]
        assert [g["id"] for g in await generations.page(None, 10, 0, model="m/x")] == ["g3", "g1"]

    asyncio.run(read())


def test_activity_per_day_model_and_endpoint_of_one_account(make_store: Callable[[], Store]) -> None:
    store = make_store()
    generations = GenerationRepository(store)
    day = DAY_MS
    rows = [generation("g1", "a1", "m/x", 3 * day + 5, 100, (10, 5)),
            generation("g2", "a1", "m/x", 3 * day + 9, 50, (1, 2)),
            generation("g3", "a1", "m/y", 4 * day, 10, (1, 1), key_hash="k2"),
            generation("g4", "a2", "m/x", 4 * day + 1, 1000, (100, 100)),
            generation("g5", "a1", "m/x", 6 * day, 7, (1, 1))]
    rows[1][COLUMNS.index("native_tokens_reasoning")] = 2
    write(store, *(generations.insert(r) for r in rows))
    usage = UsageQueries(store)

    async def read() -> None:
        found = await usage.activity("a1", 3, 5)
        assert [(a.day, a.model, a.provider_slug, a.requests, a.prompt_tokens, a.completion_tokens,
                 a.reasoning_tokens, a.cached_tokens, a.cost_nano) for a in found] == [
            (4, "m/y", "p", 1, 1, 1, 0, 0, 10), (3, "m/x", "p", 2, 11, 7, 2, 0, 150)]
        assert [a.model for a in await usage.activity("a1", 3, 5, key_hash="k2")] == ["m/y"]
        assert [a.day for a in await usage.activity("a1", 6, 6)] == [6]

    asyncio.run(read())


def test_endpoint_minutes_are_replaced_as_they_grow(make_store: Callable[[], Store]) -> None:
    store = make_store()
    minutes = EndpointMinuteRepository(store)
    write(store, minutes.upsert(MinuteRow("p/m", 100, 1, 0, 0, 50.0, 20.0)),
          minutes.upsert(MinuteRow("q/m", 101, 2, 1, 1)))
    write(store, minutes.upsert(MinuteRow("p/m", 100, 5, 1, 2, 40.0, None)))
    assert minutes.since_now(99) == [MinuteRow("p/m", 100, 5, 1, 2, 40.0, None), MinuteRow("q/m", 101, 2, 1, 1)]
    assert minutes.since_now(100) == [MinuteRow("q/m", 101, 2, 1, 1)]
    assert asyncio.run(minutes.of_endpoints(["p/m"], 100)) == [MinuteRow("p/m", 100, 5, 1, 2, 40.0, None)]
    assert asyncio.run(minutes.of_endpoints([], 0)) == []


def test_usage_aggregates_by_model_app_key_and_day(make_store: Callable[[], Store]) -> None:
    store = make_store()
    generations = GenerationRepository(store)
    day = DAY_MS
    write(store, generations.insert(generation("g1", "a1", "m/x", 3 * day + 5, 100, (10, 5), "https://a", "A")),
          generations.insert(generation("g2", "a1", "m/y", 4 * day, 10, (1, 1), None, "B", key_hash="k2")),
          generations.insert(generation("g3", "a2", "m/x", 4 * day + 1, 1000, (100, 100), "https://a")))
    usage = UsageQueries(store)

    async def read() -> None:
        assert await usage.tokens_by_model(0) == {"m/x": 215, "m/y": 2}
        assert await usage.model_tokens("m/x", 4 * day) == 200
        assert [(u.name, u.tokens, u.requests, u.cost_nano) for u in await usage.top_models(0)] == [
            ("m/x", 215, 2, 1100), ("m/y", 2, 1, 10)]
        apps = await usage.top_apps(0)
        assert [(a.name, a.tokens, a.title) for a in apps] == [("https://a", 215, "A"), ("B", 2, "B")]
        assert [a.name for a in await usage.top_apps(0, model="m/y")] == ["B"]
        assert await usage.model_days("m/x", 0) == [(3, 15, 1, 100), (4, 200, 1, 1000)]
        assert await usage.models_days(["m/x"], 0) == [("m/x", 3, 15), ("m/x", 4, 200)]
        assert await usage.models_days([], 0) == []
        assert await usage.account_days("a1", 0) == [(3, 15, 1, 100), (4, 2, 1, 10)]
        assert [u.name for u in await usage.account_by("key_hash", "a1", 0)] == ["k1", "k2"]
        assert [u.name for u in await usage.account_by("model", None, 0)] == ["m/x", "m/y"]
        with pytest.raises(ValueError):
            await usage.account_by("account_id; DROP TABLE generations", "a1", 0)

    asyncio.run(read())


def test_a_settlement_written_again_after_a_lost_commit_answer_is_recorded_once(make_store: Callable[[], Store]) -> None:
    """A commit can land while its answer is lost with the connection (PostgreSQL going away): the held
    settlement is retried (ledger/pending.py) and the retry must neither fail nor add a second row."""
    store = make_store()
    ledger = LedgerRepository(store)
    write(store, AccountRepository.insert(AccountRow("a1", "one", 0)), ledger.insert(entry("l0", "a1", 1_000, 1)))
    settlement = [GenerationRepository.insert(generation("g1", "a1", "m/x", 5, cost=40)),
                  ledger.insert(entry("l1", "a1", -40, 5, "charge", "k1", "g1"))]
    write(store, *settlement)
    write(store, *settlement)  # the retry
    assert ledger.balances_now() == {"a1": (1_000, 40)}
    assert store.fetch_now("SELECT COUNT(*) FROM generations") == [(1,)]


def test_dashboard_sessions_keep_their_caps_and_are_found_after_a_reopen(make_store: Callable[[], Store]) -> None:
    """The store's session store (store/sessions.py) keeps the caps of the in-process one, and a session is
    in the database, not in the process: a reopened store (another process, as far as it knows) finds it,
    a change written after a sign-out does not bring it back, and the rows hold no id nor secret."""
    from routeway.store.sessions import StoreSessionStore
    from routeway.web.sessions import Session

    store = make_store()
    asyncio.run(_shed_sealed(StoreSessionStore(store, per_key=3, max_signed_in=5, max_anonymous=2)))
    for sid in ("a2", "a3", "b0", "b1", "b2", "anon98", "anon99"):
        asyncio.run(StoreSessionStore(store).remove(sid))
    assert store.fetch_now("SELECT COUNT(*) FROM dashboard_sessions") == [(0,)]

    secret = "sk-rw-v1-" + "s" * 40
    session = Session(id="the-cookie-value", csrf="token", expires=time.time() + 60, key_hash="k1",
                      account_id="a1", playground=(secret, "digest-of-the-playground-key"))
    first = StoreSessionStore(store, per_key=1)
    assert asyncio.run(first.add(session)) == []
    store.close()
    store = make_store()
    other = StoreSessionStore(store, per_key=1)
    found = asyncio.run(other.get("the-cookie-value"))
    assert found == session
    dump = repr(store.fetch_now("SELECT * FROM dashboard_sessions"))
    assert "the-cookie-value" not in dump and secret not in dump and "token" not in dump
    assert "digest-of-the-playground-key" in dump  # what a push-out needs to delete that key

    newer = Session(id="newer", csrf="c", expires=time.time() + 60, key_hash="k1")
    pushed_out = asyncio.run(other.add(newer))  # k1's second session: the first goes, with its playground key
    assert [s.playground[1] for s in pushed_out if s.playground] == ["digest-of-the-playground-key"]
    assert asyncio.run(other.get("the-cookie-value")) is None

    assert asyncio.run(other.remove("newer")) == newer
    newer.flashes.append(("info", "written after the sign-out"))
    asyncio.run(other.save(newer))
    assert asyncio.run(other.get("newer")) is None
    expired = Session(id="old", csrf="c", expires=time.time() - 1, key_hash="k2")
    asyncio.run(other.add(expired))
    assert asyncio.run(other.get("old")) is None


async def _shed_sealed(store: Any) -> None:
    """tests/test_dashboard_sessions.py's ``_shed`` for sealed rows: a pushed-out session comes back as its
    owner (its id is not in the store), so which one went is told by what ``get`` still finds."""
    from routeway.web.sessions import Session

    def session(sid: str, key: str | None = None, operator: bool = False) -> Session:
        return Session(id=sid, csrf="c", expires=time.time() + 60, key_hash=key, operator=operator)

    pushed = [s.key_hash for i in range(4) for s in await store.add(session(f"a{i}", key="k1"))]
    assert pushed == ["k1"] and await store.get("a0") is None and await store.get("a1") is not None
    pushed = [s.key_hash for i in range(3) for s in await store.add(session(f"b{i}", key=f"k{i + 2}"))]
    assert pushed == ["k1"] and await store.get("a1") is None  # five signed in at most: the oldest of all goes
    for i in range(100):
        await store.add(session(f"anon{i}"))
    assert await store.get("anon99") and await store.get("anon98") and not await store.get("anon97")
    for sid in ("a2", "a3", "b0", "b1", "b2"):  # untouched by the anonymous flood
        assert await store.get(sid) is not None
    assert await store.add(session("op", operator=True)) and await store.get("op") is not None
    assert await store.remove("op") is not None and await store.get("op") is None


def test_a_session_cannot_be_read_while_the_database_is_away_and_reads_as_signed_out(tmp_path: Path) -> None:
    """PostgreSQL away: the store's reads raise StoreUnwritable (a 503 for the API); a dashboard page then
    shows as signed out rather than failing (writes still raise: the dashboard's 503 page)."""
    from routeway.store.base import StoreUnwritable
    from routeway.store.sessions import StoreSessionStore
    from routeway.web.sessions import Session

    store = sqlite_store(tmp_path)
    store.open()
    sessions = StoreSessionStore(store)
    session = Session(id="sid", csrf="c", expires=time.time() + 60, key_hash="k1")
    asyncio.run(sessions.add(session))

    async def away(sql: str, params: Any = ()) -> Any:
        raise StoreUnwritable("connection refused")

    reachable = store.fetch
    store.fetch = away  # type: ignore[method-assign]
    try:
        assert asyncio.run(sessions.get("sid")) is None
    finally:
        store.fetch = reachable  # type: ignore[method-assign]
        assert asyncio.run(sessions.get("sid")) == session
        store.close()
