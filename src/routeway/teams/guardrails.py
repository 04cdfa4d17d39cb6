"""Guardrails of each account, in this process's memory and rebuilt from the store at start-up; every
change is written first, then applied (as keys are, ledger/accounts.py). A guardrail enforces nothing
until it is assigned: to keys, or to the whole account (``account_default``, routeway's stand-in for a
workspace's default guardrail). Each key's ``budgets`` in the book follow its guardrails at once.

With the store shared (``serve --workers N``, replicas on one PostgreSQL) each process holds this copy:
every change is written with a row of the change log (``logged``), and the others read the guardrail back
(``reload``) when their follower sees it (ledger/follow.py), within a poll."""

from __future__ import annotations

import contextlib
from dataclasses import dataclass, field

import msgspec

from routeway.errors import store_unavailable
from routeway.ledger.accounts import now_ms
from routeway.ledger.book import Book, Budget, KeyState
from routeway.ledger.ids import new_id
from routeway.ledger.leases import Leases
from routeway.ledger.money import usd_to_nano
from routeway.store.base import Op, Store, StoreUnwritable
from routeway.store.changes import ChangeRepository
from routeway.store.guardrails import AssignmentRow, GuardrailRepository, GuardrailRow
from routeway.teams.policy import Guarded, Policy, Rules

_encode = msgspec.json.Encoder().encode
NO_GUARDRAILS = Policy()
_decode_rules = msgspec.json.Decoder(Rules).decode


@dataclass(slots=True)
class Guardrail:
    id: str
    account_id: str
    name: str
    rules: Rules
    account_default: bool
    created_at: int
    updated_at: int | None
    keys: dict[str, int] = field(default_factory=dict)  # key hash -> assigned at (ms)

    @property
    def budget(self) -> Budget | None:
        r = self.rules
        if r.limit_usd is None:
            return None
        reset = None if r.reset_interval in (None, "lifetime") else r.reset_interval
        return Budget(self.id, self.name, usd_to_nano(r.limit_usd), reset)

    def row(self) -> GuardrailRow:
        return GuardrailRow(self.id, self.account_id, self.name, _encode(self.rules).decode(), self.account_default,
                            False, self.created_at, self.updated_at)


class Guardrails:
    def __init__(self, store: Store, book: Book, leases: Leases | None = None) -> None:
        self.store = store
        self.book = book
        self.rows = GuardrailRepository(store)
        self.by_id: dict[str, Guardrail] = {}
        # Set when other processes share the store: each change goes to the change log too, and a key whose
        # budgets changed gives back its budget leases (leased under the old terms)
        self.leases = leases
        self.changed: set[str] = set()  # keys whose budgets changed since the last give-back

    def load(self) -> None:
        for row in self.rows.all_now():
            self.by_id[row.id] = _guardrail(row)
        for assignment in self.rows.assignments_now():
            guardrail = self.by_id.get(assignment.guardrail_id)
            if guardrail is not None:
                guardrail.keys[assignment.key_hash] = assignment.created_at
        for key in self.book.keys.values():
            self.refresh(key)

    async def reload(self, guardrail_id: str) -> None:
        """Another process changed this guardrail or its assignments: take the store's version of both."""
        row = await self.rows.one(guardrail_id)
        assignments = await self.rows.assignments_of(guardrail_id)
        old = self.by_id.pop(guardrail_id, None)
        if row is not None and not row.deleted:
            guardrail = self.by_id[guardrail_id] = _guardrail(row)
            guardrail.keys = {a.key_hash: a.created_at for a in assignments}
        touched = {g.account_id for g in (old, row) if g is not None}
        for account_id in touched:
            self._refresh_account(account_id)
        await self._give_back_changed()

    # ---- questions ----------------------------------------------------------------------------------
    def of_account(self, account_id: str) -> list[Guardrail]:
        return sorted((g for g in self.by_id.values() if g.account_id == account_id), key=lambda g: g.created_at)

    def get(self, account_id: str, guardrail_id: str) -> Guardrail | None:
        guardrail = self.by_id.get(guardrail_id)
        return guardrail if guardrail is not None and guardrail.account_id == account_id else None

    def of_key(self, key: KeyState) -> list[Guardrail]:
        """The account's default guardrails first, then the key's own, in enforcement order."""
        mine = self.of_account(key.account_id)
        own = [g for g in mine if not g.account_default and key.hash in g.keys]
        return [g for g in mine if g.account_default] + own

    def policy(self, key: KeyState) -> Policy:
        if not self.by_id:  # no guardrail anywhere: nothing to look through on the request path
            return NO_GUARDRAILS
        return Policy(tuple(Guarded(g.id, g.name, g.rules) for g in self.of_key(key)))

    # ---- changes ------------------------------------------------------------------------------------
    async def create(self, account_id: str, name: str, rules: Rules, account_default: bool) -> Guardrail:
        now = now_ms()
        guardrail = Guardrail(new_id("grd"), account_id, name, rules, account_default, now, now)
        await self._write([GuardrailRepository.insert(guardrail.row())], guardrail.id)
        self.by_id[guardrail.id] = guardrail
        self._refresh_account(account_id)
        await self._give_back_changed()
        return guardrail

    async def update(self, guardrail: Guardrail, name: str, rules: Rules, account_default: bool) -> Guardrail:
        now = now_ms()
        await self._write([GuardrailRepository.update(guardrail.id, name, _encode(rules).decode(), account_default,
                                                      now)], guardrail.id)
        guardrail.name, guardrail.rules, guardrail.account_default, guardrail.updated_at = (
            name, rules, account_default, now)
        self._refresh_account(guardrail.account_id)
        await self._give_back_changed()
        return guardrail

    async def delete(self, guardrail: Guardrail) -> None:
        await self._write(GuardrailRepository.delete(guardrail.id, now_ms()), guardrail.id)
        del self.by_id[guardrail.id]
        self._refresh_account(guardrail.account_id)
        await self._give_back_changed()

    async def assign(self, guardrail: Guardrail, keys: list[KeyState]) -> int:
        now = now_ms()
        new = [k for k in keys if k.hash not in guardrail.keys]
        if new:
            await self._write([GuardrailRepository.assign(AssignmentRow(guardrail.id, k.hash, now)) for k in new],
                              guardrail.id)
        for key in new:
            guardrail.keys[key.hash] = now
            self.refresh(key)
        await self._give_back_changed()
        return len(new)

    async def unassign(self, guardrail: Guardrail, keys: list[KeyState]) -> int:
        gone = [k for k in keys if k.hash in guardrail.keys]
        if gone:
            await self._write([GuardrailRepository.unassign(guardrail.id, k.hash) for k in gone], guardrail.id)
        for key in gone:
            del guardrail.keys[key.hash]
            self.refresh(key)
        await self._give_back_changed()
        return len(gone)

    async def _give_back_changed(self) -> None:
        changed, self.changed = self.changed, set()
        leases = self.leases
        for key in (self.book.keys.get(key_hash) for key_hash in changed):
            if key is not None and leases is not None:
                with contextlib.suppress(StoreUnwritable):  # the leases expire or are used up under the old terms
                    await leases.give_back_budgets(key)

    async def _write(self, ops: list[Op], guardrail_id: str) -> None:
        if self.leases is not None:
            ops = [*ops, ChangeRepository.append("guardrail", guardrail_id, now_ms())]
        try:
            await self.store.write(ops)
        except StoreUnwritable as exc:
            raise store_unavailable(exc.problem) from None

    def _refresh_account(self, account_id: str) -> None:
        for key in self.book.keys.values():
            if key.account_id == account_id:
                self.refresh(key)

    def refresh(self, key: KeyState) -> None:
        """The key's budgets as its guardrails say now (after a change, or for a key new to this process)."""
        budgets = tuple(b for g in self.of_key(key) if (b := g.budget) is not None)
        if budgets != key.budgets and key.budget_leases:
            self.changed.add(key.hash)
        key.budgets = budgets


def _guardrail(row: GuardrailRow) -> Guardrail:
    return Guardrail(row.id, row.account_id, row.name, _decode_rules(row.policy), row.account_default,
                     row.created_at, row.updated_at)
