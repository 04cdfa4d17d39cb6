"""Copying an embedded install (SQLite) into another store (PostgreSQL), table by table in key order, and
checking afterwards that every account's balance and every key's charges agree between the two."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from routeway.store.base import Op, Store
from routeway.store.ledger import LedgerRepository
from routeway.store.schema import describe_sqlite

BATCH_ROWS = 1000  # rows per read and per group commit: bounded memory whatever the install's size


class BlockingStore(Store, Protocol):
    """Both stores: the copy runs from the CLI, outside any event loop."""

    def write_now(self, ops: Sequence[Op]) -> None: ...


@dataclass(frozen=True, slots=True)
class Table:
    name: str
    key: tuple[str, ...]  # the primary key: the copy walks the table in its order
    columns: tuple[str, ...]


def tables_of(source: BlockingStore) -> list[Table]:
    """Every table of the SQLite store's schema (whatever later migrations add), a table after the ones
    its foreign keys point at."""
    described = describe_sqlite(source.fetch_now)
    parents = {name: {row[0] for row in source.fetch_now('SELECT "table" FROM pragma_foreign_key_list(?)', (name,))}
               - {name} for name in described["tables"]}
    ordered: list[str] = []
    while len(ordered) < len(parents):
        ready = sorted(name for name, needs in parents.items() if name not in ordered and needs <= set(ordered))
        if not ready:
            raise ValueError(f"foreign keys in a cycle among {sorted(set(parents) - set(ordered))}")
        ordered.extend(ready)
    return [Table(name, described["primary_keys"][name] or tuple(described["tables"][name]),
                  tuple(described["tables"][name])) for name in ordered]


def row_counts(store: BlockingStore, tables: Sequence[Table]) -> dict[str, int]:
    return {t.name: int(store.fetch_now(f"SELECT COUNT(*) FROM {t.name}")[0][0]) for t in tables}


def copy_table(source: BlockingStore, target: BlockingStore, table: Table, skip_existing: bool,
               progress: Callable[[int], None] = lambda rows: None) -> int:
    """Copy every row of ``table``; ``skip_existing``: rows whose key the target has already are left as
    they are (finishing an interrupted copy). Returns the rows read."""
    columns, keys = ", ".join(table.columns), ", ".join(table.key)
    insert = (f"INSERT INTO {table.name} ({columns}) VALUES ({', '.join('?' * len(table.columns))})"
              + (" ON CONFLICT DO NOTHING" if skip_existing else ""))
    key_at = [table.columns.index(k) for k in table.key]
    after: tuple[Any, ...] | None = None
    copied = 0
    while True:
        where = "" if after is None else f"WHERE ({keys}) > ({', '.join('?' * len(after))}) "
        rows = source.fetch_now(f"SELECT {columns} FROM {table.name} {where}ORDER BY {keys} LIMIT ?",
                                (*(after or ()), BATCH_ROWS))
        if not rows:
            return copied
        target.write_now([(insert, row) for row in rows])
        after = tuple(rows[-1][i] for i in key_at)
        copied += len(rows)
        progress(len(rows))


def disagreements(source: BlockingStore, target: BlockingStore) -> list[str]:
    """Every account whose balance, and every key whose charges, differ between the two stores (empty: they agree).
    The target may hold more accounts than the source; those are not compared."""
    problems: list[str] = []
    theirs = LedgerRepository(target).balances_now()
    for account, (credits, usage) in LedgerRepository(source).balances_now().items():
        if theirs.get(account) != (credits, usage):
            problems.append(f"account {account}: credits/usage {credits}/{usage} nano-USD in SQLite,"
                            f" {theirs.get(account)} in the target")
    their_keys = LedgerRepository(target).key_charges_now([])
    for key, charges in LedgerRepository(source).key_charges_now([]).items():
        if their_keys.get(key) != charges:
            problems.append(f"key {key[:16]}…: charged {charges.total} nano-USD in SQLite,"
                            f" {their_keys[key].total if key in their_keys else 'nothing'} in the target")
    return problems
