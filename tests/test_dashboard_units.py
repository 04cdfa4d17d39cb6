"""The dashboard's pure parts: number filters, redirect targets, chart series, API snippets, queries."""

from __future__ import annotations

import asyncio
from pathlib import Path

from routeway.routing.health import OK, Health
from routeway.store.sqlite import SQLiteStore
from routeway.web import queries, series, snippets
from routeway.web.core import Static, compact, per_million, safe_next, usd


def test_filters() -> None:
    assert compact(2_810_000_000) == "2.81B" and compact(131_072) == "131K" and compact(40) == "40"
    assert compact(None) == "—"
    assert per_million(130_000_000) == "$0.13" and per_million(400_000_000) == "$0.40"
    assert usd(0) == "$0" and usd(12.5) == "$12.50" and usd(0.0000136) == "$0.000014"


def test_safe_next_stays_on_this_site() -> None:
    assert safe_next("/keys?x=1") == "/keys?x=1"
    for hostile in ("//evil.example/", "https://evil.example/", "/\\evil.example", "", None):
        assert safe_next(hostile) == "/activity"


def test_static_serves_only_its_files() -> None:
    static = Static()
    assert "vendor/uPlot.iife.min.js" in static.files and "vendor/uPlot.LICENSE.txt" in static.files
    assert static.response("../core.py") is None and static.response("app.css") is not None


def test_daily_series_fill_missing_days() -> None:
    days = [100, 101, 102]
    charts = series.daily([(101, 50, 2, 3_000_000_000)], days, {"tokens": (1, "Tokens"), "spend": (3, "USD")},
                          scale={"spend": 1e-9})
    assert charts["tokens"]["series"][0]["values"] == [0, 50, 0]
    assert charts["spend"]["series"][0]["values"] == [0, 3.0, 0]
    assert charts["tokens"]["x"] == [100 * 86400, 101 * 86400, 102 * 86400] and not charts["tokens"]["empty"]
    assert series.daily([], days, {"tokens": (1, "Tokens")})["tokens"]["empty"]


def test_endpoint_history_lays_live_health_over_stored_minutes() -> None:
    health = Health()
    now = 60 * 1_000_000 + 30.0
    live = health.of("p/m")
    live.record(OK, now, ttft_ms=100.0, tokens_per_s=50.0)
    live.record(OK, now + 1, ttft_ms=300.0, tokens_per_s=70.0)
    stored = [("p/m", 1_000_000 - 60, 4, 1, 80.0, 40.0), ("p/m", 1_000_000, 1, 0, 10.0, 10.0), ("other", 5, 1, 1, 1, 1)]
    history = series.endpoint_history(stored, health, ["p/m"], 1_000_000 - 120)
    assert history["p/m"][1_000_000 - 60] == [4, 1, 80.0, 40.0]
    assert history["p/m"][1_000_000] == [2, 0, 200.0, 60.0]  # live counts and samples win for their minute
    perf = series.performance(history, {"p/m": "Provider"})
    assert perf["ttft"]["series"][0]["values"] == [80.0, 200.0]
    up = series.uptime(history, {"p/m": "Provider"}, now, hours=3)
    assert up["series"][0]["values"][-1] == 100.0 and up["series"][0]["values"][-2] == 80.0


def test_snippets_use_this_server() -> None:
    examples = dict((tab, code) for tab, _, code in snippets.examples("http://gw.example:8080", "a/b"))
    assert "http://gw.example:8080/api/v1/chat/completions" in examples["curl"]
    assert 'base_url="http://gw.example:8080/v1"' in examples["python"]
    assert 'server_url="http://gw.example:8080/api/v1"' in examples["openrouter"]
    assert '"stream": true' in examples["stream"]
    assert snippets.parameters(("temperature", "unknown_one"))[0][:3] == ("temperature", "float", "1")


def test_queries_scope_to_one_account(tmp_path: Path) -> None:
    store = SQLiteStore(tmp_path / "db.sqlite3")
    store.open()
    try:
        insert = ("INSERT INTO generations (id, account_id, key_hash, model, provider_name, provider_slug, upstream_model,"
                  " http_referer, app_title, tokens_prompt, tokens_completion, usage_estimated, total_cost_nano,"
                  " streamed, cancelled, status, attempts, created_at) VALUES (?, ?, 'k', ?, 'P', 'p', 'u', ?, ?, ?, ?,"
                  " 0, ?, 0, 0, 200, '[]', ?)")
        day = queries.DAY_MS
        store.write_now([(insert, ("g1", "a1", "m/x", "https://a", "A", 10, 5, 100, 3 * day + 5)),
                         (insert, ("g2", "a1", "m/y", None, "B", 1, 1, 10, 4 * day)),
                         (insert, ("g3", "a2", "m/x", "https://a", None, 100, 100, 1000, 4 * day + 1))])

        async def run() -> None:
            assert [g["id"] for g in await queries.generations(store, "a1", 10, 0)] == ["g2", "g1"]
            assert [g["id"] for g in await queries.generations(store, None, 10, 0)] == ["g3", "g2", "g1"]
            assert await queries.generation(store, "a1", "g3") is None
            assert await queries.account_days(store, "a1", 0) == [(3, 15, 1, 100), (4, 2, 1, 10)]
            assert [u.name for u in await queries.account_by(store, "model", "a1", 0)] == ["m/x", "m/y"]
            apps = await queries.top_apps(store, 0)
            assert [(a.name, a.tokens, a.title) for a in apps] == [("https://a", 215, "A"), ("B", 2, "B")]
            assert await queries.model_tokens(store, "m/x", 4 * day) == 200
            assert [u.name for u in await queries.top_models(store, 0)] == ["m/x", "m/y"]
            assert await queries.models_days(store, ["m/x"], 0) == [("m/x", 3, 15), ("m/x", 4, 200)]

        asyncio.run(run())
    finally:
        store.close()
