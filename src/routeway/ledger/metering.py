"""Reserve before the upstream call, settle after it: one generation record and at most one charge
per request, written together in one group commit, and applied to the book only once written."""

from __future__ import annotations

from dataclasses import dataclass, field
from operator import attrgetter
from typing import Any

import msgspec

from routeway.errors import APIError, store_unavailable
from routeway.ledger.accounts import now_ms
from routeway.ledger.book import Book, Budget, InsufficientFunds, KeyState, Reservation
from routeway.ledger.ids import new_id
from routeway.ledger.leases import Leases
from routeway.ledger.money import MILLION, nano_to_usd, token_cost
from routeway.ledger.pending import PendingSettlements
from routeway.store.base import Op, Store, StoreUnwritable
from routeway.store.generations import COLUMNS as GENERATION_COLUMNS, GenerationRepository
from routeway.store.ledger import LedgerEntry, LedgerRepository


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
    api: str = "chat"  # the inbound API it came in by: chat, messages, responses, completions, embeddings
    cache_hit: bool = False  # answered from the response cache (cache/): free, no upstream call
    cache_saved_nano: int = 0  # what the cached answer cost when it was made: the hit's saving
    # upstream prompt caching (not columns: native_tokens_cached keeps the claim): the billed counts, within
    # tokens_prompt, and their prices (None: the prompt price)
    tokens_cache_read: int = 0
    tokens_cache_write: int = 0
    cache_read_nano_per_m: int | None = None
    cache_write_nano_per_m: int | None = None

    def cost(self) -> int:
        """Prompt tokens read from or written into the upstream's prompt cache at the endpoint's cache
        prices, the rest at the prompt price, rounded once for the prompt (so never above the bound the
        reservation assumed: every part at the dearest price, rounded up) and once for the completion."""
        read = min(self.tokens_cache_read, self.tokens_prompt)
        written = min(self.tokens_cache_write, self.tokens_prompt - read)
        if not read and not written:
            return (token_cost(self.tokens_prompt, self.prompt_nano_per_m)
                    + token_cost(self.tokens_completion, self.completion_nano_per_m))
        plain = self.tokens_prompt - read - written
        read_price = self.prompt_nano_per_m if self.cache_read_nano_per_m is None else self.cache_read_nano_per_m
        write_price = self.prompt_nano_per_m if self.cache_write_nano_per_m is None else self.cache_write_nano_per_m
        prompt = (plain * self.prompt_nano_per_m + read * read_price + write_price * written + MILLION // 2) // MILLION
        return prompt + token_cost(self.tokens_completion, self.completion_nano_per_m)

    def insert_op(self) -> Op:
        values = _fields(self)  # every column but attempts, which is stored as JSON
        return GenerationRepository.insert((*values[:_ATTEMPTS], _encode(self.attempts).decode(), *values[_ATTEMPTS:]))


def budget_exceeded(budget: Budget, left: int, needed: int) -> APIError:
    """403, as OpenRouter answers a guardrail's budget: the policy and its rule named."""
    window = budget.reset or "lifetime"
    return APIError(
        403, f"Guardrail \"{budget.name}\" {window} budget of ${nano_to_usd(budget.limit):.6f} would be exceeded:"
             f" ${nano_to_usd(left):.6f} left, and this request may cost up to ${nano_to_usd(needed):.6f}.",
        metadata={"guardrail_id": budget.guardrail_id, "guardrail": budget.name, "rule": "limit_usd",
                  "reset_interval": window, "available_usd": nano_to_usd(left), "required_usd": nano_to_usd(needed)})


_encode = msgspec.json.Encoder().encode
_ATTEMPTS = GENERATION_COLUMNS.index("attempts")
_fields = attrgetter(*(name for name in GENERATION_COLUMNS if name != "attempts"))


class NeedsLease(Exception):
    """The reservation does not fit this process's leases: ``await Metering.cover`` and reserve again."""

    def __init__(self, key: KeyState, amount: int) -> None:
        super().__init__(amount)
        self.key = key
        self.amount = amount


class Metering:
    def __init__(self, store: Store, book: Book, leases: Leases | None = None) -> None:
        self.store = store
        self.book = book
        self.leases = leases  # None: this process owns the store alone and spends whole balances
        self.pending = PendingSettlements(store, book)

    def reserve(self, key: KeyState, amount: int, completion_nano_per_m: int, prompt_cost: int,
                covered: bool = False) -> Reservation:
        """``covered``: the leases were just grown for this request (``cover``), so a shortfall is final."""
        try:
            return self.book.reserve(key, amount, now_ms())
        except InsufficientFunds as short:
            if self.leases is not None and not covered:
                raise NeedsLease(key, amount) from None
            if short.budget is not None:  # a guardrail's budget: what this process holds and what nobody does
                left = short.available
                if self.leases is not None:
                    left += self.leases.unleased(self.leases.budget_subject(key, short.budget))
                raise budget_exceeded(short.budget, left, short.needed) from None
            left = short.available
            if self.leases is not None:  # what this process holds, and what no process holds yet
                left += self.leases.unleased(key.account_id if short.scope == "account" else key.hash)
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

    async def cover(self, need: NeedsLease) -> None:
        """Grow this process's leases for the request that did not fit them (lease mode only)."""
        if self.leases is None:
            return
        try:
            await self.leases.cover(need.key, need.amount)
        except StoreUnwritable as unwritable:
            raise store_unavailable(unwritable.problem) from None

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
            ops.append(LedgerRepository.insert(LedgerEntry(
                id=new_id("led"), account_id=record.account_id, key_hash=record.key_hash, kind="charge",
                amount_nano=-charged, generation_id=record.id, note=f"{record.model} via {record.provider_slug}",
                created_at=now)))
            if self.leases is not None:
                ops += self.leases.spend_ops(reservation.account, reservation.key, charged)
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
