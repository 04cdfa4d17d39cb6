"""What the response cache keeps of one answer, and the recording that collects it as it is sent."""

from __future__ import annotations

import msgspec

DEFAULT_MAX_ENTRY_BYTES = 1024 * 1024  # an answer whose body is larger is not cached


class CachedAnswer(msgspec.Struct, frozen=True):
    source_id: str  # the generation that made the answer (X-OpenRouter-Cache-Source-Id)
    created_at: int  # ms since the epoch
    ttl_seconds: int
    stream: bool
    model: str
    provider_name: str
    provider_slug: str
    upstream_model: str
    finish_reason: str | None
    native_finish_reason: str | None
    cost_nano: int  # what the answer cost when it was made: each hit saves this much
    body: str  # a whole answer: its JSON; a stream: its content events as sent (SSE), without the usage chunk

    def age_seconds(self, now_ms: int) -> int:
        return max(0, (now_ms - self.created_at) // 1000)

    def left_seconds(self, now_ms: int) -> int:
        return max(0, self.ttl_seconds - self.age_seconds(now_ms))


_encoder = msgspec.json.Encoder()
_decoder = msgspec.json.Decoder(CachedAnswer)


def encode(entry: CachedAnswer) -> str:
    return _encoder.encode(entry).decode()


def decode(text: str | bytes) -> CachedAnswer | None:
    """None for an entry this version cannot read (written by another version, or damaged): a miss."""
    try:
        return _decoder.decode(text)
    except (msgspec.DecodeError, msgspec.ValidationError):
        return None


class AnswerRecording:
    """The bytes of an answer as the renderer sends them, up to a limit: past it nothing is kept."""

    __slots__ = ("limit", "parts", "size", "too_big")

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.parts: list[bytes] = []
        self.size = 0
        self.too_big = False

    def add(self, part: bytes) -> None:
        if self.too_big:
            return
        self.size += len(part)
        if self.size > self.limit:
            self.too_big = True
            self.parts.clear()
            return
        self.parts.append(part)

    def text(self) -> str | None:
        return None if self.too_big else b"".join(self.parts).decode()
