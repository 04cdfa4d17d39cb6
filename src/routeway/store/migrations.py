"""Numbered migrations; each function's name is its id. Portable SQL only."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from routeway.store.base import Store


def m001_initial() -> list[str]:
    return [
        """CREATE TABLE accounts (
            id TEXT PRIMARY KEY,
            name TEXT NOT NULL,
            created_at BIGINT NOT NULL
        )""",
        """CREATE TABLE api_keys (
            hash TEXT PRIMARY KEY,
            account_id TEXT NOT NULL REFERENCES accounts(id),
            name TEXT NOT NULL,
            label TEXT NOT NULL,
            is_management INTEGER NOT NULL,
            limit_nano BIGINT,
            limit_reset TEXT,
            include_byok_in_limit INTEGER NOT NULL,
            expires_at BIGINT,
            disabled INTEGER NOT NULL,
            deleted INTEGER NOT NULL,
            created_at BIGINT NOT NULL,
            updated_at BIGINT
        )""",
        # Append-only: a grant is positive, a charge negative; a balance is the sum of its entries.
        """CREATE TABLE ledger (
            id TEXT PRIMARY KEY,
            account_id TEXT NOT NULL REFERENCES accounts(id),
            key_hash TEXT,
            kind TEXT NOT NULL,
            amount_nano BIGINT NOT NULL,
            generation_id TEXT,
            note TEXT NOT NULL,
            created_at BIGINT NOT NULL
        )""",
        "CREATE INDEX ledger_account ON ledger (account_id, created_at)",
        "CREATE INDEX ledger_key ON ledger (key_hash, created_at)",
        """CREATE TABLE generations (
            id TEXT PRIMARY KEY,
            account_id TEXT NOT NULL,
            key_hash TEXT NOT NULL,
            model TEXT NOT NULL,
            provider_name TEXT NOT NULL,
            provider_slug TEXT NOT NULL,
            upstream_model TEXT NOT NULL,
            upstream_id TEXT,
            http_referer TEXT,
            app_title TEXT,
            tokens_prompt INTEGER NOT NULL,
            tokens_completion INTEGER NOT NULL,
            native_tokens_prompt INTEGER,
            native_tokens_completion INTEGER,
            native_tokens_reasoning INTEGER,
            native_tokens_cached INTEGER,
            usage_estimated INTEGER NOT NULL,
            total_cost_nano BIGINT NOT NULL,
            latency_ms INTEGER,
            generation_time_ms INTEGER,
            finish_reason TEXT,
            native_finish_reason TEXT,
            streamed INTEGER NOT NULL,
            cancelled INTEGER NOT NULL,
            status INTEGER NOT NULL,
            error TEXT,
            attempts TEXT NOT NULL,
            created_at BIGINT NOT NULL
        )""",
        "CREATE INDEX generations_account ON generations (account_id, created_at)",
    ]


def m002_endpoint_minutes() -> list[str]:
    """Per-endpoint, per-minute health counters, so uptime and performance history survive restarts."""
    return [
        """CREATE TABLE endpoint_minutes (
            endpoint TEXT NOT NULL,
            minute BIGINT NOT NULL,
            ok INTEGER NOT NULL,
            errors INTEGER NOT NULL,
            rate_limited INTEGER NOT NULL,
            ttft_p50_ms REAL,
            tps_p50 REAL,
            PRIMARY KEY (endpoint, minute)
        )""",
    ]


def m003_generation_indexes() -> list[str]:
    """Model pages and rankings read generations by model and by time."""
    return [
        "CREATE INDEX generations_model ON generations (model, created_at)",
        "CREATE INDEX generations_created ON generations (created_at)",
    ]


def m004_drop_ledger_key_index() -> list[str]:
    """No query reads ledger by key: start-up sums every charge once, and a full scan does that faster
    than the index (bench/NOTES.md step 19). One B-tree page less written by every charged request."""
    return ["DROP INDEX IF EXISTS ledger_key"]


def m005_usage_trust() -> list[str]:
    """An upstream's usage is untrusted: the record says when its counts were cut to what the request
    could produce (the claim stays in native_tokens_*), or why they were discarded for an estimate."""
    return [
        "ALTER TABLE generations ADD COLUMN usage_capped INTEGER NOT NULL DEFAULT 0",
        "ALTER TABLE generations ADD COLUMN usage_rejected TEXT",
    ]


def m006_generation_api() -> list[str]:
    """Which inbound API a generation came in by (chat, messages, responses, completions, embeddings)."""
    return ["ALTER TABLE generations ADD COLUMN api TEXT NOT NULL DEFAULT 'chat'"]


def m007_response_cache() -> list[str]:
    """The response cache (cache/): answers kept per API key until they expire, the accounts that turned it
    on for every request, and on each generation whether it was a hit and what the hit saved."""
    return [
        """CREATE TABLE response_cache (
            cache_key TEXT PRIMARY KEY,
            account_id TEXT NOT NULL,
            entry TEXT NOT NULL,
            expires_at BIGINT NOT NULL
        )""",
        "CREATE INDEX response_cache_expiry ON response_cache (expires_at)",
        """CREATE TABLE response_cache_accounts (
            account_id TEXT PRIMARY KEY,
            ttl_seconds INTEGER NOT NULL
        )""",
        "ALTER TABLE generations ADD COLUMN cache_hit INTEGER NOT NULL DEFAULT 0",
        "ALTER TABLE generations ADD COLUMN cache_saved_nano BIGINT NOT NULL DEFAULT 0",
    ]


def m008_observability_destinations() -> list[str]:
    """Each account's export destinations (OTLP collector, webhook, Langfuse): ``config`` is JSON with the
    endpoint and the headers or keys that authenticate to it, which the API never shows back."""
    return [
        """CREATE TABLE observability_destinations (
            id TEXT PRIMARY KEY,
            account_id TEXT NOT NULL REFERENCES accounts(id),
            name TEXT NOT NULL,
            type TEXT NOT NULL,
            config TEXT NOT NULL,
            sampling_rate REAL NOT NULL,
            privacy_mode INTEGER NOT NULL,
            api_key_hashes TEXT,
            enabled INTEGER NOT NULL,
            created_at BIGINT NOT NULL,
            updated_at BIGINT
        )""",
        "CREATE INDEX observability_destinations_account ON observability_destinations (account_id)",
    ]


def m009_credit_leases_and_changes() -> list[str]:
    """Several processes on one store (``serve --workers N``, replicas): slices of an account's or a key's
    credit leased to one process (ledger/leases.py), and the log of account and key changes every process
    follows (ledger/follow.py). ``store_changes.id`` is given by the insert (the last id plus one) in the
    change's transaction, so ids follow commit order on either backend."""
    return [
        """CREATE TABLE credit_leases (
            id TEXT PRIMARY KEY,
            holder TEXT NOT NULL,
            account_id TEXT NOT NULL,
            key_hash TEXT,
            window_start BIGINT NOT NULL,
            granted_nano BIGINT NOT NULL,
            spent_nano BIGINT NOT NULL,
            expires_at BIGINT NOT NULL
        )""",
        "CREATE INDEX credit_leases_account ON credit_leases (account_id, key_hash)",
        "CREATE INDEX credit_leases_holder ON credit_leases (holder)",
        """CREATE TABLE store_changes (
            id BIGINT PRIMARY KEY,
            kind TEXT NOT NULL,
            subject TEXT NOT NULL,
            created_at BIGINT NOT NULL
        )""",
    ]


def m010_guardrails_and_presets() -> list[str]:
    """Guardrails (policies an account assigns to its keys, or to all of them as its default) and presets
    (named request templates; every save is a new version, the highest is the one used)."""
    return [
        """CREATE TABLE guardrails (
            id TEXT PRIMARY KEY,
            account_id TEXT NOT NULL REFERENCES accounts(id),
            name TEXT NOT NULL,
            policy TEXT NOT NULL,
            account_default INTEGER NOT NULL,
            deleted INTEGER NOT NULL,
            created_at BIGINT NOT NULL,
            updated_at BIGINT
        )""",
        """CREATE TABLE guardrail_keys (
            guardrail_id TEXT NOT NULL REFERENCES guardrails(id),
            key_hash TEXT NOT NULL REFERENCES api_keys(hash),
            created_at BIGINT NOT NULL,
            PRIMARY KEY (guardrail_id, key_hash)
        )""",
        """CREATE TABLE presets (
            id TEXT PRIMARY KEY,
            account_id TEXT NOT NULL REFERENCES accounts(id),
            slug TEXT NOT NULL,
            name TEXT NOT NULL,
            description TEXT,
            status TEXT NOT NULL,
            created_at BIGINT NOT NULL,
            updated_at BIGINT NOT NULL
        )""",
        # named unique indexes, not inline UNIQUE: both stores then list the same index (store/schema.py)
        "CREATE UNIQUE INDEX presets_account_slug ON presets (account_id, slug)",
        """CREATE TABLE preset_versions (
            id TEXT PRIMARY KEY,
            preset_id TEXT NOT NULL REFERENCES presets(id),
            version INTEGER NOT NULL,
            config TEXT NOT NULL,
            system_prompt TEXT,
            created_at BIGINT NOT NULL
        )""",
        "CREATE UNIQUE INDEX preset_versions_version ON preset_versions (preset_id, version)",
    ]


def m011_dashboard_sessions() -> list[str]:
    """Dashboard sessions of processes that share the store without Redis (store/sessions.py): a row per
    session, found by the SHA-256 of its cookie and sealed with a key only the cookie gives."""
    return [
        """CREATE TABLE dashboard_sessions (
            id TEXT PRIMARY KEY,
            owner TEXT,
            signed_in INTEGER NOT NULL,
            sealed TEXT NOT NULL,
            playground_hash TEXT,
            started_us BIGINT NOT NULL,
            expires_at BIGINT NOT NULL
        )""",
        "CREATE INDEX dashboard_sessions_owner ON dashboard_sessions (owner, started_us)",
        "CREATE INDEX dashboard_sessions_kind ON dashboard_sessions (signed_in, started_us)",
        "CREATE INDEX dashboard_sessions_expiry ON dashboard_sessions (expires_at)",
    ]


MIGRATIONS: list[Callable[[], list[str]]] = [m001_initial, m002_endpoint_minutes, m003_generation_indexes,
                                             m004_drop_ledger_key_index, m005_usage_trust, m006_generation_api,
                                             m007_response_cache, m008_observability_destinations,
                                             m009_credit_leases_and_changes, m010_guardrails_and_presets,
                                             m011_dashboard_sessions]


def applied_migrations(store: Store) -> list[str]:
    """The ids of the migrations an open store has applied, in order."""
    names = {m.__name__ for m in MIGRATIONS}
    return sorted(row[0] for row in store.fetch_now("SELECT id FROM schema_migrations") if row[0] in names)
