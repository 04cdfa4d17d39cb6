"""Configuration: a TOML file plus environment variables, parsed once into frozen objects.

Secrets never live in the file: a provider names the environment variable that holds its key, and the
operator key comes from ``ROUTEWAY_ADMIN_KEY``. See ``routeway.example.toml`` for every setting.
"""

from __future__ import annotations

import os
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any

from routeway.dialects.registry import check_pair

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 8080
DEFAULT_MAX_BODY = 4 * 1024 * 1024
MIB = 1024 * 1024
MAX_ANSWER_BYTES = 32 * MIB  # an upstream answer's default caps ([[providers]] max_answer_bytes, max_stream_bytes)
MAX_STREAM_BYTES = 256 * MIB
# The upstream APIs an endpoint may serve ([[endpoints]] apis, or a catalog model's): chat completions, text
# completions (a raw prompt to /completions), embeddings (/embeddings). Which provider kinds speak which is
# in routeway/providers (SERVED_APIS).
UPSTREAM_APIS = ("chat", "completions", "embeddings")


class ConfigError(Exception):
    """The configuration cannot be used; the message says which setting and why."""


@dataclass(frozen=True, slots=True)
class Timeouts:
    connect: float = 10.0
    first_byte: float = 300.0  # non-streaming engines send headers only when the answer is done
    idle: float = 60.0  # longest silence between two streamed chunks
    total: float = 900.0


@dataclass(frozen=True, slots=True)
class LocalModelConfig:
    """A GGUF model that routeway runs itself (``kind = "local"``), in one worker process of its own."""

    model_path: Path
    n_ctx: int = 4096  # the context window the worker allocates (tokens)
    threads: int | None = None  # llama.cpp threads; None = half the CPUs, as llama-cpp-python does
    batch: int = 512  # prompt tokens evaluated per llama.cpp batch
    queue_size: int = 16  # requests that may wait for the model; one more gets 429 with Retry-After
    # llama.cpp's repacked weight buffers (AMX / AVX-512 kernels): off, because the AMX path segfaults on
    # quantized weights on some Xeons (ggml_backend_amx_mul_mat, llama.cpp in llama-cpp-python 0.3.36)
    extra_bufts: bool = False


@dataclass(frozen=True, slots=True)
class ProviderConfig:
    name: str  # slug used in routing preferences and the endpoints API
    kind: str  # adapter name, see routeway.providers
    base_url: str
    display_name: str = ""
    api_key_env: str | None = None
    timeouts: Timeouts = Timeouts()
    data_collection: str = "deny"  # "allow": the provider may store or train on prompts
    zdr: bool = False
    headers: Mapping[str, str] = field(default_factory=dict)
    max_answer_bytes: int = MAX_ANSWER_BYTES  # a whole (non-streamed) answer's body; more is a 502
    max_stream_bytes: int = MAX_STREAM_BYTES  # everything one streamed answer may send; more: an error chunk
    # Which catalog models this provider serves without an explicit endpoint ("*" = all); used by the
    # providers picked up from the environment.
    serves_catalog: tuple[str, ...] = ()
    local: LocalModelConfig | None = None  # kind "local": the model file and how to run it

    @property
    def constrains_output(self) -> bool:
        """routeway runs the engine itself and enforces ``response_format`` with a grammar."""
        return self.local is not None

    @property
    def label(self) -> str:
        return self.display_name or self.name

    def api_key(self, env: Mapping[str, str]) -> str | None:
        """The upstream key, without the trailing newline a key read from a file often brings."""
        key = env.get(self.api_key_env) if self.api_key_env else None
        return key.strip() if key else None


@dataclass(frozen=True, slots=True)
class EndpointConfig:
    model: str
    provider: str
    upstream_model: str
    prompt_price: Decimal | None = None  # USD per 1M tokens; None = the catalog's price
    completion_price: Decimal | None = None
    input_cache_read: Decimal | None = None  # USD per 1M cached prompt tokens read; None = the catalog's
    input_cache_write: Decimal | None = None  # ... written into the upstream's prompt cache
    context_length: int | None = None
    max_output: int | None = None
    quantization: str = "unknown"
    supported_parameters: tuple[str, ...] | None = None
    dialect: str | None = None
    extra_body: Mapping[str, Any] = field(default_factory=dict)  # merged into every upstream request
    max_concurrency: int | None = None  # requests in flight to this engine at once; None: no cap
    apis: tuple[str, ...] | None = None  # the upstream APIs it serves (UPSTREAM_APIS); None = the model's


@dataclass(frozen=True, slots=True)
class RoutingSettings:
    max_attempts: int = 5  # endpoints tried per request, across model fallbacks
    deadline_seconds: float = 300.0  # until some attempt starts answering
    breaker_threshold: int = 5  # consecutive failures that open an endpoint's circuit breaker
    breaker_cooldown: float = 30.0  # seconds before a half-open probe
    health_flush_seconds: float = 30.0  # how often per-minute health counters are persisted
    concurrency_queue: int = 16  # requests that may wait for a slot of one capped endpoint (or key); more: 429
    concurrency_wait_seconds: float = 30.0  # the longest such a wait; then 429 with Retry-After


@dataclass(frozen=True, slots=True)
class ConnectionSettings:
    """What one client connection may hold, read from ``[server]``: every wait on a client has an end."""

    max_header_bytes: int = 32 * 1024  # request line and headers together; more is a 431
    header_timeout_seconds: float = 10.0  # from a request's first byte (or the connection's opening) to its last header
    body_timeout_seconds: float = 60.0  # from the last header to the body's last byte; then a 408
    idle_timeout_seconds: float = 20.0  # an idle keep-alive connection is closed after this
    send_timeout_seconds: float = 60.0  # a client that stops reading answers for this long is disconnected
    max_connections: int = 4096  # open client connections; a request on one more is answered 503


@dataclass(frozen=True, slots=True)
class LimitSettings:
    """Request-rate limits, in the ``limits`` library's notation ("600/minute", "10/second;600/minute")."""

    key_requests: str = ""  # per API key, on every inference request; "" = none (OpenRouter: none for paid)
    free_requests: str = "20/minute"  # per account, on `:free` variants (OpenRouter's documented limit)
    free_daily: int = 50  # per account per day (sliding 24 h) on `:free` variants, while granted < $10 in all
    free_daily_with_credits: int = 1000  # ... once it was granted $10 or more
    key_concurrent_streams: int = 0  # streams open at once per API key; 0 = no limit
    key_max_concurrency: int = 0  # requests in flight at once per API key, streamed or not; 0 = no limit
    signin_per_key: str = "60/minute;300/hour"  # dashboard sign-in attempts per key tried (any text counts)
    signin_failures_per_address: str = "30/minute;300/hour"  # failed sign-ins per client address


@dataclass(frozen=True, slots=True)
class WorkerRole:
    """This process is worker ``index`` of ``processes`` sharing the store (``serve --workers N``); its credit
    leases are held as ``holder``, a name its supervisor can release them by when it dies."""

    index: int
    processes: int
    holder: str
    parent_pid: int


@dataclass(frozen=True, slots=True)
class SharedSettings:
    """``[shared]``: state that replicas share through Redis (rate limits, endpoint health, dashboard
    sessions); with no URL each process keeps its own."""

    redis: str | None = None  # "redis://host:6379/0" (or ROUTEWAY_REDIS_URL); None = per process
    prefix: str = "routeway:"  # every key routeway writes starts with this (several installs on one Redis)
    timeout_seconds: float = 0.25  # a Redis call slower than this counts as Redis being away


@dataclass(frozen=True, slots=True)
class CacheSettings:
    """The response cache, read from ``[cache]``: where answers are kept and how large one may be."""

    max_entry_bytes: int = 1024 * 1024  # a larger answer is not cached
    redis_url: str | None = None  # ``[shared] redis`` / ROUTEWAY_REDIS_URL: shared by replicas; None: the store
    redis_prefix: str = "routeway:cache:"


DEFAULT_CACHE_ENTRY_BYTES = 1024 * 1024
DEFAULT_CACHE_PREFIX = "routeway:cache:"


def _cache(table: Mapping[str, Any], redis_url: str | None) -> CacheSettings:
    unknown = set(table) - {"max_entry_bytes", "redis_prefix"}
    if unknown:
        raise ConfigError(f"[cache]: unknown settings {sorted(unknown)}")
    size = table.get("max_entry_bytes", DEFAULT_CACHE_ENTRY_BYTES)
    if type(size) is not int or not 0 < size <= 64 * 1024 * 1024:
        raise ConfigError("[cache] max_entry_bytes must be a whole number of bytes from 1 to 67108864")
    prefix = table.get("redis_prefix", DEFAULT_CACHE_PREFIX)
    if not isinstance(prefix, str):
        raise ConfigError("[cache] redis_prefix must be a string")
    return CacheSettings(size, redis_url or None, prefix)


@dataclass(frozen=True, slots=True)
class TelemetrySettings:
    """``[telemetry]``: OpenTelemetry traces (exported as the standard ``OTEL_EXPORTER_OTLP_*`` variables
    say) and the log format. Everything is off by default: no trace is made, no prompt leaves."""

    traces: bool = False  # on also with OTEL_TRACES_EXPORTER=otlp; OTEL_SDK_DISABLED=true wins
    capture_content: bool = False  # prompts and completions in spans (privacy by default)
    content_sample_rate: float = 1.0  # share of traced requests whose content is captured, 0–1
    log_format: str = "text"  # "json": JSON lines, one per request with its id, key, model, cost, latency


@dataclass(frozen=True, slots=True)
class Settings:
    host: str = DEFAULT_HOST
    port: int = DEFAULT_PORT
    data_dir: Path = Path("data")
    max_body_bytes: int = DEFAULT_MAX_BODY
    keepalive_seconds: float = 2.0
    durability: str = "full"  # "full": fsync every group commit; "normal": WAL synced every 50 ms in the background
    workers: int = 1  # serving processes on one listening socket (``serve --workers N``)
    worker: WorkerRole | None = None  # set in each of those processes
    store_url: str | None = None  # "postgresql://…": the PostgreSQL store; None: SQLite in data_dir
    admin_key: str | None = None
    connections: ConnectionSettings = ConnectionSettings()
    routing: RoutingSettings = RoutingSettings()
    limits: LimitSettings = LimitSettings()
    shared: SharedSettings = SharedSettings()
    cache: CacheSettings = CacheSettings()
    telemetry: TelemetrySettings = TelemetrySettings()
    providers: tuple[ProviderConfig, ...] = ()
    endpoints: tuple[EndpointConfig, ...] = ()
    models: tuple[Mapping[str, Any], ...] = ()  # extra catalog entries, same shape as the data file
    env: Mapping[str, str] = field(default_factory=dict)
    config_path: Path | None = None


# Upstreams picked up from the environment when their key is set and no configured provider has the name.
ENV_PROVIDERS: tuple[tuple[str, ProviderConfig], ...] = (
    ("OPENROUTER_API_KEY", ProviderConfig("openrouter", "openai", "https://openrouter.ai/api/v1", "OpenRouter",
                                          "OPENROUTER_API_KEY", data_collection="allow", serves_catalog=("*",))),
    ("OPENAI_API_KEY", ProviderConfig("openai", "openai", "https://api.openai.com/v1", "OpenAI",
                                      "OPENAI_API_KEY", serves_catalog=("openai",))),
    ("ANTHROPIC_API_KEY", ProviderConfig("anthropic", "anthropic", "https://api.anthropic.com/v1", "Anthropic",
                                         "ANTHROPIC_API_KEY", serves_catalog=("anthropic",))),
    ("DEEPSEEK_API_KEY", ProviderConfig("deepseek", "openai", "https://api.deepseek.com/v1", "DeepSeek",
                                        "DEEPSEEK_API_KEY", data_collection="allow", serves_catalog=("deepseek",))),
    ("MISTRAL_API_KEY", ProviderConfig("mistral", "openai", "https://api.mistral.ai/v1", "Mistral",
                                       "MISTRAL_API_KEY", serves_catalog=("mistralai",))),
)


def _price(value: Any, where: str) -> Decimal | None:
    if value is None:
        return None
    try:
        price = Decimal(str(value))
    except InvalidOperation:
        raise ConfigError(f"{where}: price {value!r} is not a number (USD per 1M tokens)") from None
    if price < 0:
        raise ConfigError(f"{where}: price must not be negative")
    return price


def _store_url(table: Mapping[str, Any], env: Mapping[str, str]) -> str | None:
    """``ROUTEWAY_DATABASE_URL`` or ``[store] url``: PostgreSQL when set, SQLite in the data folder when not."""
    unknown = set(table) - {"url"}
    if unknown:
        raise ConfigError(f"[store]: unknown settings {sorted(unknown)}")
    url = env.get("ROUTEWAY_DATABASE_URL") or table.get("url") or None
    if url is None:
        return None
    if not isinstance(url, str) or not url.startswith(("postgresql://", "postgres://")):
        raise ConfigError("[store] url (or ROUTEWAY_DATABASE_URL) must be a postgresql:// URL; leave it unset"
                          " for the embedded SQLite store")
    return url


def _require(table: Mapping[str, Any], key: str, where: str) -> Any:
    if key not in table:
        raise ConfigError(f"{where}: missing required key '{key}'")
    return table[key]


def _limits(table: Mapping[str, Any]) -> LimitSettings:
    from limits import parse_many  # the notation is the limits library's; check it now, not on a request

    unknown = set(table) - set(LimitSettings.__dataclass_fields__)
    if unknown:
        raise ConfigError(f"[limits]: unknown settings {sorted(unknown)}")
    settings = LimitSettings(**table)
    for name in ("key_requests", "free_requests", "signin_per_key", "signin_failures_per_address"):
        text = getattr(settings, name)
        if not isinstance(text, str):
            raise ConfigError(f"[limits] {name} must be a string such as \"600/minute\"")
        try:
            if text:
                parse_many(text)
        except ValueError:
            raise ConfigError(f"[limits] {name} = {text!r} is not a rate such as \"600/minute\" or"
                              " \"10/second;600/minute\"") from None
    for name in ("free_daily", "free_daily_with_credits"):
        if not isinstance(getattr(settings, name), int) or getattr(settings, name) < 0:
            raise ConfigError(f"[limits] {name} must be a whole number of requests (0 = none allowed)")
    streams = settings.key_concurrent_streams
    if not isinstance(streams, int) or isinstance(streams, bool) or streams < 0:
        raise ConfigError("[limits] key_concurrent_streams must be a whole number of streams (0 = no limit)")
    return settings


def _shared(table: Mapping[str, Any], env: Mapping[str, str]) -> SharedSettings:
    unknown = set(table) - set(SharedSettings.__dataclass_fields__)
    if unknown:
        raise ConfigError(f"[shared]: unknown settings {sorted(unknown)}")
    url = table.get("redis") or env.get("ROUTEWAY_REDIS_URL") or None
    if url is not None and (not isinstance(url, str) or not url.startswith(("redis://", "rediss://", "unix://"))):
        raise ConfigError("[shared] redis must be a URL such as \"redis://127.0.0.1:6379/0\"")
    prefix = table.get("prefix", "routeway:")
    if not isinstance(prefix, str):
        raise ConfigError("[shared] prefix must be a string")
    timeout = table.get("timeout_seconds", 0.25)
    if isinstance(timeout, bool) or not isinstance(timeout, (int, float)) or not 0 < timeout <= 10:
        raise ConfigError("[shared] timeout_seconds must be a number of seconds between 0 and 10")
    return SharedSettings(redis=url, prefix=prefix, timeout_seconds=float(timeout))


def _telemetry(table: Mapping[str, Any], log: Mapping[str, Any], env: Mapping[str, str]) -> TelemetrySettings:
    unknown = set(table) - {"traces", "capture_content", "content_sample_rate"}
    if unknown:
        raise ConfigError(f"[telemetry]: unknown settings {sorted(unknown)}")
    for name in ("traces", "capture_content"):
        if not isinstance(table.get(name, False), bool):
            raise ConfigError(f"[telemetry] {name} must be true or false")
    rate = table.get("content_sample_rate", 1.0)
    if isinstance(rate, bool) or not isinstance(rate, (int, float)) or not 0 <= rate <= 1:
        raise ConfigError("[telemetry] content_sample_rate must be a number from 0 to 1")
    if set(log) - {"format"}:
        raise ConfigError(f"[log]: unknown settings {sorted(set(log) - {'format'})}")
    log_format = log.get("format", env.get("ROUTEWAY_LOG_FORMAT", "text"))
    if log_format not in ("text", "json"):
        raise ConfigError(f"[log] format must be 'text' or 'json', not {log_format!r}")
    traces = bool(table.get("traces", False)) or "otlp" in env.get("OTEL_TRACES_EXPORTER", "").split(",")
    if env.get("OTEL_SDK_DISABLED", "").strip().lower() == "true":
        traces = False
    return TelemetrySettings(traces=traces, capture_content=bool(table.get("capture_content", False)),
                             content_sample_rate=float(rate), log_format=log_format)


def _connections(server: Mapping[str, Any]) -> ConnectionSettings:
    values: dict[str, Any] = {}
    for name, default in ConnectionSettings.__dataclass_fields__.items():
        if name not in server:
            continue
        value = server[name]
        kind: type[int] | type[float] = int if isinstance(default.default, int) else float
        wrong_kind = kind is int and not isinstance(value, int)
        if isinstance(value, bool) or not isinstance(value, (int, float)) or wrong_kind:
            raise ConfigError(f"[server] {name} must be a {'whole ' if kind is int else ''}number, not {value!r}")
        if value <= 0:
            raise ConfigError(f"[server] {name} must be above zero")
        values[name] = kind(value)
    return ConnectionSettings(**values)


def _byte_cap(table: Mapping[str, Any], where: str, cap: str, default: int) -> int:
    value = table.get(cap, default)
    if isinstance(value, bool) or not isinstance(value, int) or value < 1024:
        raise ConfigError(f"{where}: {cap} must be a whole number of bytes, at least 1024, not {value!r}")
    return value


def _provider(table: Mapping[str, Any], index: int) -> ProviderConfig:
    where = f"providers[{index}]"
    name = _require(table, "name", where)
    kind = _require(table, "kind", where)
    if kind == "local":
        return _local_provider(table, where)
    timeouts = Timeouts(**{k: float(v) for k, v in table.get("timeouts", {}).items()})
    policy = table.get("data_collection", "deny")
    if policy not in ("allow", "deny"):
        raise ConfigError(f"{where}: data_collection must be 'allow' or 'deny', not {policy!r}")
    base_url = str(_require(table, "base_url", where)).rstrip("/")
    if not base_url.startswith(("http://", "https://")):
        raise ConfigError(f"{where}: base_url must start with http:// or https://, not {base_url!r}")
    for header, value in dict(table.get("headers", {})).items():
        if any(c in f"{header}{value}" for c in "\r\n\0"):
            raise ConfigError(f"{where}: header {header!r} contains a line break, which would split the request")
    return ProviderConfig(
        name=name, kind=kind, base_url=base_url,
        max_answer_bytes=_byte_cap(table, where, "max_answer_bytes", MAX_ANSWER_BYTES),
        max_stream_bytes=_byte_cap(table, where, "max_stream_bytes", MAX_STREAM_BYTES),
        display_name=table.get("display_name", ""), api_key_env=table.get("api_key_env"), timeouts=timeouts,
        data_collection=policy, zdr=bool(table.get("zdr", False)), headers=dict(table.get("headers", {})),
        serves_catalog=tuple(table.get("serves_catalog", ())),
    )


_LOCAL_KEYS = {"name", "kind", "display_name", "model_path", "n_ctx", "threads", "batch", "queue_size", "extra_bufts",
               "data_collection", "zdr", "timeouts"}


def _local_provider(table: Mapping[str, Any], where: str) -> ProviderConfig:
    unknown = set(table) - _LOCAL_KEYS
    if unknown:
        raise ConfigError(f"{where}: unknown settings for kind 'local': {sorted(unknown)}")
    path = Path(str(_require(table, "model_path", where))).expanduser()
    if not path.is_file():
        raise ConfigError(f"{where}: model_path {str(path)!r} is not a file (a GGUF model)")
    values: dict[str, Any] = {}
    for key in ("n_ctx", "threads", "batch", "queue_size"):
        if key in table:
            value = table[key]
            if isinstance(value, bool) or not isinstance(value, int) or value < (0 if key == "queue_size" else 1):
                raise ConfigError(f"{where}: {key} must be a whole number{' ≥ 0' if key == 'queue_size' else ' ≥ 1'}")
            values[key] = value
    if "extra_bufts" in table:
        values["extra_bufts"] = bool(table["extra_bufts"])
    timeouts = Timeouts(**{k: float(v) for k, v in table.get("timeouts", {}).items()})
    return local_provider(str(table["name"]), LocalModelConfig(path, **values), table.get("display_name", ""),
                          timeouts=timeouts, zdr=bool(table.get("zdr", True)))


def local_provider(name: str, model: LocalModelConfig, display_name: str = "", *, timeouts: Timeouts = Timeouts(),
                   zdr: bool = True) -> ProviderConfig:
    """Prompts to a local model never leave the machine: no data collection, zero retention by default."""
    return ProviderConfig(name=name, kind="local", base_url="", display_name=display_name or name,
                          timeouts=timeouts, zdr=zdr, local=model)


def upstream_apis(value: Any, where: str) -> tuple[str, ...] | None:
    """A declared ``apis`` list: a non-empty list of UPSTREAM_APIS names."""
    if value is None:
        return None
    if not isinstance(value, list) or not value or not all(isinstance(v, str) for v in value):
        raise ConfigError(f"{where}: apis must be a non-empty list of {', '.join(UPSTREAM_APIS)}, not {value!r}")
    unknown = [v for v in value if v not in UPSTREAM_APIS]
    if unknown:
        raise ConfigError(f"{where}: unknown apis {unknown}; valid: {', '.join(UPSTREAM_APIS)}")
    return tuple(dict.fromkeys(value))


def _endpoint(table: Mapping[str, Any], index: int) -> EndpointConfig:
    where = f"endpoints[{index}]"
    params = table.get("supported_parameters")
    return EndpointConfig(
        model=_require(table, "model", where), provider=_require(table, "provider", where),
        upstream_model=table.get("upstream_model", table["model"]),
        prompt_price=_price(table.get("prompt_price"), where),
        completion_price=_price(table.get("completion_price"), where),
        input_cache_read=_price(table.get("input_cache_read"), where),
        input_cache_write=_price(table.get("input_cache_write"), where),
        context_length=table.get("context_length"), max_output=table.get("max_output"),
        quantization=table.get("quantization", "unknown"),
        supported_parameters=tuple(params) if params is not None else None, dialect=table.get("dialect"),
        extra_body=dict(table.get("extra_body", {})), max_concurrency=_cap(table.get("max_concurrency"), where),
        apis=upstream_apis(table.get("apis"), where),
    )


def _cap(value: Any, where: str) -> int | None:
    if value is None:
        return None
    if not isinstance(value, int) or isinstance(value, bool) or not 1 <= value <= 100_000:
        raise ConfigError(f"{where}: max_concurrency must be a whole number from 1 to 100,000")
    return value


def load_settings(
    config_path: Path | None = None, env: Mapping[str, str] | None = None, *, model_paths: tuple[Path, ...] = (),
    default_model: bool | None = None, **overrides: Any
) -> Settings:
    """``model_paths``: GGUF files to serve (``--model``); ``default_model`` False: never serve the default
    model (``--no-default-model``; None: ``[server] default_model``, true unless set)."""
    env = dict(os.environ if env is None else env)
    raw: dict[str, Any] = {}
    if config_path is not None:
        try:
            raw = tomllib.loads(Path(config_path).read_text())
        except FileNotFoundError:
            raise ConfigError(f"config file {config_path} does not exist") from None
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError(f"config file {config_path} is not valid TOML: {exc}") from None
    server = raw.get("server", {})
    providers = [_provider(t, i) for i, t in enumerate(raw.get("providers", []))]
    names = [p.name for p in providers]
    if len(set(names)) != len(names):
        raise ConfigError(f"providers: duplicate provider names in {names}")
    for variable, auto in ENV_PROVIDERS:
        if env.get(variable) and auto.name not in names:
            providers.append(auto)
    known = {p.name: p for p in providers}
    endpoints = [_endpoint(t, i) for i, t in enumerate(raw.get("endpoints", []))]
    for i, endpoint in enumerate(endpoints):
        if endpoint.provider not in known:
            raise ConfigError(f"endpoints[{i}]: provider '{endpoint.provider}' is not declared in [[providers]]")
        wrong_dialect = check_pair(known[endpoint.provider].kind, endpoint.dialect)  # routeway/dialects/registry.py
        if wrong_dialect is not None:
            raise ConfigError(f"endpoints[{i}]: {wrong_dialect}")
    values: dict[str, Any] = {
        "host": server.get("host", DEFAULT_HOST),
        "port": int(server.get("port", DEFAULT_PORT)),
        "data_dir": Path(server.get("data_dir", env.get("ROUTEWAY_DATA_DIR", "data"))),
        "max_body_bytes": int(server.get("max_body_bytes", DEFAULT_MAX_BODY)),
        "keepalive_seconds": float(server.get("keepalive_seconds", 2.0)),
        "durability": server.get("durability", "full"),
        "workers": server.get("workers", 1),
    }
    workers = values["workers"]
    if not isinstance(workers, int) or isinstance(workers, bool) or not 1 <= workers <= 64:
        raise ConfigError(f"[server] workers must be a whole number from 1 to 64, not {values['workers']!r}")
    values["store_url"] = _store_url(raw.get("store", {}), env)
    if values["durability"] not in ("full", "normal"):
        raise ConfigError(f"[server] durability must be 'full' or 'normal', not {values['durability']!r}")
    routing = raw.get("routing", {})
    unknown = set(routing) - set(RoutingSettings.__dataclass_fields__)
    if unknown:
        raise ConfigError(f"[routing]: unknown settings {sorted(unknown)}")
    values["routing"] = RoutingSettings(**routing)
    values["limits"] = _limits(raw.get("limits", {}))
    values["connections"] = _connections(server)
    values["shared"] = _shared(raw.get("shared", {}), env)
    values["cache"] = _cache(raw.get("cache", {}), values["shared"].redis)  # one [shared] redis, checked once
    values["telemetry"] = _telemetry(raw.get("telemetry", {}), raw.get("log", {}), env)
    values.update({k: v for k, v in overrides.items() if v is not None})
    settings = Settings(
        **values, admin_key=env.get("ROUTEWAY_ADMIN_KEY") or None, providers=tuple(providers),
        endpoints=tuple(endpoints), models=tuple(raw.get("models", [])), env=env, config_path=config_path,
    )
    if default_model is None:
        default_model = server.get("default_model", True)
        if not isinstance(default_model, bool):
            raise ConfigError("[server] default_model must be true or false")
    from routeway.local_models import with_local_models  # it builds on this module's types

    return with_local_models(settings, tuple(model_paths), default_model)
