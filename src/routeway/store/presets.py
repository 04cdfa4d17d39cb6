"""Presets and their versions in the store. A preset is never edited in place: each save of its
configuration inserts a version with the next number, so an older version can still be pinned."""

from __future__ import annotations

from typing import NamedTuple

from routeway.store.base import Op, Store


class PresetRow(NamedTuple):
    id: str
    account_id: str
    slug: str
    name: str
    description: str | None
    status: str  # active, disabled, archived
    created_at: int
    updated_at: int


class PresetVersionRow(NamedTuple):
    id: str
    preset_id: str
    version: int
    config: str  # JSON: the request fields the preset sets (model, models, provider, parameters, plugins…)
    system_prompt: str | None
    created_at: int


_PRESET_COLUMNS = ", ".join(PresetRow._fields)
_VERSION_COLUMNS = ", ".join(PresetVersionRow._fields)


class PresetRepository:
    def __init__(self, store: Store) -> None:
        self.store = store

    def all_now(self) -> list[PresetRow]:
        return [PresetRow(*row) for row in self.store.fetch_now(f"SELECT {_PRESET_COLUMNS} FROM presets")]

    def versions_now(self) -> list[PresetVersionRow]:
        rows = self.store.fetch_now(f"SELECT {_VERSION_COLUMNS} FROM preset_versions ORDER BY preset_id, version")
        return [PresetVersionRow(*row) for row in rows]

    async def one(self, preset_id: str) -> tuple[PresetRow | None, list[PresetVersionRow]]:
        """The preset and its versions as stored now (another process changed it: ledger/follow.py)."""
        rows = await self.store.fetch(f"SELECT {_PRESET_COLUMNS} FROM presets WHERE id = ?", (preset_id,))
        versions = await self.store.fetch(f"SELECT {_VERSION_COLUMNS} FROM preset_versions WHERE preset_id = ?"
                                          " ORDER BY version", (preset_id,))
        return (PresetRow(*rows[0]) if rows else None), [PresetVersionRow(*v) for v in versions]

    @staticmethod
    def insert(row: PresetRow) -> Op:
        return (f"INSERT INTO presets ({_PRESET_COLUMNS}) VALUES ({', '.join('?' * len(PresetRow._fields))})",
                tuple(row))

    @staticmethod
    def update(preset_id: str, name: str, description: str | None, status: str, updated_at: int) -> Op:
        return ("UPDATE presets SET name = ?, description = ?, status = ?, updated_at = ? WHERE id = ?",
                (name, description, status, updated_at, preset_id))

    @staticmethod
    def insert_version(row: PresetVersionRow) -> Op:
        return (f"INSERT INTO preset_versions ({_VERSION_COLUMNS})"
                f" VALUES ({', '.join('?' * len(PresetVersionRow._fields))})", tuple(row))


