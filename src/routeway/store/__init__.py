"""Persistence behind one interface (``Store``). SQLite is the embedded default; SQL here stays portable
(``?`` placeholders, BIGINT milliseconds and nano-USD), SQLite-isms stay in ``sqlite.py``."""

from routeway.store.base import Op, Store, StoreUnwritable

__all__ = ["Op", "Store", "StoreUnwritable"]
