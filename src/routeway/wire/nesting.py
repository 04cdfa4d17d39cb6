"""A bound on how deeply a request's JSON may nest.

msgspec decodes recursively and raises RecursionError past the interpreter's limit; a body just under
that limit decodes but breaks whatever walks it next (the upstream encode, JSON Schema validation) at a
deeper stack. So nesting is bounded well below both: a 400 naming the limit, never a 500.
"""

from __future__ import annotations

from typing import Any

from msgspec import Struct

from routeway.errors import APIError

MAX_DEPTH = 64  # JSON Schema validation takes several frames per level: 64 levels stay far from 1,000


def too_deep() -> APIError:
    return APIError(400, f"Invalid request: JSON nested deeper than {MAX_DEPTH} levels")


def check_depth(raw: bytes, value: Any) -> None:
    """Raise a 400 when ``value`` (decoded from ``raw``) nests deeper than MAX_DEPTH.
    A body with fewer opening brackets than that cannot, so most bodies cost two ``bytes.count``."""
    if raw.count(b"[") + raw.count(b"{") <= MAX_DEPTH:
        return
    stack: list[tuple[Any, int]] = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, dict):
            children: Any = item.values()
        elif isinstance(item, list):
            children = item
        elif isinstance(item, Struct):
            children = (getattr(item, name) for name in item.__struct_fields__)
        else:
            continue
        if depth > MAX_DEPTH:
            raise too_deep()
        stack.extend((child, depth + 1) for child in children)
