"""Response cache hits are seen like any generation: a trace span (``routeway.cache_hit``, cost 0), the
account's destinations, and the full JSON request log line — though a hit runs no exchange."""

from __future__ import annotations

import json
import uuid
from pathlib import Path

import anthropic
import httpx
import pytest

from tests.conftest import MockUpstream, start_gateway, stop_gateway, write_config
from tests.support.otlp_receiver import Receiver

pytestmark = pytest.mark.e2e
TRACE_ID = "4bf92f3577b34da6a3ce929d0e0e4736"
CLIENT_SPAN = "00f067aa0ba902b7"
ON = {"X-OpenRouter-Cache": "true"}


def test_a_hit_gets_a_span_an_export_and_a_full_log_line(upstream: MockUpstream, tmp_path: Path) -> None:
    receiver = Receiver().start()
    gw = start_gateway(write_config(tmp_path / "routeway.toml", upstream.base_url, '\n[log]\nformat = "json"\n'
                                    '\n[telemetry]\ncapture_content = true\n'),
                       tmp_path / "data", {"OTEL_TRACES_EXPORTER": "otlp", "OTEL_EXPORTER_OTLP_ENDPOINT": receiver.root,
                                           "OTEL_BSP_SCHEDULE_DELAY": "50"})
    try:
        account = gw.account()
        made = httpx.post(gw.api + "/observability/destinations", timeout=30,
                          headers={"authorization": f"Bearer {account.management_key}"},
                          json={"name": "hook", "type": "webhook", "config": {"endpoint": receiver.root + "/hook"}})
        assert made.status_code == 201, made.text
        text = f"observe {uuid.uuid4().hex}"
        body = {"model": "test/echo", "messages": [{"role": "user", "content": text}]}
        miss = account.chat(body, headers=ON)
        hit = account.chat(body, headers={**ON, "x-request-id": "hit-req-1",
                                          "traceparent": f"00-{TRACE_ID}-{CLIENT_SPAN}-01"})
        assert hit.headers["x-openrouter-cache-status"] == "HIT"
        hit_id = hit.json()["id"]
        claude = anthropic.Anthropic(base_url=gw.url, api_key=account.api_key, max_retries=0, default_headers=ON)
        request = {"model": "test/echo", "max_tokens": 50, "messages": [{"role": "user", "content": text + " m"}]}
        claude.messages.create(**request)
        messages_hit = claude.messages.with_raw_response.create(**request)
        assert messages_hit.headers["x-openrouter-cache-status"] == "HIT"
        messages_id = messages_hit.parse().id

        span = receiver.wait_for(lambda: next((s for s in receiver.spans if s.attributes.get(
            "routeway.generation_id") == hit_id and s.trace_id == TRACE_ID), None), "the hit's span")
        assert span.parent_span_id == CLIENT_SPAN and span.attributes["routeway.cache_hit"] is True
        assert span.attributes["routeway.cost_nano_usd"] == 0 and span.attributes["routeway.api"] == "chat"
        assert span.attributes["routeway.cache_source_id"] == miss.json()["id"]
        assert span.attributes["routeway.cache_saved_nano_usd"] > 0
        assert text in span.attributes["gen_ai.input.messages"]  # the operator asked for content
        assert hit.json()["choices"][0]["message"]["content"] in span.attributes["gen_ai.output.messages"]
        messages_span = receiver.wait_for(lambda: next((s for s in receiver.spans if s.attributes.get(
            "routeway.generation_id") == messages_id), None), "the Messages hit's span")
        assert messages_span.attributes["routeway.api"] == "messages"
        assert messages_span.attributes["routeway.cache_hit"] is True

        receiver.wait_for(lambda: all(any(path == "/hook" and generation.encode() in sent
                                          for path, _, sent in receiver.bodies)
                                      for generation in (hit_id, messages_id)), "the hits' exports")
        hook_span = next(s for s in receiver.spans if s.attributes.get("gen_ai.response.id") == hit_id
                         and s.attributes.get("routeway.cost_usd") is not None and s.span_id != span.span_id)
        assert hook_span.trace_id == TRACE_ID and hook_span.attributes["routeway.cache_hit"] is True
        assert hook_span.attributes["routeway.cost_nano_usd"] == 0 and text in hook_span.attributes[
            "gen_ai.output.messages"]
    finally:
        stop_gateway(gw)
        receiver.stop()
    log = tmp_path / f"routeway-{gw.url.rsplit(':', 1)[1]}.log"
    lines = [json.loads(line) for line in log.read_text().splitlines() if line.startswith("{")]
    hit_lines = [line for line in lines if line.get("message") == "request" and line.get("request_id") == "hit-req-1"]
    assert len(hit_lines) == 1
    line = hit_lines[0]
    assert line["generation_id"] == hit_id and line["cache_hit"] is True and line["cost_nano"] == 0
    assert line["model"] == "test/echo" and line["status"] == 200 and line["trace_id"] == TRACE_ID
