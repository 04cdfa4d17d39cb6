"""Request ids and W3C trace context as clients send them, destination sampling and filters, and what the
destinations API shows back of a destination's secrets."""

from __future__ import annotations

from pathlib import Path

import msgspec
import pytest

from routeway.api.destinations import REDACTED, view
from routeway.config import ConfigError, TelemetrySettings, load_settings
from routeway.observe.broadcast import BATCH, QUEUE, QUEUE_BYTES, Destination
from routeway.observe.exports import Export
from routeway.observe.ids import request_id, traceparent, tracestate, upstream_headers
from routeway.observe.summary import Finished

PARENT = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"


def test_traceparent_is_continued_only_when_well_formed() -> None:
    assert traceparent(PARENT) == PARENT
    assert traceparent(PARENT.upper()) == PARENT  # hex is read case-blind, written lower
    assert traceparent("01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-later") is not None  # a future version
    for bad in ("00-" + "0" * 32 + "-00f067aa0ba902b7-01", "00-4bf92f3577b34da6a3ce929d0e0e4736-" + "0" * 16 + "-01",
                "ff" + PARENT[2:], PARENT + "-extra", PARENT[:-1], PARENT + "\r\nx-evil: 1", "", None):
        assert traceparent(bad) is None, bad
    assert tracestate("a=1,b=2") == "a=1,b=2" and tracestate("a=1\r\nx: y") is None


def test_request_ids_are_kept_when_safe_and_made_otherwise() -> None:
    assert request_id("req-1.2:3/4+5=6@7_8") == "req-1.2:3/4+5=6@7_8"
    for bad in (None, "", "has space", "a\r\nx-evil: 1", "x" * 129, "é"):
        made = request_id(bad)
        assert made != bad and len(made) == 32 and int(made, 16) >= 0
    assert request_id(None) != request_id(None)
    assert upstream_headers("r1", PARENT, "a=1") == f"x-request-id: r1\r\ntraceparent: {PARENT}\r\ntracestate: a=1\r\n".encode()
    assert upstream_headers(None, None) == b"" and upstream_headers("r1", None, "a=1") == b"x-request-id: r1\r\n"


def _row(**changes: object) -> dict[str, object]:
    row: dict[str, object] = {
        "id": "dst-1", "account_id": "acct", "name": "n", "type": "webhook", "sampling_rate": 1.0, "privacy_mode": 0,
        "api_key_hashes": None, "enabled": 1, "created_at": 1, "updated_at": None,
        "config": msgspec.json.encode({"endpoint": "http://127.0.0.1:1/hook",
                                       "headers": {"Authorization": "Bearer s3cret-value", "X-Team": "ml"}}).decode()}
    row.update(changes)
    return row


def _finished(generation: str, session: str | None = None, key: str = "k1") -> Finished:
    return Finished("r", generation, "acct", key, "m", "m", "p", 200, 0, 1, 1, "stop", False, False, 0, 1, 1, None,
                    session, None)


def test_sampling_keeps_whole_sessions_and_key_filters_apply() -> None:
    half = Destination.from_row(_row(sampling_rate=0.5))
    kept = [half.wants(_finished(f"gen-{i}")) for i in range(2000)]
    assert 800 < sum(kept) < 1200  # about half, drawn from a hash of the generation id
    for session in ("s1", "s2", "s3", "s4"):
        assert len({half.wants(_finished(f"gen-{i}", session)) for i in range(50)}) == 1  # a session is whole
    only = Destination.from_row(_row(api_key_hashes='["k2"]'))
    assert not only.wants(_finished("g", key="k1")) and only.wants(_finished("g", key="k2"))


def test_the_api_never_shows_a_destinations_secrets() -> None:
    shown = view(_row(), None)
    assert shown["config"]["headers"] == {"Authorization": REDACTED, "X-Team": REDACTED}
    assert "s3cret" not in msgspec.json.encode(shown).decode()
    langfuse = view(_row(type="langfuse", config=msgspec.json.encode(
        {"endpoint": "http://h", "public_key": "pk-1", "secret_key": "sk-secret-1"}).decode()), None)
    assert langfuse["config"]["public_key"] == "pk-1" and langfuse["config"]["secret_key"] == REDACTED
    # and a destination's own secrets are taken out of what it says when it fails
    assert "s3cret-value" not in Destination.from_row(_row()).redact("refused: Bearer s3cret-value")


def test_a_destination_that_is_down_holds_a_bounded_queue_and_keeps_the_newest() -> None:
    destination = Destination.from_row(_row())
    big = "x" * (1024 * 1024)
    for i in range(100):  # 100 exchanges with 1 MiB completions each, nothing sent
        destination.enqueue(Export(_finished(f"gen-{i}"), "0" * 32, None, None, big))
    assert destination.queued_bytes <= QUEUE_BYTES and destination.dropped == 100 - len(destination.queue) > 0
    assert destination.queue[-1].finished.generation_id == "gen-99"  # the oldest went first
    small = Destination.from_row(_row())
    for i in range(QUEUE + 5):
        small.enqueue(Export(_finished(f"gen-{i}"), "0" * 32, None, None, ""))
    assert len(small.queue) == QUEUE and small.dropped == 5
    batch = small.take()
    assert len(batch) == BATCH and small.queued_bytes == sum(e.size for e in small.queue)


def test_telemetry_settings_follow_the_standard_variables_and_refuse_bad_values(tmp_path: Path) -> None:
    def load(text: str = "", **env: str) -> TelemetrySettings:
        config = tmp_path / "routeway.toml"
        config.write_text(text)
        return load_settings(config, env={**env}, default_model=False).telemetry

    assert load() == TelemetrySettings()  # off, no content, text logs
    assert load(OTEL_TRACES_EXPORTER="otlp").traces and load("[telemetry]\ntraces = true\n").traces
    assert not load("[telemetry]\ntraces = true\n", OTEL_SDK_DISABLED="true").traces
    assert load('[log]\nformat = "json"\n').log_format == "json" == load(ROUTEWAY_LOG_FORMAT="json").log_format
    for bad, says in (("[telemetry]\ncontent_sample_rate = 2\n", "content_sample_rate"),
                      ('[telemetry]\ntraces = "yes"\n', "traces"), ("[telemetry]\nspans = true\n", "unknown"),
                      ('[log]\nformat = "xml"\n', "format")):
        with pytest.raises(ConfigError, match=says):
            load(bad)
