"""What a store's schema is, read from the database's own catalog, in one shape for both backends: so a
test (and an operator) can check that SQLite's and PostgreSQL's stay equivalent after every migration."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

Fetch = Callable[[str, Sequence[Any]], list[tuple[Any, ...]]]

# Type families: the migrations name SQLite's types; PostgreSQL gets their 64-bit equivalents (postgres.py)
_FAMILIES = {"integer": "integer", "bigint": "integer", "smallint": "integer", "text": "text",
             "character varying": "text", "real": "real", "double precision": "real"}


def _family(declared: str) -> str:
    return _FAMILIES.get(declared.lower(), declared.lower())


def describe_sqlite(fetch: Fetch) -> dict[str, Any]:
    """{"tables": {table: {column: (family, not null)}}, "primary_keys": {table: columns},
    "indexes": {name: (table, columns, unique)}}; the store's own bookkeeping is left out."""
    tables: dict[str, dict[str, tuple[str, bool]]] = {}
    primary_keys: dict[str, tuple[str, ...]] = {}
    indexes: dict[str, tuple[str, tuple[str, ...], bool]] = {}
    names = [r[0] for r in fetch("SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%'"
                                 " AND name <> 'schema_migrations' ORDER BY name", ())]
    for table in names:
        columns = fetch("SELECT name, type, \"notnull\", pk FROM pragma_table_info(?)", (table,))
        tables[table] = {name: (_family(kind), bool(not_null) or pk > 0) for name, kind, not_null, pk in columns}
        primary_keys[table] = tuple(name for name, _, _, pk in sorted(columns, key=lambda c: c[3]) if pk > 0)
        for index, unique, origin in [r[1:4] for r in fetch("SELECT * FROM pragma_index_list(?)", (table,))]:
            if origin != "c":  # "pk"/"u": made for a constraint, compared as primary_keys
                continue
            cols = tuple(r[0] for r in fetch("SELECT name FROM pragma_index_info(?) ORDER BY seqno", (index,)))
            indexes[index] = (table, cols, bool(unique))
    return {"tables": tables, "primary_keys": primary_keys, "indexes": indexes}


def describe_postgres(fetch: Fetch) -> dict[str, Any]:
    """The same shape as ``describe_sqlite``, for the tables of the connection's current schema."""
    tables: dict[str, dict[str, tuple[str, bool]]] = {}
    for table, column, kind, nullable in fetch(
            "SELECT table_name, column_name, data_type, is_nullable FROM information_schema.columns"
            " WHERE table_schema = current_schema() AND table_name <> 'schema_migrations'"
            " ORDER BY table_name, ordinal_position", ()):
        tables.setdefault(table, {})[column] = (_family(kind), nullable == "NO")
    primary_keys: dict[str, tuple[str, ...]] = {}
    indexes: dict[str, tuple[str, tuple[str, ...], bool]] = {}
    for table, index, unique, primary, columns in fetch(
            "SELECT t.relname, i.relname, x.indisunique, x.indisprimary,"
            " ARRAY(SELECT a.attname FROM unnest(x.indkey) WITH ORDINALITY AS k(attnum, n)"
            "       JOIN pg_attribute a ON a.attrelid = t.oid AND a.attnum = k.attnum ORDER BY k.n)"
            " FROM pg_index x JOIN pg_class t ON t.oid = x.indrelid JOIN pg_class i ON i.oid = x.indexrelid"
            " WHERE t.relnamespace = current_schema()::regnamespace AND t.relname <> 'schema_migrations'", ()):
        if primary:
            primary_keys[table] = tuple(columns)
        else:
            indexes[index] = (table, tuple(columns), bool(unique))
    for table in tables:
        primary_keys.setdefault(table, ())
    return {"tables": tables, "primary_keys": primary_keys, "indexes": indexes}
