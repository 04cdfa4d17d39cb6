"""The in-memory book: balances, key limits and open reservations.

All checks and updates happen on the event loop thread without an ``await`` between them, so a
reservation is atomic: concurrent requests can never together reserve more than is there. The store
is the durable record (ledger entries); the book is rebuilt from it at start-up.

When several processes share the store (``serve --workers N``), each may spend only what it has leased
(ledger/leases.py): ``leased`` is then set on every account and key, and counts down with each charge; it
is None for a process that owns the store alone and spends the whole balance. A key's guardrail budgets
are leased the same way, one lease per budget (``budget_leases``).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from routeway.ledger.periods import RESETS, period_start_ms


@dataclass(slots=True)
class AccountState:
    id: str
    name: str
    created_at: int
    credits: int = 0  # nano-USD granted, all time
    usage: int = 0  # nano-USD charged, all time
    reserved: int = 0
    leased: int | None = None  # nano-USD this process may still spend of its lease; None: the whole balance

    @property
    def available(self) -> int:
        if self.leased is None:
            return self.credits - self.usage - self.reserved
        return self.leased - self.reserved


@dataclass(frozen=True, slots=True)
class Budget:
    """A guardrail's dollar budget over one key's spend, checked like the key's own limit (teams/guardrails.py
    keeps each key's ``budgets`` current as guardrails and assignments change)."""
    guardrail_id: str
    name: str
    limit: int  # nano-USD per window
    reset: str | None  # daily, weekly, monthly; None: lifetime

    def window_start(self, now_ms: int) -> int:
        return period_start_ms(self.reset, now_ms) if self.reset else 0


@dataclass(slots=True)
class KeyState:
    hash: str
    account_id: str
    name: str
    label: str
    is_management: bool
    created_at: int
    limit: int | None = None  # nano-USD per reset window (or all time)
    limit_reset: str | None = None
    include_byok_in_limit: bool = False
    expires_at: int | None = None
    disabled: bool = False
    deleted: bool = False
    updated_at: int | None = None
    usage: int = 0
    reserved: int = 0
    # reset name -> [window start ms, nano-USD charged in that window]
    windows: dict[str, list[int]] = field(default_factory=dict)
    leased: int | None = None  # of the limit, in the window ``lease_window``: as AccountState.leased
    lease_window: int = 0  # ms: the limit window the lease belongs to (0 without a reset)
    budgets: tuple[Budget, ...] = ()
    # guardrail id -> [budget window start ms, nano-USD this process may still spend of it] (lease mode only)
    budget_leases: dict[str, list[int]] = field(default_factory=dict)

    def window_start(self, now_ms: int) -> int:
        return period_start_ms(self.limit_reset, now_ms) if self.limit_reset else 0

    def usage_in(self, reset: str, now_ms: int) -> int:
        start = period_start_ms(reset, now_ms)
        window = self.windows.get(reset)
        if window is None or window[0] != start:
            return 0
        return window[1]

    def limit_usage(self, now_ms: int) -> int:
        return self.spent(self.limit_reset, now_ms)

    def spent(self, reset: str | None, now_ms: int) -> int:
        """Charged in the current ``reset`` window, or all time when there is none."""
        return self.usage_in(reset, now_ms) if reset else self.usage

    def budget_left(self, budget: Budget, now_ms: int) -> int:
        """What the budget still allows this process, reservations not deducted: all of it in a process that
        owns the store alone, else what it leased of the budget's current window."""
        if self.leased is None:
            return budget.limit - self.spent(budget.reset, now_ms)
        lease = self.budget_leases.get(budget.guardrail_id)
        return lease[1] if lease is not None and lease[0] == budget.window_start(now_ms) else 0

    def budget_held(self, budget: Budget, now_ms: int) -> int:
        """What a charge may still take of the budget: as ``budget_left``, but a lease counts whatever its
        window (a request reserved before midnight is charged from the lease it reserved from)."""
        if self.leased is None:
            return budget.limit - self.spent(budget.reset, now_ms)
        lease = self.budget_leases.get(budget.guardrail_id)
        return lease[1] if lease is not None else 0

    def budget_remaining(self, budget: Budget, now_ms: int) -> int:
        return max(0, self.budget_left(budget, now_ms) - self.reserved)

    def limit_left(self, now_ms: int) -> int:
        """What the limit still allows, reservations not deducted (a key with a limit only)."""
        if self.leased is None:
            return (self.limit or 0) - self.limit_usage(now_ms)
        return self.leased if self.lease_window == self.window_start(now_ms) else 0

    def limit_remaining(self, now_ms: int) -> int | None:
        if self.limit is None:
            return None
        return max(0, self.limit_left(now_ms) - self.reserved)

    def add_usage(self, amount: int, now_ms: int) -> None:
        """``now_ms`` is when the charge was made: a settlement written late (after the store could write
        again) counts in the window it belongs to, and never resets a newer one."""
        self.usage += amount
        for reset in RESETS:
            start = period_start_ms(reset, now_ms)
            window = self.windows.get(reset)
            if window is None or window[0] < start:
                self.windows[reset] = [start, amount]
            elif window[0] == start:
                window[1] += amount


class InsufficientFunds(Exception):
    def __init__(self, available: int, needed: int, scope: str, budget: Budget | None = None) -> None:
        super().__init__(scope)
        self.available = available
        self.needed = needed
        self.scope = scope  # "account", "key" or "guardrail"
        self.budget = budget  # the guardrail budget that is short


@dataclass(slots=True)
class Reservation:
    account: AccountState
    key: KeyState
    amount: int
    open: bool = True


class Book:
    def __init__(self) -> None:
        self.accounts: dict[str, AccountState] = {}
        self.keys: dict[str, KeyState] = {}

    def reserve(self, key: KeyState, amount: int, now_ms: int) -> Reservation:
        account = self.accounts[key.account_id]
        if account.available < amount:
            raise InsufficientFunds(max(0, account.available), amount, "account")
        key_left = key.limit_remaining(now_ms)
        if key_left is not None and key_left < amount:
            raise InsufficientFunds(key_left, amount, "key")
        for budget in key.budgets:
            budget_left = key.budget_remaining(budget, now_ms)
            if budget_left < amount:
                raise InsufficientFunds(budget_left, amount, "guardrail", budget)
        account.reserved += amount
        key.reserved += amount
        return Reservation(account, key, amount)

    def hold(self, reservation: Reservation, cost: int, now_ms: int) -> int:
        """The charge for ``cost``: never more than the reservation (the most the request could cost), never
        past zero nor past the key's limit, never below nothing (a cost is a debit: it cannot mint credit).
        The reservation shrinks to the charge and keeps it reserved until ``apply``, so nobody can spend that
        credit while the charge is being written, and the rest is free at once."""
        if not reservation.open:
            raise RuntimeError("reservation settled twice")
        account, key = reservation.account, reservation.key
        charge = min(cost, reservation.amount, account.available + reservation.amount)
        if key.limit is not None:
            left = key.leased if key.leased is not None else key.limit - key.limit_usage(now_ms)
            charge = min(charge, left - (key.reserved - reservation.amount))
        for budget in key.budgets:
            charge = min(charge, key.budget_held(budget, now_ms) - (key.reserved - reservation.amount))
        charge = max(0, charge)
        unused = reservation.amount - charge
        account.reserved -= unused
        key.reserved -= unused
        reservation.amount = charge
        return charge

    def apply(self, reservation: Reservation, charge: int, now_ms: int) -> None:
        """Release the reservation and charge exactly ``charge``: what the ledger row written for it says."""
        if not reservation.open:
            raise RuntimeError("reservation settled twice")
        reservation.open = False
        account, key = reservation.account, reservation.key
        account.reserved -= reservation.amount
        key.reserved -= reservation.amount
        account.usage += charge
        key.add_usage(charge, now_ms)
        if account.leased is not None:
            account.leased -= charge
        if key.leased is not None and key.limit is not None:
            key.leased -= charge
        for budget in key.budgets if key.leased is not None else ():
            lease = key.budget_leases.get(budget.guardrail_id)
            if lease is not None:
                lease[1] -= charge

    def settle(self, reservation: Reservation, cost: int, now_ms: int) -> int:
        """Hold and apply at once (no write in between: tests and releases); returns what was charged."""
        charge = self.hold(reservation, cost, now_ms)
        self.apply(reservation, charge, now_ms)
        return charge
