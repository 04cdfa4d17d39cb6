"""The interfaces in front of routeway's shared state: what api/ and web/ may ask of the accounts book,
the endpoint health registry and the rate-limit counters. Each has today's in-process implementation
(``ledger/accounts.py``, ``routing/health.py``, ``api/throttle.py``); a PostgreSQL store or state shared
through Redis (issue 12) is a new implementation of these, not an edit of every caller. The store's own
interface is ``store/base.py``'s ``Store``, with the SQL in the repositories beside it."""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    from routeway.ledger.book import AccountState, KeyState
    from routeway.routing.health import EndpointHealth, HealthSettings
    from routeway.store.ledger import LedgerEntry


class AccountsBook(Protocol):
    """Balances and keys: named questions, and changes that are written before they are applied."""

    def load(self) -> None:
        """Rebuild the balances and keys from the store (start-up, before serving)."""

    def get(self, account_id: str) -> AccountState | None: ...

    def all(self) -> list[AccountState]: ...

    def of_key(self, key: KeyState) -> AccountState:
        """The account a key belongs to (there always is one)."""

    def key(self, key_hash: str) -> KeyState | None:
        """A key by its hash, deleted ones too (callers check ``deleted``)."""

    def keys_of(self, account_id: str) -> list[KeyState]:
        """The account's keys that are not deleted, oldest first."""

    def find_key(self, secret: str) -> KeyState | None:
        """The live key whose secret this is."""

    async def create_account(self, name: str, credits: int = 0) -> AccountState: ...

    async def grant(self, account: AccountState, amount: int, note: str) -> LedgerEntry: ...

    async def create_key(self, account: AccountState, *, name: str, is_management: bool, limit: int | None = None,
                         limit_reset: str | None = None, include_byok_in_limit: bool = False,
                         expires_at: int | None = None) -> tuple[str, KeyState]: ...

    async def update_key(self, key: KeyState, changes: Mapping[str, Any]) -> KeyState: ...


class HealthRegistry(Protocol):
    """Endpoint health measured from traffic: read by routing, the endpoints API, /metrics and the dashboard."""

    @property
    def settings(self) -> HealthSettings:
        """Breaker threshold and cool-down: routing says how long a refused endpoint stays out."""

    @property
    def endpoints(self) -> Mapping[str, EndpointHealth]: ...

    def of(self, key: str) -> EndpointHealth:
        """The endpoint's health, created on first use."""

    def restore(self, key: str, minute: int, ok: int, errors: int, rate_limited: int) -> None:
        """Lay a persisted minute back in (start-up)."""


class RateLimits(Protocol):
    """Request-rate limits and concurrent streams; each check raises the 429 itself. Asynchronous, as the
    counters may live in Redis (``shared/throttle.py``)."""

    async def check_key(self, key: KeyState) -> None: ...

    async def check_free(self, account: AccountState) -> None: ...

    async def open_stream(self, key: KeyState) -> None: ...

    async def close_stream(self, key: KeyState) -> None: ...

    async def check_signin(self, address: str, key_id: str) -> None:
        """A dashboard sign-in attempt from ``address`` with the key whose digest is ``key_id``."""

    async def signin_failed(self, address: str) -> None:
        """Counts a refused sign-in against ``address``."""

    async def describe(self, account: AccountState) -> dict[str, Any]:
        """The account's ``:free`` limits, as ``GET /key`` shows them."""

    async def sweep_forever(self) -> None:
        """Background upkeep of the counters (returns at once when the storage needs none)."""


class ConcurrencyLimits(Protocol):
    """Requests in flight per named engine or key, each under its cap (routing/concurrency.py in-process;
    shared/slots.py through Redis, where the caps hold across processes and replicas)."""

    @property
    def in_flight(self) -> Mapping[str, int]: ...

    async def try_acquire(self, name: str, cap: int) -> bool:
        """Take a slot now if one is free and nobody waits for it."""

    async def acquire(self, name: str, cap: int, queue: int, timeout: float) -> bool:
        """Take a slot, waiting in arrival order behind at most ``queue`` others for at most ``timeout``."""

    def release(self, name: str) -> None:
        """Give a slot back (to the oldest waiter, if any)."""
