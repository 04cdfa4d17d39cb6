"""Money arithmetic, reset windows and the book's reserve/settle rules, without a server."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal

import pytest

from routeway.ledger.book import AccountState, Book, InsufficientFunds, KeyState
from routeway.ledger.money import nano_per_million, per_token_string, token_cost, usd_to_nano, worst_case_cost
from routeway.ledger.periods import period_start_ms


def ms(text: str) -> int:
    return int(datetime.fromisoformat(text).replace(tzinfo=UTC).timestamp() * 1000)


def test_prices_are_exact_integers() -> None:
    assert nano_per_million(Decimal("0.13")) == 130_000_000
    assert per_token_string(nano_per_million(Decimal("0.13"))) == "0.00000013"
    assert per_token_string(nano_per_million(Decimal("0.40"))) == "0.0000004"
    assert per_token_string(nano_per_million(Decimal("15"))) == "0.000015"
    assert per_token_string(0) == "0"
    assert usd_to_nano(0.1) == 100_000_000 and usd_to_nano("1e-9") == 1


def test_costs_round_half_up_and_reservations_round_up() -> None:
    price = nano_per_million(Decimal("0.0001"))  # 0.1 nano-USD per token
    assert token_cost(1, price) == 0 and worst_case_cost(1, price) == 1
    assert token_cost(4, price) == 0 and token_cost(5, price) == 1  # 0.5 rounds up
    assert token_cost(1_000_000, price) == worst_case_cost(1_000_000, price) == 100_000
    assert token_cost(1, nano_per_million(Decimal("0.0375"))) == 38  # 37.5


def test_reset_windows_are_utc_midnight_monday_and_first_of_month() -> None:
    now = ms("2026-11-26T15:30:00")  # a Thursday
    assert period_start_ms("daily", now) == ms("2026-11-26T00:00:00")
    assert period_start_ms("weekly", now) == ms("2026-11-23T00:00:00")
    assert period_start_ms("monthly", now) == ms("2026-11-01T00:00:00")
    with pytest.raises(ValueError):
        period_start_ms("hourly", now)


def make_book(credits: int, limit: int | None = None, reset: str | None = None) -> tuple[Book, KeyState]:
    book = Book()
    book.accounts["a"] = AccountState("a", "a", 0, credits=credits)
    key = KeyState("h", "a", "k", "sk-…", False, 0, limit=limit, limit_reset=reset)
    book.keys["h"] = key
    return book, key


def test_reservations_cannot_exceed_the_balance() -> None:
    book, key = make_book(credits=100)
    first = book.reserve(key, 60, 0)
    with pytest.raises(InsufficientFunds) as short:
        book.reserve(key, 60, 0)
    assert short.value.available == 40 and short.value.scope == "account"
    assert book.settle(first, 10, 0) == 10
    assert book.accounts["a"].available == 90 and book.accounts["a"].reserved == 0
    with pytest.raises(RuntimeError):
        book.settle(first, 10, 0)


def test_settlement_never_charges_past_the_reservation_nor_credits() -> None:
    book, key = make_book(credits=100)
    reservation = book.reserve(key, 50, 0)
    assert book.settle(reservation, 500, 0) == 50  # an upstream that overran max_tokens: the reservation at most
    assert book.accounts["a"].available == 50
    assert book.settle(book.reserve(key, 20, 0), -1_000, 0) == 0  # a negative cost never mints credit
    assert book.accounts["a"].available == 50 and key.usage == 50


def test_key_limits_apply_per_window_and_reset() -> None:
    day1, day2 = ms("2026-11-26T10:00:00"), ms("2026-11-27T10:00:00")
    book, key = make_book(credits=1_000, limit=100, reset="daily")
    book.settle(book.reserve(key, 80, day1), 80, day1)
    with pytest.raises(InsufficientFunds) as short:
        book.reserve(key, 30, day1)
    assert short.value.scope == "key" and short.value.available == 20
    assert key.limit_remaining(day2) == 100  # a new day
    book.settle(book.reserve(key, 30, day2), 30, day2)
    assert key.usage == 110 and key.usage_in("daily", day2) == 30 and key.usage_in("monthly", day2) == 110


def test_a_held_charge_cannot_be_spent_and_is_applied_exactly() -> None:
    book, key = make_book(credits=100)
    reservation = book.reserve(key, 50, 0)
    charge = book.hold(reservation, 70, 0)  # more than the reservation: the reservation bounds the charge
    assert charge == 50
    reservation2 = book.reserve(key, 40, 0)
    charge2 = book.hold(reservation2, 25, 0)  # less: the unused 15 is free at once, the 25 stays held
    assert charge2 == 25 and book.accounts["a"].available == 25 and book.accounts["a"].usage == 0
    with pytest.raises(InsufficientFunds):
        book.reserve(key, 26, 0)  # the held 75 is not available to anyone else meanwhile
    book.apply(reservation, charge, 0)
    book.apply(reservation2, charge2, 0)
    assert book.accounts["a"].usage == 75 and book.accounts["a"].reserved == 0 and key.reserved == 0


def test_a_late_settlement_counts_in_its_own_window_and_keeps_the_newer_one() -> None:
    day1, day2 = ms("2026-11-26T10:00:00"), ms("2026-11-27T10:00:00")
    book, key = make_book(credits=1_000, limit=100, reset="daily")
    late = book.reserve(key, 40, day1)
    book.settle(book.reserve(key, 30, day2), 30, day2)
    book.settle(late, 40, day1)  # charged on day 1, written (and applied) only on day 2
    assert key.usage_in("daily", day2) == 30 and key.usage == 70 and key.usage_in("monthly", day2) == 70
