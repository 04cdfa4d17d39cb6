"""Reserve before the upstream call, settle after it: one generation record and at most one charge
per request, written together in one group commit, and applied to the book only once written."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import msgspec

from routeway.errors import APIError
from routeway.ledger.accounts import now_ms
from routeway.ledger.ids import new_id
from routeway.ledger.book import Book, InsufficientFunds, KeyState, Reservation
from routeway.ledger.money import nano_to_usd, token_cost
from routeway.ledger.pending import PendingSettlements
from routeway.store.base import Op, Store, StoreUnwritable


@dataclass(slots=True)
class GenerationRecord:
    id: str
    account_id: str
    key_hash: str
    model: str
    provider_name: str
    provider_slug: str
    upstream_model: str
    prompt_nano_per_m: int
    completion_nano_per_m: int
    streamed: bool
    created_at: int
    http_referer: str | None = None
    app_title: str | None = None
    upstream_id: str | None = None
    tokens_prompt: int = 0
    tokens_completion: int = 0
    native_tokens_prompt: int | None = None
    native_tokens_completion: int | None = None
    native_tokens_reasoning: int | None = None
    native_tokens_cached: int | None = None
    usage_estimated: bool = False
    usage_capped: bool = False  # the upstream claimed more than the request could produce: tokens cut to the bound
    usage_rejected: str | None = None  # why the upstream's usage was discarded (routeway estimated instead)
    total_cost_nano: int = 0
    latency_ms: int | None = None
    generation_time_ms: int | None = None
    finish_reason: str | None = None
    native_finish_reason: str | None = None
    cancelled: bool = False
    status: int = 200
    error: str | None = None
    attempts: list[dict[str, Any]] = field(default_factory=list)

    def cost(self) -> int:
        return (token_cost(self.tokens_prompt, self.prompt_nano_per_m)
                + token_cost(self.tokens_completion, self.completion_nano_per_m))

    def insert_op(self) -> Op:
        return (_INSERT, (
            self.id, self.account_id, self.key_hash, self.model, self.provider_name, self.provider_slug,
            self.upstream_model, self.upstream_id, self.http_referer, self.app_title, self.tokens_prompt,
            self.tokens_completion, self.native_tokens_prompt, self.native_tokens_completion,
            self.native_tokens_reasoning, self.native_tokens_cached, int(self.usage_estimated), self.total_cost_nano,
            self.latency_ms, self.generation_time_ms, self.finish_reason, self.native_finish_reason,
            int(self.streamed), int(self.cancelled), self.status, self.error, _encode(self.attempts).decode(), self.created_at,
            int(self.usage_capped), self.usage_rejected,
        ))


_encode = msgspec.json.Encoder().encode

_COLUMNS = ("id", "account_id", "key_hash", "model", "provider_name", "provider_slug", "upstream_model", "upstream_id",
            "http_referer", "app_title", "tokens_prompt", "tokens_completion", "native_tokens_prompt",
            "native_tokens_completion", "native_tokens_reasoning", "native_tokens_cached", "usage_estimated",
            "total_cost_nano", "latency_ms", "generation_time_ms", "finish_reason", "native_finish_reason", "streamed",
            "cancelled", "status", "error", "attempts", "created_at", "usage_capped", "usage_rejected")
_INSERT = f"INSERT INTO generations ({', '.join(_COLUMNS)}) VALUES ({', '.join('?' * len(_COLUMNS))})"


class Metering:
    def __init__(self, store: Store, book: Book) -> None:
        self.store = store
        self.book = book
        self.pending = PendingSettlements(store, book)

    def reserve(self, key: KeyState, amount: int, completion_nano_per_m: int, prompt_cost: int) -> Reservation:
        try:
            return self.book.reserve(key, amount, now_ms())
        except InsufficientFunds as short:
            left = short.available
            tokens = max(0, (left - prompt_cost) * 1_000_000 // completion_nano_per_m) if completion_nano_per_m else 0
            whose = "Your account's credits" if short.scope == "account" else "This key's limit"
            raise APIError(
                402,
                f"This request requires more credits, or fewer max_tokens. {whose} allow ${nano_to_usd(left):.6f} more;"
                f" this request may cost up to ${nano_to_usd(short.needed):.6f}. You can afford about {tokens:,}"
                f" output tokens: lower max_tokens, or add credits.",
                metadata={"available_usd": nano_to_usd(left), "required_usd": nano_to_usd(short.needed),
                          "affordable_completion_tokens": tokens, "limited_by": short.scope},
            ) from None

    def release(self, reservation: Reservation) -> None:
        """The request never reached an upstream: nothing is recorded or charged."""
        self.book.settle(reservation, 0, now_ms())

    async def finish(self, reservation: Reservation, record: GenerationRecord) -> bool:
        """Write the record and its charge, then apply the charge to the book. Returns False when the store
        cannot write: the charge stays held (nobody can spend it) and is written and applied later."""
        now = now_ms()
        charged = self.book.hold(reservation, record.cost(), now)
        record.total_cost_nano = charged
        ops = [record.insert_op()]
        if charged:
            ops.append(("INSERT INTO ledger (id, account_id, key_hash, kind, amount_nano, generation_id, note,"
                        " created_at) VALUES (?, ?, ?, 'charge', ?, ?, ?, ?)",
                        (new_id("led"), record.account_id, record.key_hash, -charged, record.id,
                         f"{record.model} via {record.provider_slug}", now)))
        try:
            await self.store.write(ops)
        except StoreUnwritable:
            self.pending.add(reservation, charged, ops, now)
            return False
        except Exception:
            self.book.apply(reservation, 0, now)  # nothing was written, so nothing is charged
            raise
        self.book.apply(reservation, charged, now)
        return True
