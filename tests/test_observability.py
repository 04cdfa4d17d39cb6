"""Observability end to end: OpenTelemetry traces as a real OTLP receiver decodes them (HTTP/protobuf and
gRPC), request ids and W3C trace context reaching the upstream, JSON request logs, and the per-account
destinations (OTLP collector, webhook, Langfuse) — whose being down or slow changes nothing for clients."""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.conftest import Gateway, MockUpstream, start_gateway, stop_gateway, write_config
from tests.support.otlp_receiver import GrpcReceiver, Receiver, Span, eventually

pytestmark = pytest.mark.e2e  # every test here starts gateways (some through _gateway)

TRACE_ID = "4bf92f3577b34da6a3ce929d0e0e4736"
CLIENT_SPAN = "00f067aa0ba902b7"
TRACEPARENT = f"00-{TRACE_ID}-{CLIENT_SPAN}-01"
FAST_EXPORT = {"OTEL_BSP_SCHEDULE_DELAY": "50"}  # the SDK's batch delay (ms): spans leave within a test's wait


@pytest.fixture(scope="module")
def receiver() -> Iterator[Receiver]:
    server = Receiver().start()
    yield server
    server.stop()


def _gateway(upstream: MockUpstream, tmp: Path, extra: str = "", env: dict[str, str] | None = None) -> Gateway:
    return start_gateway(write_config(tmp / "routeway.toml", upstream.base_url, extra), tmp / "data", env)


@pytest.fixture(scope="module")
def traced(upstream: MockUpstream, receiver: Receiver, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Gateway]:
    """Traces switched on by the standard variable alone, exported over OTLP/HTTP protobuf."""
    gw = _gateway(upstream, tmp_path_factory.mktemp("traced"), env={
        "OTEL_TRACES_EXPORTER": "otlp", "OTEL_EXPORTER_OTLP_ENDPOINT": receiver.root, **FAST_EXPORT})
    yield gw
    stop_gateway(gw)


def _trace(receiver: Receiver | GrpcReceiver, generation_id: str) -> tuple[Span, list[Span]]:
    """The request's server span and its attempt spans, once all of them arrived."""
    def complete() -> tuple[Span, list[Span]] | None:
        roots = [s for s in receiver.spans if s.attributes.get("routeway.generation_id") == generation_id]
        if not roots:
            return None
        children = [s for s in receiver.spans if s.parent_span_id == roots[0].span_id]
        return (roots[0], children) if len(children) == roots[0].attributes.get("routeway.attempts") else None

    return eventually(complete, f"the spans of {generation_id}")  # type: ignore[no-any-return]


def _upstream_calls(upstream: MockUpstream, text: str) -> list[dict[str, str]]:
    """The headers of each upstream call whose messages hold ``text``, in order."""
    calls = [{k.lower(): v for k, v in headers.items()}
             for body, headers in zip(upstream.requests, upstream.request_headers, strict=True)
             if any(text in str(m.get("content")) for m in body.get("messages", []))]
    assert calls, f"the upstream never got {text!r}"
    return calls


def _upstream_headers(upstream: MockUpstream, text: str) -> dict[str, str]:
    return _upstream_calls(upstream, text)[-1]


def test_a_fallback_is_one_trace_with_gen_ai_attributes_and_a_span_per_attempt(
        traced: Gateway, receiver: Receiver, upstream: MockUpstream) -> None:
    account = traced.account()
    answer = account.chat({"model": "test/fallback", "provider": {"order": ["mock", "mock-b"]}, "messages": [{"role": "user", "content": "trace me"}]},
                          headers={"traceparent": TRACEPARENT})
    assert answer.status_code == 200, answer.text
    body = answer.json()
    root, attempts = _trace(receiver, body["id"])

    assert root.trace_id == TRACE_ID and root.parent_span_id == CLIENT_SPAN  # continues the client's trace
    assert root.name == "chat test/fallback" and root.kind == 2 and root.service == "routeway"  # SERVER
    a = root.attributes
    assert a["gen_ai.operation.name"] == "chat"
    assert a["gen_ai.request.model"] == "test/fallback" and a["gen_ai.response.model"] == "test/fallback"
    assert a["gen_ai.provider.name"] == "mock-b"
    assert a["gen_ai.usage.input_tokens"] == body["usage"]["prompt_tokens"]
    assert a["gen_ai.usage.output_tokens"] == body["usage"]["completion_tokens"]
    assert a["gen_ai.response.finish_reasons"] == ["stop"]
    assert a["routeway.cost_usd"] == pytest.approx(body["usage"]["cost"])
    assert a["routeway.request_id"] == answer.headers["x-request-id"]
    assert "gen_ai.server.time_to_first_token" in a and "gen_ai.first_token" in root.events
    assert "gen_ai.input.messages" not in a and "gen_ai.output.messages" not in a  # privacy by default

    failed, answering = sorted(attempts, key=lambda s: s.attributes["routeway.attempt"])
    assert failed.kind == answering.kind == 3  # CLIENT
    assert failed.attributes["gen_ai.provider.name"] == "mock" and failed.status_code == 2
    assert failed.attributes["http.response.status_code"] == 500 and failed.attributes["routeway.fallback"] is False
    assert answering.attributes["gen_ai.provider.name"] == "mock-b" and answering.status_code != 2
    assert answering.attributes["routeway.fallback"] is True and "gen_ai.first_token" in answering.events

    to_failed, to_answering = _upstream_calls(upstream, "trace me")  # each attempt's own context went upstream
    assert to_failed["traceparent"] == f"00-{TRACE_ID}-{failed.span_id}-01"
    assert to_answering["traceparent"] == f"00-{TRACE_ID}-{answering.span_id}-01"
    assert to_failed["x-request-id"] == to_answering["x-request-id"] == answer.headers["x-request-id"]


def test_a_stream_is_traced_with_its_time_to_first_token(traced: Gateway, receiver: Receiver) -> None:
    account = traced.account()
    with httpx.stream("POST", traced.api + "/chat/completions", timeout=30,
                      headers={"authorization": f"Bearer {account.api_key}"},
                      json={"model": "test/echo", "stream": True,
                            "messages": [{"role": "user", "content": "stream me"}]}) as answer:
        generation_id = answer.headers["x-generation-id"]
        lines = [line for line in answer.iter_lines() if line.startswith("data: {")]
    usage = json.loads(lines[-1][6:])["usage"]
    root, attempts = _trace(receiver, generation_id)
    assert root.attributes["gen_ai.request.stream"] is True and len(attempts) == 1
    assert root.attributes["gen_ai.usage.output_tokens"] == usage["completion_tokens"]
    assert 0 < root.attributes["gen_ai.server.time_to_first_token"] < 30


def test_the_messages_api_is_traced_by_the_same_core(traced: Gateway, receiver: Receiver) -> None:
    import anthropic as anthropic_sdk

    account = traced.account()
    client = anthropic_sdk.Anthropic(base_url=traced.url, api_key=account.api_key, max_retries=0)
    message = client.messages.create(model="test/echo", max_tokens=50,
                                     messages=[{"role": "user", "content": "messages traced"}])
    spans = receiver.wait_for(lambda: [s for s in receiver.spans if s.attributes.get("routeway.api") == "messages"
                                       and s.kind == 2], "the Messages request's span")
    a = spans[-1].attributes
    assert a["gen_ai.request.model"] == "test/echo" and a["gen_ai.provider.name"] == "mock"
    assert a["gen_ai.usage.output_tokens"] == message.usage.output_tokens


def test_a_failed_request_is_an_error_span(traced: Gateway, receiver: Receiver) -> None:
    account = traced.account()
    answer = account.chat({"model": "test/fail-500", "messages": [{"role": "user", "content": "x"}]})
    assert answer.status_code == 502
    spans = receiver.wait_for(lambda: [s for s in receiver.spans if s.attributes.get("routeway.request_id")
                                       == answer.headers["x-request-id"]], "the failed request's span")
    root = next(s for s in spans if s.kind == 2)
    assert root.status_code == 2 and root.attributes["http.response.status_code"] == 502
    assert root.attributes["error.type"] == "provider_unavailable"


def test_grpc_export_with_content_captured_when_the_operator_asks(upstream: MockUpstream, tmp_path: Path) -> None:
    receiver = GrpcReceiver().start()
    gw = _gateway(upstream, tmp_path, "\n[telemetry]\ntraces = true\ncapture_content = true\n", env={
        "OTEL_EXPORTER_OTLP_PROTOCOL": "grpc", "OTEL_EXPORTER_OTLP_ENDPOINT": f"http://127.0.0.1:{receiver.port}",
        "OTEL_EXPORTER_OTLP_INSECURE": "true", **FAST_EXPORT})
    try:
        answer = gw.account().chat({"model": "test/echo", "messages": [{"role": "user", "content": "say grpc"}]})
        assert answer.status_code == 200
        root, attempts = _trace(receiver, answer.json()["id"])
        assert len(attempts) == 1 and root.attributes["gen_ai.provider.name"] == "mock"
        assert "say grpc" in root.attributes["gen_ai.input.messages"]
        assert answer.json()["choices"][0]["message"]["content"] in root.attributes["gen_ai.output.messages"]
    finally:
        stop_gateway(gw)
        receiver.stop()


def _streamed(text: str) -> tuple[str, dict[str, Any]]:
    """A stream's text and its usage chunk's counts."""
    chunks = [json.loads(line[6:]) for line in text.splitlines() if line.startswith("data: {")]
    words = "".join(c["choices"][0]["delta"].get("content") or "" for c in chunks if c["choices"])
    return words, chunks[-1]["usage"]


def test_a_collector_that_is_down_changes_no_answer(upstream: MockUpstream, tmp_path: Path,
                                                    gateway: Gateway) -> None:  # the plain gateway: no traces
    """The SDK exports from its own thread: with nothing listening at the endpoint, answers are as without."""
    gw = _gateway(upstream, tmp_path, env={"OTEL_TRACES_EXPORTER": "otlp",
                                           "OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:9", **FAST_EXPORT})
    try:
        request = {"model": "test/echo", "messages": [{"role": "user", "content": "collector down"}]}
        for stream in (False, True):
            traced, plain = gw.account().chat({**request, "stream": stream}), gateway.account().chat(
                {**request, "stream": stream})
            assert traced.status_code == plain.status_code == 200
            if stream:
                assert _streamed(traced.text) == _streamed(plain.text)
            else:
                assert traced.json()["choices"] == plain.json()["choices"]
                assert traced.json()["usage"] == plain.json()["usage"]
        # traces were on all along: the traced requests' upstream calls carried routeway's own trace context
        traced_calls = [h for h in _upstream_calls(upstream, "collector down") if "traceparent" in h]
        assert len(traced_calls) == 2 and all(h["x-request-id"] for h in traced_calls)
    finally:
        stop_gateway(gw)


def test_with_traces_off_no_opentelemetry_code_is_loaded(tmp_path: Path) -> None:
    """Off by default: the server's whole request path runs without importing the SDK (zero cost)."""
    script = (
        "import sys, asyncio\n"
        "from routeway.config import Settings\n"
        "from routeway.services import Services\n"
        "import routeway.app, routeway.exchange.stream, routeway.exchange.whole\n"
        f"s = Services.build(Settings(data_dir={str(tmp_path)!r}, admin_key='x'))\n"
        "print(s.tracing is None, s.watchers == [], any(m.startswith('opentelemetry') for m in sys.modules))\n")
    import subprocess
    import sys

    env = {**os.environ, "PYTHONPATH": str(Path(__file__).parents[1] / "src")}
    env.pop("OTEL_TRACES_EXPORTER", None)
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, env=env, check=True)
    assert done.stdout.split() == ["True", "True", "False"]


# ---- request ids and trace context without tracing ------------------------------------------------
def test_request_ids_are_returned_and_go_upstream_with_the_clients_traceparent(
        gateway: Gateway, upstream: MockUpstream) -> None:
    account = gateway.account()
    given = account.chat({"model": "test/echo", "messages": [{"role": "user", "content": "rid given"}]},
                         headers={"x-request-id": "req-abc.123", "traceparent": TRACEPARENT})
    assert given.status_code == 200 and given.headers["x-request-id"] == "req-abc.123"
    sent = _upstream_headers(upstream, "rid given")
    assert sent["x-request-id"] == "req-abc.123" and sent["traceparent"] == TRACEPARENT

    made = account.chat({"model": "test/echo", "messages": [{"role": "user", "content": "rid made"}]},
                        headers={"x-request-id": "has space\tand tab", "traceparent": "00-" + "0" * 32 + "-x-01"})
    rid = made.headers["x-request-id"]
    assert len(rid) == 32 and int(rid, 16) >= 0  # a new id, not the malformed one
    sent = _upstream_headers(upstream, "rid made")
    assert sent["x-request-id"] == rid and "traceparent" not in sent  # an invalid traceparent is dropped

    refused = httpx.post(gateway.api + "/chat/completions", json={}, headers={"x-request-id": "err-1"})
    assert refused.status_code == 401 and refused.headers["x-request-id"] == "err-1"  # errors carry it too


# ---- JSON request logs ------------------------------------------------------------------------------
def test_json_logs_have_one_line_per_request_with_its_fields(upstream: MockUpstream, tmp_path: Path) -> None:
    gw = _gateway(upstream, tmp_path, '\n[log]\nformat = "json"\n')
    try:
        account = gw.account()
        ok = account.chat({"model": "test/echo", "messages": [{"role": "user", "content": "log me"}]},
                          headers={"x-request-id": "log-req-1"})
        bad = account.chat({"model": "test/fail-500", "messages": [{"role": "user", "content": "x"}]},
                           headers={"x-request-id": "log-req-2"})
        assert ok.status_code == 200 and bad.status_code == 502
        refused = httpx.post(gw.api + "/chat/completions", json={}, headers={"x-request-id": "log-req-3"})
        models = httpx.get(gw.api + "/models", headers={"x-request-id": "log-req-4"})
        assert refused.status_code == 401 and models.status_code == 200
    finally:
        stop_gateway(gw)
    log = tmp_path / f"routeway-{gw.url.rsplit(':', 1)[1]}.log"
    lines = [json.loads(line) for line in log.read_text().splitlines() if line.startswith("{")]
    request_lines = [line for line in lines if line.get("message") == "request"]
    requests = {line["request_id"]: line for line in request_lines}
    assert len(request_lines) == len(requests)  # one line per request: an exchange's, or else the API layer's
    assert requests["log-req-3"]["status"] == 401 and requests["log-req-3"]["path"] == "/api/v1/chat/completions"
    assert requests["log-req-4"]["status"] == 200 and requests["log-req-4"]["method"] == "GET"
    first, second = requests["log-req-1"], requests["log-req-2"]
    body = ok.json()
    assert first["generation_id"] == body["id"] and first["model"] == "test/echo" and first["provider"] == "mock"
    assert first["status"] == 200 and first["cost_usd"] == pytest.approx(body["usage"]["cost"])
    assert first["key_hash"] and first["latency_ms"] >= 0 and first["tokens_completion"] == body["usage"]["completion_tokens"]
    assert second["status"] == 502 and second["cost_nano"] == 0 and second["error"]
    assert all({"ts", "level", "logger", "message"} <= set(line) for line in lines)  # every record is JSON


# ---- per-account destinations -----------------------------------------------------------------------
def _destination(gw: Gateway, key: str, body: dict[str, Any]) -> httpx.Response:
    return httpx.post(gw.api + "/observability/destinations", json=body, timeout=30,
                      headers={"authorization": f"Bearer {key}"})


def test_destinations_get_each_accounts_generations_and_never_show_their_secrets(
        upstream: MockUpstream, tmp_path: Path, receiver: Receiver) -> None:
    gw = _gateway(upstream, tmp_path)
    try:
        mine, other = gw.account(name="mine"), gw.account(name="other")
        secret = "Bearer hook-secret-0123456789"
        made = [_destination(gw, mine.management_key, body) for body in (
            {"name": "collector", "type": "otel-collector", "config": {"endpoint": receiver.root}},
            {"name": "hook", "type": "webhook", "config": {"endpoint": receiver.root + "/hook",
                                                          "headers": {"Authorization": secret}}},
            {"name": "langfuse", "type": "langfuse", "privacy_mode": True,
             "config": {"endpoint": receiver.root, "public_key": "pk-lf-test", "secret_key": "sk-lf-test"}})]
        assert [m.status_code for m in made] == [201, 201, 201], [m.text for m in made]
        listed = httpx.get(gw.api + "/observability/destinations",
                           headers={"authorization": f"Bearer {mine.management_key}"})
        assert listed.status_code == 200 and len(listed.json()["data"]) == 3
        for text in (listed.text, *(m.text for m in made)):
            assert "hook-secret" not in text and "sk-lf-test" not in text
        hook = next(d for d in listed.json()["data"] if d["name"] == "hook")
        assert hook["config"]["headers"] == {"Authorization": "[REDACTED]"}
        # another account neither sees nor changes them
        foreign = httpx.get(gw.api + f"/observability/destinations/{hook['id']}",
                            headers={"authorization": f"Bearer {other.management_key}"})
        assert foreign.status_code == 404
        assert httpx.get(gw.api + "/observability/destinations",
                         headers={"authorization": f"Bearer {other.management_key}"}).json()["data"] == []

        answer = mine.chat({"model": "test/fallback", "provider": {"order": ["mock", "mock-b"]}, "messages": [{"role": "user", "content": "broadcast me"}]},
                           headers={"traceparent": TRACEPARENT})
        silent = other.chat({"model": "test/echo", "messages": [{"role": "user", "content": "not mine"}]})
        assert answer.status_code == silent.status_code == 200
        body, generation = answer.json(), answer.json()["id"]

        def spans(path: str) -> list[Span]:
            hits = [i for i, (p, _, _) in enumerate(receiver.bodies) if p == path and generation.encode() in
                    receiver.bodies[i][2]]
            return [s for s in receiver.spans if s.trace_id == TRACE_ID] if hits else []

        receiver.wait_for(lambda: spans("/v1/traces") and spans("/hook"), "the collector's and the webhook's batches")
        root = next(s for s in receiver.spans if s.attributes.get("gen_ai.response.id") == generation)
        assert root.parent_span_id == CLIENT_SPAN and root.attributes["gen_ai.provider.name"] == "mock-b"
        assert root.attributes["gen_ai.usage.output_tokens"] == body["usage"]["completion_tokens"]
        assert root.attributes["routeway.cost_usd"] == pytest.approx(body["usage"]["cost"])
        assert "broadcast me" in root.attributes["gen_ai.input.messages"]  # privacy_mode off: content goes
        attempts = [s for s in receiver.spans if s.parent_span_id == root.span_id]
        assert sorted(s.status_code for s in attempts) == [1, 2]  # the failed attempt and the answering one
        hook_headers = next(h for p, h, b in receiver.bodies if p == "/hook" and generation.encode() in b)
        assert hook_headers["Authorization"] == secret

        events = receiver.wait_for(lambda: [e for e in receiver.langfuse if e["body"].get("id") == generation
                                            or e["body"].get("traceId") == TRACE_ID], "Langfuse's events")
        receiver.wait_for(lambda: len([e for e in receiver.langfuse if e["body"].get("traceId") == TRACE_ID
                                       or e["body"].get("id") == TRACE_ID]) >= 2, "both Langfuse events")
        gen_event = next(e for e in receiver.langfuse if e["type"] == "generation-create"
                         and e["body"]["id"] == generation)["body"]
        assert gen_event["model"] == "test/fallback" and gen_event["traceId"] == TRACE_ID
        assert gen_event["usageDetails"] == {"input": body["usage"]["prompt_tokens"],
                                             "output": body["usage"]["completion_tokens"]}
        assert gen_event["costDetails"]["total"] == pytest.approx(body["usage"]["cost"])
        assert "input" not in gen_event and "output" not in gen_event and events  # privacy_mode: no content
        everything = b"".join(b for _, _, b in receiver.bodies) + json.dumps(receiver.langfuse).encode()
        assert b"not mine" not in everything and silent.json()["id"].encode() not in everything
    finally:
        stop_gateway(gw)


def test_bad_destinations_are_refused_with_a_clear_400(gateway: Gateway) -> None:
    account = gateway.account()
    for body, param in (
        ({"name": "x", "type": "webhook", "config": {"endpoint": "ftp://example.com"}}, "config.endpoint"),
        ({"name": "x", "type": "langfuse", "config": {"endpoint": "http://127.0.0.1:1"}}, "config"),
        ({"name": "x", "type": "webhook", "config": {"endpoint": "http://h", "headers": {"X": "a\r\nb: c"}}},
         "config.headers"),
        ({"name": "x", "type": "kafka", "config": {"endpoint": "http://h"}}, "type"),
        ({"name": "x", "type": "webhook", "config": {"endpoint": "http://h"}, "sampling_rate": 2}, "sampling_rate"),
    ):
        refused = _destination(gateway, account.management_key, body)
        assert refused.status_code == 400, (body, refused.text)
        assert refused.json()["error"]["metadata"]["param"] == param, refused.text
    api_key = _destination(gateway, account.api_key, {"name": "x", "type": "webhook", "config": {"endpoint": "http://h"}})
    assert api_key.status_code == 403


def test_a_destination_down_or_slow_changes_nothing_for_the_client(upstream: MockUpstream, tmp_path: Path) -> None:
    down, slow, flaky = Receiver().start(), Receiver().start(), Receiver().start()
    down.mode, slow.mode, flaky.fail_first = "down", "hold", 2
    gw = _gateway(upstream, tmp_path)
    try:
        watched, plain = gw.account(name="watched"), gw.account(name="plain")
        for name, server in (("down", down), ("slow", slow), ("flaky", flaky)):
            made = _destination(gw, watched.management_key, {"name": name, "type": "webhook",
                                                             "config": {"endpoint": server.root + "/hook"}})
            assert made.status_code == 201
        closed = _destination(gw, watched.management_key, {"name": "nobody", "type": "otel-collector",
                                                           "config": {"endpoint": "http://127.0.0.1:9"}})
        assert closed.status_code == 201
        request = {"model": "test/echo", "messages": [{"role": "user", "content": "same answer"}], "seed": 1}
        answers = []
        for account in (watched, plain, watched, plain):
            answer = account.chat(request)
            assert answer.status_code == 200, answer.text
            answers.append(answer.json())
        slow.wait_for(lambda: slow.held, "the slow destination's first send")
        # while the slow destination holds its connection, requests are answered as before
        for _ in range(3):
            assert watched.chat(request).status_code == 200
        first = [(a["choices"], a["usage"]["prompt_tokens"], a["usage"]["completion_tokens"], a["usage"]["cost"])
                 for a in answers]
        assert first[0] == first[1] == first[2] == first[3]
        charged = [row[2] for row in watched.generations()], [row[2] for row in plain.generations()]
        assert len(charged[0]) == 5 and len(charged[1]) == 2 and len(set(charged[0] + charged[1])) == 1  # same charge
        # the flaky one gets everything after its refusals (retried with backoff); the down one is retrying
        flaky.wait_for(lambda: sum(b.count(b'"gen_ai.response.id"') for _, _, b in flaky.bodies) >= 5,
                       "the retried batches", seconds=30)
        assert flaky.refused == 2
        down.wait_for(lambda: down.refused >= 2, "the down destination's retries")

        def status() -> dict[str, Any]:
            listed = httpx.get(gw.api + "/observability/destinations",
                               headers={"authorization": f"Bearer {watched.management_key}"}).json()["data"]
            return {d["name"]: d["status"] for d in listed}

        eventually(lambda: status()["flaky"]["sent"] >= 5, "the flaky destination's deliveries counted")
        assert status()["nobody"]["last_error"].startswith("cannot deliver")
        assert status()["down"]["last_error"] == "answered HTTP 503" and status()["down"]["sent"] == 0
    finally:
        slow.release()
        stop_gateway(gw)
        for server in (down, slow, flaky):
            server.stop()


def test_a_destination_can_be_changed_paused_and_deleted(gateway: Gateway, receiver: Receiver) -> None:
    account = gateway.account()
    auth = {"authorization": f"Bearer {account.management_key}"}
    paused = _destination(gateway, account.management_key, {
        "name": "paused", "type": "webhook", "config": {"endpoint": receiver.root + "/hook",
                                                       "headers": {"X-Api-Key": "first-secret-123"}}}).json()["data"]
    active = _destination(gateway, account.management_key, {
        "name": "active", "type": "otel-collector", "privacy_mode": True,
        "config": {"endpoint": receiver.root}}).json()["data"]
    url = gateway.api + f"/observability/destinations/{paused['id']}"
    changed = httpx.patch(url, headers=auth, json={"name": "renamed", "enabled": False, "sampling_rate": 0.5,
                                                   "config": {"endpoint": receiver.root + "/hook",
                                                              "headers": {"X-Other": "second-secret-456"}}})
    assert changed.status_code == 200, changed.text
    data = changed.json()["data"]
    assert data["name"] == "renamed" and data["enabled"] is False and data["sampling_rate"] == 0.5
    assert data["config"]["headers"] == {"X-Other": "[REDACTED]"} and data["status"] is None
    assert "second-secret" not in changed.text

    answer = account.chat({"model": "test/echo", "messages": [{"role": "user", "content": "only active"}]})
    generation = answer.json()["id"].encode()
    receiver.wait_for(lambda: any(p == "/v1/traces" and generation in b for p, _, b in receiver.bodies),
                      "the active destination's batch")
    # both destinations are flushed in the same pass: the paused one would have had it by now
    assert not any(p == "/hook" and generation in b for p, _, b in receiver.bodies)
    assert not any(b"only active" in b for _, _, b in receiver.bodies)  # privacy_mode: no content

    assert httpx.delete(url, headers=auth).json() == {"deleted": True}
    assert httpx.get(url, headers=auth).status_code == 404
    assert httpx.patch(url, headers=auth, json={"enabled": True}).status_code == 404
    listed = httpx.get(gateway.api + "/observability/destinations", headers=auth).json()["data"]
    assert [d["id"] for d in listed] == [active["id"]]
    eventually(lambda: httpx.get(gateway.api + "/observability/destinations", headers=auth).json()["data"][0]
               ["status"]["sent"] >= 1, "the active destination's delivery counted")
