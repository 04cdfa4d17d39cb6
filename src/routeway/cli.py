"""The ``routeway`` command: serve, and the operator's accounts/keys/models commands."""

from __future__ import annotations

import functools
import json
import os
import sqlite3
import sys
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any, cast

import click
from rich.console import Console
from rich.table import Table

from routeway.config import ConfigError, load_settings
from routeway.local_models import DEFAULT_MODEL_ID

console = Console()


def _settings(config: str | None, **overrides: Any):  # type: ignore[no-untyped-def]
    try:
        return load_settings(Path(config) if config else None, **overrides)
    except ConfigError as exc:
        raise click.ClickException(f"configuration: {exc}") from None


@click.group()
@click.version_option(package_name="routeway")
def main() -> None:
    """routeway: a self-hostable OpenRouter."""


@main.command()
@click.option("--config", "config", type=click.Path(dir_okay=False), envvar="ROUTEWAY_CONFIG", help="TOML config file.")
@click.option("--host", default=None, help="Address to listen on [default: 127.0.0.1].")
@click.option("--port", type=int, default=None, help="Port [default: 8080].")
@click.option("--data-dir", type=click.Path(file_okay=False), default=None,
              help="Where the SQLite store lives [default: ./data].")
@click.option("--log-level", default="warning", type=click.Choice(["debug", "info", "warning", "error"]))
@click.option("--model", "models", multiple=True, type=click.Path(dir_okay=False, exists=True),
              help="A GGUF model to serve in-process as local/<file name> (repeatable).")
@click.option("--default-model/--no-default-model", default=None, envvar="ROUTEWAY_DEFAULT_MODEL",
              help="Serve local/smollm2-135m-instruct when no provider is configured [default: on].")
@click.option("--workers", type=click.IntRange(1, 64), default=None, envvar="ROUTEWAY_WORKERS",
              help="Serving processes sharing the port and the store [default: 1, or [server] workers].")
def serve(config: str | None, host: str | None, port: int | None, data_dir: str | None, log_level: str,
          models: tuple[str, ...], default_model: bool | None, workers: int | None) -> None:
    """Start the gateway."""
    import uvicorn

    from routeway.app import create_app
    from routeway.connections import fit_open_file_limit, protocol_class
    from routeway.observe.logs import configure as configure_logging
    from routeway.services import build_store
    from routeway.store.sqlite import StoreUnavailable
    from routeway.workers import Supervisor, role_from_env, serve_worker, share_cores

    role = role_from_env(os.environ)
    settings = _settings(config, host=host, port=port, data_dir=Path(data_dir) if data_dir else None,
                         model_paths=tuple(Path(m) for m in models), default_model=default_model, workers=workers,
                         worker=role[0] if role else None)
    if role is not None:
        settings = share_cores(settings, role[0].processes)
    configure_logging(settings.telemetry.log_format, log_level)  # text, or JSON lines (observe/logs.py)
    if settings.telemetry.log_format == "json":
        console.file = sys.stderr  # stdout carries only the JSON request lines
    try:
        app = create_app(settings)
    except ConfigError as exc:
        raise click.ClickException(f"configuration: {exc}") from None
    s = app.services.settings
    limits = fit_open_file_limit(s.connections)
    # No proxy-headers middleware: one more ASGI layer per request, and the dashboard reads
    # X-Forwarded-Proto/-Host itself where it needs them. No "server: uvicorn" header either.
    # httptools with routeway's limits on what one client connection may hold (connections.py).
    # uvicorn types timeout_keep_alive as int, but it only hands the seconds to call_later: a fraction works
    server_options: dict[str, Any] = dict(
        loop="uvloop", http=protocol_class(limits, app.services.connection_stats), log_level=log_level,
        access_log=False, proxy_headers=False, server_header=False, lifespan="on",
        timeout_keep_alive=cast(int, limits.idle_timeout_seconds), timeout_graceful_shutdown=5)
    if role is not None:  # one of the processes a supervisor started (routeway/workers.py)
        serve_worker(app, role[1], role[0], server_options)
        return
    group_store = build_store(s) if s.workers > 1 else None  # the supervisor's: a group member's is not claimed
    try:
        # before listening: a second server on one data folder stops here (a group's supervisor holds it)
        (group_store or app.services.store).claim()
    except StoreUnavailable as exc:
        raise click.ClickException(str(exc)) from None
    base = f"http://{s.host}:{s.port}"
    first_start = not s.store_url and not (Path(s.data_dir) / "routeway.sqlite3").exists()
    served = sum(1 for eps in app.services.catalog.endpoints.values() if eps)
    console.print(f"[bold green]routeway[/] listening on [bold]{base}[/]")
    console.print(f"  dashboard     {base}/   (sign in with a management key or the operator key)")
    console.print(f"  API           {base}/api/v1   (OpenAI clients: {base}/v1)")
    console.print(f"  store         {_store_name(s)}" + ("  [yellow](created now)[/]" if first_start else ""))
    console.print(f"  catalog       {len(app.services.catalog.models)} models, {served} with a provider"
                  f" ({', '.join(p.name for p in s.providers) or 'none configured: chat answers 503'})")
    for provider in s.providers:
        if provider.local is not None:
            served_by = [m for m, eps in app.services.catalog.endpoints.items()
                         if any(e.provider is provider for e in eps)]
            console.print(f"  local model   {', '.join(served_by)}  ({provider.local.model_path.name}, llama.cpp in a"
                          " worker process of its own)")
            if DEFAULT_MODEL_ID in served_by:
                console.print("                served by default as no provider is configured;"
                              " [cyan]--no-default-model[/] turns it off")
    key_source = "ROUTEWAY_ADMIN_KEY" if os.environ.get("ROUTEWAY_ADMIN_KEY") else str(Path(s.data_dir) / "admin.key")
    console.print(f"  operator key  {key_source}")
    console.print("  get a key     [cyan]routeway accounts create me --credits 10[/]  then"
                  "  [cyan]routeway keys create <account-id> --api[/]")
    if group_store is not None:
        console.print(f"  workers       {s.workers} processes on one port and one store (credit leases)")
        group_store.open()  # the migrations, once, before any worker opens the store
        try:
            supervisor = Supervisor(sys.argv[1:], s.workers, s.host, s.port, group_store)
        except OSError as exc:
            group_store.close()
            raise click.ClickException(f"cannot listen on {s.host}:{s.port}: {exc.strerror}") from None
        sys.exit(supervisor.run())
    uvicorn.run(app, host=s.host, port=s.port, **server_options)


def _store_name(settings: Any) -> str:
    if settings.store_url:
        from routeway.store.postgres import describe_url

        return describe_url(settings.store_url)
    return str(Path(settings.data_dir).resolve() / "routeway.sqlite3")


@main.command()
@click.option("--config", "config", type=click.Path(dir_okay=False), envvar="ROUTEWAY_CONFIG", help="TOML config file.")
@click.option("--data-dir", type=click.Path(file_okay=False), default=None,
              help="Where the SQLite store lives [default: ./data].")
@click.option("--database-url", default=None, help="A postgresql:// URL [default: ROUTEWAY_DATABASE_URL or"
              " [store] url]; without one the SQLite store in the data folder is migrated.")
@click.option("--from-sqlite", "from_sqlite", type=click.Path(exists=True), default=None,
              help="Copy this embedded install (a routeway.sqlite3 file or its data folder) into PostgreSQL.")
@click.option("--into-non-empty", is_flag=True,
              help="Copy even though the target holds rows already, skipping rows it has (finishes an"
                   " interrupted copy).")
def migrate(config: str | None, data_dir: str | None, database_url: str | None, from_sqlite: str | None,
            into_non_empty: bool) -> None:
    """Apply the store's pending migrations, or copy an embedded install into PostgreSQL."""
    from routeway.services import build_store
    from routeway.store.base import StoreUnwritable
    from routeway.store.migrations import applied_migrations
    from routeway.store.sqlite import StoreUnavailable

    settings = _settings(config, data_dir=Path(data_dir) if data_dir else None)
    if database_url:
        from dataclasses import replace

        if not database_url.startswith(("postgresql://", "postgres://")):
            raise click.ClickException("--database-url must be a postgresql:// URL")
        settings = replace(settings, store_url=database_url)
    if from_sqlite and not settings.store_url:
        raise click.ClickException("--from-sqlite copies into PostgreSQL: give --database-url, set"
                                   " ROUTEWAY_DATABASE_URL or [store] url")
    target = build_store(settings)
    try:
        target.open()
    except (StoreUnavailable, StoreUnwritable) as exc:
        raise click.ClickException(str(exc)) from None
    try:
        applied = applied_migrations(target)
        console.print(f"store {_store_name(settings)}: schema at [bold]{applied[-1]}[/]"
                      f" ({len(applied)} migrations applied)")
        if from_sqlite:
            _copy_from_sqlite(Path(from_sqlite), target, into_non_empty)
    finally:
        target.close()


def _copy_from_sqlite(path: Path, target: Any, into_non_empty: bool) -> None:
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

    from routeway.store.base import StoreUnwritable
    from routeway.store.ledger import LedgerRepository
    from routeway.store.sqlite import SQLiteStore, StoreUnavailable
    from routeway.store.transfer import copy_table, disagreements, row_counts, tables_of

    if path.is_dir():
        path = path / "routeway.sqlite3"
    if not path.is_file():
        raise click.ClickException(f"{path} is not a routeway SQLite store")
    source = SQLiteStore(path)
    try:
        source.open()  # claims it (no server may be writing to it meanwhile) and brings its schema up to date
    except (StoreUnavailable, sqlite3.DatabaseError) as exc:
        raise click.ClickException(f"cannot open {path}: {exc}") from None
    try:
        tables = tables_of(source)
        present = {table: n for table, n in row_counts(target, tables).items() if n}
        if present and not into_non_empty:
            raise click.ClickException(
                "the target already holds " + ", ".join(f"{n} {table}" for table, n in present.items())
                + ": copying into it could mix two installs. Use an empty database, or --into-non-empty to"
                " finish an interrupted copy of this same install.")
        counts = row_counts(source, tables)
        with Progress(TextColumn("{task.description:<17}"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn(),
                      console=console) as progress:
            for table in tables:
                task = progress.add_task(table.name, total=counts[table.name])
                try:
                    copy_table(source, target, table, into_non_empty, functools.partial(progress.advance, task))
                except StoreUnwritable as exc:
                    raise click.ClickException(f"copying {table.name}: {exc}") from None
        problems = disagreements(source, target)
        if problems:
            for problem in problems:
                console.print(f"[red]{problem}[/]")
            raise click.ClickException(f"{len(problems)} balances disagree after the copy; do not serve from it")
        copied = row_counts(target, tables)
        console.print("[bold green]copied[/] " + ", ".join(f"{counts[t.name]} {t.name}" for t in tables)
                      + f"; every balance agrees ({len(LedgerRepository(source).balances_now())} accounts"
                      " with ledger rows)."
                      + ("" if copied == counts else f" The target now holds {copied}."))
    finally:
        source.close()


# ---- operator commands: thin clients of the admin API ------------------------------------------

def _admin_key(data_dir: str) -> str:
    key = os.environ.get("ROUTEWAY_ADMIN_KEY")
    if key:
        return key
    path = Path(data_dir) / "admin.key"
    if path.exists():
        return path.read_text().strip()
    raise click.ClickException(f"no operator key: set ROUTEWAY_ADMIN_KEY or run `routeway serve` once"
                               f" (it writes {path})")


def _call(ctx: click.Context, method: str, path: str, body: dict[str, Any] | None = None) -> Any:
    url = ctx.obj["url"].rstrip("/") + "/api/v1" + path
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(url, data=data, method=method, headers={
        "authorization": f"Bearer {_admin_key(ctx.obj['data_dir'])}", "content-type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return json.loads(response.read())
    except urllib.error.HTTPError as exc:
        try:
            message = json.loads(exc.read())["error"]["message"]
        except (ValueError, KeyError, TypeError):
            message = exc.reason
        raise click.ClickException(f"{exc.code}: {message}") from None
    except urllib.error.URLError as exc:
        raise click.ClickException(f"cannot reach routeway at {url}: {exc.reason}."
                                   " Is `routeway serve` running?") from None


def _server_options(fn: Any) -> Any:
    fn = click.option("--url", default=lambda: os.environ.get("ROUTEWAY_URL", "http://127.0.0.1:8080"),
                      show_default="http://127.0.0.1:8080", help="The running routeway server.")(fn)
    fn = click.option("--data-dir", default="data", show_default=True, help="Where serve keeps admin.key.")(fn)
    return fn


@main.group()
@_server_options
@click.pass_context
def accounts(ctx: click.Context, url: str, data_dir: str) -> None:
    """Accounts and their credits (operator)."""
    ctx.obj = {"url": url, "data_dir": data_dir}


@accounts.command("create")
@click.argument("name")
@click.option("--credits", type=float, default=0.0, help="Initial credits in USD.")
@click.option("--no-key", is_flag=True, help="Do not issue the account's first management key.")
@click.pass_context
def accounts_create(ctx: click.Context, name: str, credits: float, no_key: bool) -> None:
    """Create an account, grant it credits and issue its first management key."""
    account = _call(ctx, "POST", "/admin/accounts", {"name": name, "credits": credits})["data"]
    console.print(f"account [bold]{account['id']}[/] ({name}) with ${account['total_credits']:.2f}")
    if not no_key:
        created = _call(ctx, "POST", f"/admin/accounts/{account['id']}/keys", {"name": f"{name} management"})
        console.print(f"management key (shown once): [bold yellow]{created['key']}[/]")
        console.print("create API keys with it: POST /api/v1/keys, or `routeway keys create <account-id> --api`")


@accounts.command("list")
@click.pass_context
def accounts_list(ctx: click.Context) -> None:
    """List accounts with credits, usage and balance."""
    table = Table("id", "name", "credits", "usage", "balance")
    for a in _call(ctx, "GET", "/admin/accounts")["data"]:
        table.add_row(a["id"], a["name"], f"${a['total_credits']:.6f}", f"${a['total_usage']:.6f}",
                      f"${a['balance']:.6f}")
    console.print(table)


@accounts.command("grant")
@click.argument("account_id")
@click.argument("amount", type=float)
@click.option("--note", default="", help="Why (kept in the ledger).")
@click.pass_context
def accounts_grant(ctx: click.Context, account_id: str, amount: float, note: str) -> None:
    """Add AMOUNT USD of credits (negative takes them back)."""
    result = _call(ctx, "POST", f"/admin/accounts/{account_id}/credits", {"amount": amount, "note": note})["data"]
    console.print(f"balance of {account_id}: ${result['account']['balance']:.6f}")


@main.group()
@_server_options
@click.pass_context
def keys(ctx: click.Context, url: str, data_dir: str) -> None:
    """Keys of an account (operator)."""
    ctx.obj = {"url": url, "data_dir": data_dir}


@keys.command("create")
@click.argument("account_id")
@click.option("--name", default="default")
@click.option("--management/--api", default=True, help="A management key (default) or an inference API key.")
@click.option("--limit", type=float, default=None, help="Spending limit in USD.")
@click.option("--limit-reset", type=click.Choice(["daily", "weekly", "monthly"]), default=None)
@click.pass_context
def keys_create(ctx: click.Context, account_id: str, name: str, management: bool, limit: float | None,
                limit_reset: str | None) -> None:
    """Issue a key; its secret is shown once."""
    created = _call(ctx, "POST", f"/admin/accounts/{account_id}/keys",
                    {"name": name, "management": management, "limit": limit, "limit_reset": limit_reset})
    console.print(f"{'management' if management else 'API'} key (shown once): [bold yellow]{created['key']}[/]")
    console.print(f"hash: {created['data']['hash']}")


@keys.command("list")
@click.argument("account_id")
@click.pass_context
def keys_list(ctx: click.Context, account_id: str) -> None:
    """List an account's keys."""
    table = Table("hash", "name", "label", "type", "disabled", "usage", "limit")
    for k in _call(ctx, "GET", f"/admin/accounts/{account_id}/keys")["data"]:
        table.add_row(k["hash"][:16], k["name"], k["label"], "management" if k["is_management_key"] else "api",
                      str(k["disabled"]), f"${k['usage']:.6f}", "-" if k["limit"] is None else f"${k['limit']:.2f}")
    console.print(table)


@main.command("models")
@click.option("--config", "config", type=click.Path(dir_okay=False), envvar="ROUTEWAY_CONFIG")
def models(config: str | None) -> None:
    """List the catalog and which providers serve each model (reads config; no server needed)."""
    from routeway.catalog import Catalog

    catalog = Catalog.build(_settings(config))
    table = Table("id", "context", "$/1M in", "$/1M out", "providers")
    for m in catalog.models.values():
        table.add_row(m.id, f"{m.context_length:,}", str(m.prompt_price), str(m.completion_price),
                      ", ".join(e.tag for e in catalog.endpoints_for(m.id)) or "-")
    console.print(table)


if __name__ == "__main__":
    sys.exit(main())
