"""Persistence behind one interface (``Store``, ``base.py``). SQLite is the embedded default (``sqlite.py``,
``writer.py``). All SQL text lives in the repositories here (``accounts.py``, ``ledger.py``,
``generations.py``, ``endpoint_minutes.py``, ``usage.py``) and the schema in ``migrations.py``, portable between backends (``?`` placeholders,
BIGINT milliseconds and nano-USD); SQLite-isms stay in ``sqlite.py`` and ``writer.py``."""

from routeway.store.base import Op, Store, StoreUnwritable

__all__ = ["Op", "Store", "StoreUnwritable"]
