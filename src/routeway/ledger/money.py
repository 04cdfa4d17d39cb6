"""Money is counted in integer nano-USD (1e-9 USD): exact, portable across SQLite and PostgreSQL
(BIGINT holds ±9.2 billion USD), and fine enough for a single token of the cheapest model."""

from __future__ import annotations

from decimal import ROUND_HALF_UP, Decimal
from typing import Annotated

from msgspec import Meta

NANO = 1_000_000_000
MILLION = 1_000_000

# Bounds on every USD amount that comes in (credits, grants, key limits), checked at the wire. One amount is
# at most $1e9 (1e18 nano) and an account's credits, all time, at most $1e9 too: every SUM over one
# account's ledger rows then stays below 1e18, nine times inside SQLite's and PostgreSQL's int64 (9.2e18).
MAX_USD = 1_000_000_000
MAX_ACCOUNT_CREDITS_USD = 1_000_000_000
MAX_ACCOUNT_CREDITS_NANO = MAX_ACCOUNT_CREDITS_USD * NANO

# The wire types of those amounts (msgspec Structs use them, so the OpenAPI document shows the bounds too).
UsdAmount = Annotated[float, Meta(ge=0, le=MAX_USD, description=f"USD, from 0 to {MAX_USD:,}")]
SignedUsdAmount = Annotated[float, Meta(ge=-MAX_USD, le=MAX_USD,
                                        description=f"USD, from -{MAX_USD:,} to {MAX_USD:,}")]


def nano_per_million(usd_per_million: Decimal) -> int:
    return int((usd_per_million * NANO).to_integral_value(rounding=ROUND_HALF_UP))


def usd_to_nano(usd: float | int | str | Decimal) -> int:
    return int((Decimal(str(usd)) * NANO).to_integral_value(rounding=ROUND_HALF_UP))


def nano_to_usd(nano: int) -> float:
    return nano / NANO


def token_cost(tokens: int, nano_per_m: int) -> int:
    """Cost of ``tokens`` at a per-1M price, rounded half up to the nano-dollar."""
    return (tokens * nano_per_m + MILLION // 2) // MILLION


def worst_case_cost(tokens: int, nano_per_m: int) -> int:
    """Rounded up: a reservation must never be smaller than what it may have to cover."""
    return -(-tokens * nano_per_m // MILLION)


def per_token_string(nano_per_m: int) -> str:
    """OpenRouter's pricing strings are USD per single token as plain decimals ("0.00000013")."""
    value = Decimal(nano_per_m) / Decimal(NANO) / Decimal(MILLION)
    text = format(value.normalize(), "f")
    return text if text != "-0" else "0"
