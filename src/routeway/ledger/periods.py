"""Limit reset windows: midnight UTC; weeks start on Monday; months on the 1st."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

RESETS = ("daily", "weekly", "monthly")


_DAY_MS = 86_400_000
_cache: tuple[int, dict[str, int]] = (-1, {})


def period_start_ms(reset: str, now_ms: int) -> int:
    """Cached per UTC day: every settlement asks for all three windows."""
    global _cache
    day = now_ms // _DAY_MS
    if _cache[0] != day:
        _cache = (day, {name: _compute(name, day * _DAY_MS) for name in RESETS})
    try:
        return _cache[1][reset]
    except KeyError:
        raise ValueError(f"unknown limit_reset {reset!r}") from None


def _compute(reset: str, now_ms: int) -> int:
    now = datetime.fromtimestamp(now_ms / 1000, tz=UTC)
    day = now.replace(hour=0, minute=0, second=0, microsecond=0)
    if reset == "daily":
        start = day
    elif reset == "weekly":
        start = day - timedelta(days=day.weekday())
    elif reset == "monthly":
        start = day.replace(day=1)
    else:
        raise ValueError(f"unknown limit_reset {reset!r}")
    return int(start.timestamp() * 1000)


def iso(ms: int | None) -> str | None:
    if ms is None:
        return None
    return datetime.fromtimestamp(ms / 1000, tz=UTC).isoformat().replace("+00:00", "Z")


def parse_iso_ms(text: str) -> int:
    value = datetime.fromisoformat(text.replace("Z", "+00:00"))
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    return int(value.timestamp() * 1000)


def period_end_ms(reset: str, now_ms: int) -> int:
    """When the window that holds ``now_ms`` ends (the next one starts)."""
    now = datetime.fromtimestamp(period_start_ms(reset, now_ms) / 1000, tz=UTC)
    if reset == "daily":
        end = now + timedelta(days=1)
    elif reset == "weekly":
        end = now + timedelta(days=7)
    else:
        end = (now.replace(day=28) + timedelta(days=4)).replace(day=1)
    return int(end.timestamp() * 1000)
