"""The request path's speed-ups keep its behaviour (bench/NOTES.md step 27): the nesting check skipped for
bodies with few brackets still refuses every body nested too deep, and the server's young-generation GC
threshold is raised once it has started (and put back by this test)."""

from __future__ import annotations

import asyncio
import gc
import json
from pathlib import Path
from typing import Any

import pytest

from routeway.config import Settings
from routeway.errors import APIError
from routeway.services import GC_YOUNG_THRESHOLD, Services
from routeway.wire.chat import MAX_DEPTH, parse_chat_request


def body_nested(levels: int, filler: str = "hi") -> bytes:
    """A chat body whose deepest value sits ``levels`` arrays/objects deep, the body itself being level 1:
    {body [messages {message [content {part "extra": [ [ ... ] ] } ] } ] } — five levels before the extra's."""
    extra: Any = filler
    for _ in range(levels - 5):
        extra = [extra]
    part = {"type": "text", "text": "hi", "extra": extra}
    return json.dumps({"model": "m/x", "messages": [{"role": "user", "content": [part]}]}).encode()


def test_a_body_nested_exactly_to_the_limit_passes_and_one_level_more_is_400() -> None:
    at_limit = body_nested(MAX_DEPTH)
    assert at_limit.count(b"[") + at_limit.count(b"{") == MAX_DEPTH  # the walk is skipped for this one
    parse_chat_request(at_limit)
    with pytest.raises(APIError) as refused:
        parse_chat_request(body_nested(MAX_DEPTH + 1))
    assert refused.value.status == 400
    assert refused.value.metadata["param"] == "messages"


def test_brackets_inside_strings_only_cost_the_walk() -> None:
    """Brackets in text count towards the quick bound; the walk then finds the body shallow."""
    chat = parse_chat_request(body_nested(6, filler="[{" * MAX_DEPTH))
    assert chat.messages is not None


def test_started_services_raise_the_young_gc_threshold(tmp_path: Path) -> None:
    before = gc.get_threshold()
    services = Services.build(Settings(data_dir=tmp_path, admin_key="rw-admin-test"))

    async def start_and_stop() -> tuple[int, int, int]:
        await services.start()
        try:
            return gc.get_threshold()
        finally:
            await services.stop()

    try:
        threshold = asyncio.run(start_and_stop())
    finally:
        gc.set_threshold(*before)
        gc.unfreeze()
    assert threshold == (GC_YOUNG_THRESHOLD, *before[1:])
    assert GC_YOUNG_THRESHOLD > 700  # Python's default, which made in-flight requests trigger collections
