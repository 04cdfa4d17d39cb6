"""Persistence behind one interface (``Store``, ``base.py``). SQLite is the embedded default
(``sqlite.py``, ``writer.py``: SQLite-isms stay there); PostgreSQL is ``postgres.py`` (its placeholder and
type translation stays there), sharing the writer's group commits. All SQL text lives here: in the repositories
(``accounts.py``, ``ledger.py``, ``generations.py``, ``endpoint_minutes.py``, ``usage.py``) and the
schema (``migrations.py``), portable between backends (``?`` placeholders, BIGINT ms and nano-USD)."""

from routeway.store.base import Op, Store, StoreUnwritable

__all__ = ["Op", "Store", "StoreUnwritable"]
