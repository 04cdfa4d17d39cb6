"""A developer's shell full of real provider keys must not make the tests call real providers: every
process the tests start sees none of the variables config.py picks providers up from."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest

from routeway.config import ENV_PROVIDERS

from tests.conftest import PROVIDER_KEY_VARIABLES, start_gateway, stop_gateway, write_config
from tests.support.upstream import MockUpstream


def test_the_scrub_list_is_every_environment_provider() -> None:
    assert set(PROVIDER_KEY_VARIABLES) == {variable for variable, _ in ENV_PROVIDERS}
    assert {"OPENROUTER_API_KEY", "ANTHROPIC_API_KEY", "OPENAI_API_KEY"} <= set(PROVIDER_KEY_VARIABLES)


def test_no_provider_from_the_environment_reaches_a_test_gateway(
        upstream: MockUpstream, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    for variable in PROVIDER_KEY_VARIABLES:
        monkeypatch.setenv(variable, "sk-real-looking-key-from-the-shell")
    gateway = start_gateway(write_config(tmp_path / "routeway.toml", upstream.base_url), tmp_path / "data")
    try:
        slugs = {p["slug"] for p in httpx.get(gateway.api + "/providers", timeout=10).json()["data"]}
    finally:
        stop_gateway(gateway)
    assert slugs == {"mock", "mock-b", "mock-t"}  # the config's own providers, and nothing else
    assert not slugs & {provider.name for _, provider in ENV_PROVIDERS}
