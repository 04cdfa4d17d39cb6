"""Guardrails and their key assignments in the store: the rows the policies are rebuilt from at start-up,
and the writes that change them (ops for ``store.write``). A guardrail's rules are one JSON document
(``policy``): its fields are OpenRouter's and grow without a migration."""

from __future__ import annotations

from typing import Any, NamedTuple

from routeway.store.base import Op, Store


class GuardrailRow(NamedTuple):
    id: str
    account_id: str
    name: str
    policy: str  # JSON: limit_usd, reset_interval, allowed_models, ignored_models, allowed_providers, …
    account_default: bool  # applies to every key of the account, as a workspace's default guardrail does
    deleted: bool
    created_at: int
    updated_at: int | None


class AssignmentRow(NamedTuple):
    guardrail_id: str
    key_hash: str
    created_at: int


_COLUMNS = ", ".join(GuardrailRow._fields)


class GuardrailRepository:
    def __init__(self, store: Store) -> None:
        self.store = store

    def all_now(self) -> list[GuardrailRow]:
        rows = self.store.fetch_now(f"SELECT {_COLUMNS} FROM guardrails WHERE deleted = 0")
        return [_row(row) for row in rows]

    def assignments_now(self) -> list[AssignmentRow]:
        rows = self.store.fetch_now("SELECT guardrail_id, key_hash, created_at FROM guardrail_keys")
        return [AssignmentRow(*row) for row in rows]

    async def one(self, guardrail_id: str) -> GuardrailRow | None:
        """The guardrail as stored now, deleted or not (another process changed it: ledger/follow.py)."""
        rows = await self.store.fetch(f"SELECT {_COLUMNS} FROM guardrails WHERE id = ?", (guardrail_id,))
        return _row(rows[0]) if rows else None

    async def assignments_of(self, guardrail_id: str) -> list[AssignmentRow]:
        rows = await self.store.fetch("SELECT guardrail_id, key_hash, created_at FROM guardrail_keys"
                                      " WHERE guardrail_id = ?", (guardrail_id,))
        return [AssignmentRow(*row) for row in rows]

    @staticmethod
    def insert(row: GuardrailRow) -> Op:
        return (f"INSERT INTO guardrails ({_COLUMNS}) VALUES ({', '.join('?' * len(GuardrailRow._fields))})",
                tuple(int(v) if isinstance(v, bool) else v for v in row))

    @staticmethod
    def update(guardrail_id: str, name: str, policy: str, account_default: bool, updated_at: int) -> Op:
        return ("UPDATE guardrails SET name = ?, policy = ?, account_default = ?, updated_at = ? WHERE id = ?",
                (name, policy, int(account_default), updated_at, guardrail_id))

    @staticmethod
    def delete(guardrail_id: str, updated_at: int) -> list[Op]:
        return [("DELETE FROM guardrail_keys WHERE guardrail_id = ?", (guardrail_id,)),
                ("UPDATE guardrails SET deleted = 1, updated_at = ? WHERE id = ?", (updated_at, guardrail_id))]

    @staticmethod
    def assign(row: AssignmentRow) -> Op:
        # a key already assigned keeps its row: assigning twice is not an error (bulk assignment)
        return ("INSERT INTO guardrail_keys (guardrail_id, key_hash, created_at) VALUES (?, ?, ?)"
                " ON CONFLICT (guardrail_id, key_hash) DO NOTHING", tuple(row))

    @staticmethod
    def unassign(guardrail_id: str, key_hash: str) -> Op:
        return ("DELETE FROM guardrail_keys WHERE guardrail_id = ? AND key_hash = ?", (guardrail_id, key_hash))


def _row(row: tuple[Any, ...]) -> GuardrailRow:
    values = list(row)
    values[4], values[5] = bool(values[4]), bool(values[5])
    return GuardrailRow(*values)
