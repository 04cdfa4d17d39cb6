"""The interfaces in front of routeway's state (``interfaces.py``) and today's in-process implementations:
each implementation has every member of its interface with the same parameters, the accounts book answers
its named questions from a real store, and rate-limit counters live in whatever ``limits`` storage is given
(so Redis-shared counters are a constructor argument, not an edit)."""

from __future__ import annotations

import asyncio
import inspect
from pathlib import Path

import pytest
from limits.storage import MemoryStorage

from routeway.api.throttle import Throttle
from routeway.config import LimitSettings
from routeway.errors import APIError
from routeway.interfaces import AccountsBook, HealthRegistry, RateLimits
from routeway.ledger.accounts import Accounts
from routeway.ledger.book import Book, KeyState
from routeway.routing.health import Health
from routeway.store.sqlite import SQLiteStore

IMPLEMENTATIONS = [(AccountsBook, Accounts), (HealthRegistry, Health), (RateLimits, Throttle)]


def members(protocol: type) -> list[str]:
    return [name for name, value in vars(protocol).items()
            if not name.startswith("_") and (callable(value) or isinstance(value, property))]


@pytest.mark.parametrize(("interface", "implementation"), IMPLEMENTATIONS, ids=lambda c: c.__name__)
def test_each_implementation_has_its_interface(interface: type, implementation: type) -> None:
    assert members(interface), interface
    for name in members(interface):
        wanted = vars(interface)[name]
        if isinstance(wanted, property):
            # an attribute set in __init__ (Health.endpoints) or a property
            assert isinstance(getattr(implementation, name, None), property) or name in _init_attributes(
                implementation), f"{implementation.__name__} has no {name}"
            continue
        found = getattr(implementation, name, None)
        assert found is not None, f"{implementation.__name__} has no {name}"
        assert list(inspect.signature(found).parameters) == list(inspect.signature(wanted).parameters), name
        assert inspect.iscoroutinefunction(found) == inspect.iscoroutinefunction(wanted), name


def _init_attributes(cls: type) -> set[str]:
    source = inspect.getsource(cls.__init__)  # type: ignore[misc]
    return {line.split("self.", 1)[1].split(":")[0].split("=")[0].strip()
            for line in source.splitlines() if "self." in line and "=" in line}


def test_the_accounts_book_answers_by_name_from_a_real_store(tmp_path: Path) -> None:
    store = SQLiteStore(tmp_path / "routeway.sqlite3")
    store.open()
    try:
        accounts = Accounts(store, Book())

        async def scenario() -> tuple[str, str, str]:
            one = await accounts.create_account("one", 5_000)
            other = await accounts.create_account("other")
            secret_old, old = await accounts.create_key(one, name="old", is_management=False)
            _, gone = await accounts.create_key(one, name="gone", is_management=False)
            await accounts.create_key(other, name="theirs", is_management=True)
            old.created_at, gone.created_at = 1, 2  # two keys in the same millisecond: make the order certain
            await accounts.update_key(gone, {"deleted": True, "disabled": True})
            await accounts.grant(one, -1_000, "take back")
            return one.id, secret_old, gone.hash

        one_id, secret, gone_hash = asyncio.run(scenario())
        account = accounts.get(one_id)
        assert account is not None and (account.credits, account.usage) == (5_000, 1_000)
        assert accounts.get("acct-none") is None
        assert sorted(a.name for a in accounts.all()) == ["one", "other"]
        assert [k.name for k in accounts.keys_of(one_id)] == ["old"]  # deleted keys are not the account's
        found = accounts.find_key(secret)
        assert found is not None and found.name == "old" and accounts.of_key(found) is account
        assert accounts.find_key(secret + "0") is None
        gone = accounts.key(gone_hash)
        assert gone is not None and gone.deleted  # by hash, a deleted key is still there (for its records' names)
        store.close()
        store.open()
        reloaded = Accounts(store, Book())
        reloaded.load()  # rebuilt from the store: the same answers
        again = reloaded.get(one_id)
        assert again is not None and (again.credits, again.usage) == (5_000, 1_000)
        assert [k.name for k in reloaded.keys_of(one_id)] == ["old"]
        assert reloaded.find_key(secret) is not None
    finally:
        store.close()


def test_rate_limit_counters_live_in_the_storage_given() -> None:
    storage = MemoryStorage()
    throttle = Throttle(LimitSettings(key_requests="2/minute"), storage=storage)
    key = KeyState(hash="h", account_id="a", name="n", label="l", is_management=False, created_at=0)
    asyncio.run(throttle.check_key(key))
    asyncio.run(throttle.check_key(key))
    with pytest.raises(APIError) as refused:
        asyncio.run(throttle.check_key(key))
    assert refused.value.status == 429
    assert storage.storage, "the counts are in the storage given"
    # a second throttle over the same storage sees the same counts
    with pytest.raises(APIError):
        asyncio.run(Throttle(LimitSettings(key_requests="2/minute"), storage=storage).check_key(key))
    asyncio.run(asyncio.wait_for(throttle.sweep_forever(), 1))  # a storage that expires its own: no sweep
