"""How /messages and /responses answers are judged complete and rewritten for a replay (api/answer_cache.py)."""

from __future__ import annotations

import json

from routeway.api.answer_cache import complete, rewrite
from routeway.api.cache_hits import completion_text

OLD, NEW = "gen-1-aaaa0000000001", "gen-2-bbbb0000000002"


def _event(name: str, payload: dict[str, object]) -> str:
    return f"event: {name}\ndata: {json.dumps(payload, separators=(',', ':'))}\n\n"


MESSAGES_STREAM = (
    _event("message_start", {"type": "message_start", "message": {"id": OLD, "usage": {"input_tokens": 9}}})
    + _event("content_block_delta", {"type": "content_block_delta", "delta": {"type": "text_delta", "text": "hi"}})
    + _event("message_delta", {"type": "message_delta", "delta": {"stop_reason": "end_turn"},
                               "usage": {"input_tokens": 9, "output_tokens": 3}})
    + _event("message_stop", {"type": "message_stop"}))


def test_a_messages_stream_keeps_its_bytes_but_the_id_and_final_usage() -> None:
    replay = rewrite("messages", True, MESSAGES_STREAM, OLD, NEW)
    assert replay is not None
    old, new = MESSAGES_STREAM.split("\n\n"), replay.decode().split("\n\n")
    assert new[0] == old[0].replace(OLD, NEW) and new[1] == old[1] and new[3:] == old[3:]
    assert json.loads(new[2].split("data: ", 1)[1])["usage"]["output_tokens"] == 0
    assert json.loads(new[2].split("data: ", 1)[1])["delta"] == {"stop_reason": "end_turn"}
    assert completion_text("messages", True, MESSAGES_STREAM) == "hi"


def test_only_complete_answers_are_kept() -> None:
    assert complete("messages", True, MESSAGES_STREAM)
    failed = MESSAGES_STREAM.split("event: message_delta")[0] + _event("error", {"type": "error"})
    assert not complete("messages", True, failed)
    assert complete("responses", False, json.dumps({"status": "completed"}))
    assert not complete("responses", False, json.dumps({"status": "incomplete"}))
    assert not complete("responses", True, _event("response.failed", {"type": "response.failed"}))


def test_responses_item_ids_follow_the_new_generation_id_and_damage_is_a_miss() -> None:
    whole = json.dumps({"id": OLD, "output": [{"type": "message", "id": "msg_aaaa0000000001_0",
                                                "content": [{"type": "output_text", "text": "ok"}]}],
                        "usage": {"total_tokens": 7, "cost": 0.1}})
    replay = rewrite("responses", False, whole, OLD, NEW)
    assert replay is not None
    payload = json.loads(replay)
    assert payload["id"] == NEW and payload["output"][0]["id"] == "msg_bbbb0000000002_0"
    assert payload["usage"]["total_tokens"] == 0 and payload["usage"]["cost"] == 0
    assert rewrite("responses", False, whole[:-3], OLD, NEW) is None
    assert rewrite("messages", True, "event: message_start\ndata: {}\n\n", OLD, NEW) is None
    assert completion_text("responses", False, whole) == "ok"
