"""What each route under /api/v1 is, for the OpenAPI document: who may call it, what it takes, what it
answers and with which error statuses. Keyed by the (method, path) the route modules register;
api/openapi.py refuses to build a document with a route missing here, so a new route needs its entry.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from routeway.api.admin import AccountCreate, AdminKeyCreate, CreditGrant, ResponseCacheSetting
from routeway.api.destinations import (
    DestinationCreate,
    DestinationPatch,
    DestinationResponse,
    DestinationsListResponse,
)
from routeway.api.guardrails import GuardrailCreate, GuardrailPatch, KeyHashes
from routeway.api.keys import KeyCreate, KeyPatch
from routeway.api.model_query import CATEGORIES, SORTS
from routeway.api.presets import PresetCreate, PresetPatch
from routeway.wire import (
    activity,
    admin,
    catalog,
    completion,
    embeddings,
    generation,
    keys,
    responses,
    teams,
    text_completion,
)
from routeway.wire.chat import ChatRequest
from routeway.wire.errors import Deleted, ErrorResponse
from routeway.wire.messages import (
    AnthropicError,
    CountTokensRequest,
    CountTokensResponse,
    MessagesRequest,
    MessagesResponse,
    MessagesStreamEvent,
)

# Security kinds (bearer tokens all): an API key calls inference, a management key manages an account's
# keys, the operator key (ROUTEWAY_ADMIN_KEY) runs /admin. "any" is either kind of account key.
API, MANAGEMENT, ANY_KEY, OPERATOR = "api", "management", "any", "operator"


@dataclass(frozen=True)
class Query:
    name: str
    schema: dict[str, Any]
    description: str
    required: bool = False


COUNT = {"type": "integer", "minimum": 0, "maximum": 999_999_999}


@dataclass(frozen=True)
class Operation:
    summary: str
    answer: type | None  # the JSON body of a success (None: this document itself, any JSON object)
    security: str | None = None
    body: type | None = None
    status: int = 200
    query: tuple[Query, ...] = ()
    errors: tuple[int, ...] = ()  # beyond those the security, body and path parameters imply
    stream_chunk: type | None = None  # also answers text/event-stream (``stream: true``) with these chunks
    error_in_body: bool = False  # a 200 already sent may carry the error envelope as its body
    examples: tuple[dict[str, Any], ...] = ()  # request bodies, for readers and schemathesis's example phase
    error_answer: type = ErrorResponse  # the body of an error (Anthropic's routes answer Anthropic's shape)


OFFSET = Query("offset", COUNT, "How many entries to skip.")
LIMIT = Query("limit", COUNT, "How many entries to list at most (100 at most).")
MODEL_FILTERS = (
    Query("q", {"type": "string"}, "Text in the model's id or name (any case)."),
    Query("category", {"type": "string", "enum": list(CATEGORIES)}, "A use-case category the model is listed under."),
    Query("supported_parameters", {"type": "string"},
          "Comma-separated parameters every listed model must support, e.g. `tools,reasoning`."),
    Query("input_modalities", {"type": "string"}, "Comma-separated input modalities every listed model takes."),
    Query("output_modalities", {"type": "string"},
          "Comma-separated output modalities; a model producing any is listed (default `text`; `all`: every model)."),
    Query("context", COUNT, "The least context length, in tokens."),
    Query("min_price", {"type": "number", "minimum": 0}, "The least prompt price, USD per 1M tokens."),
    Query("max_price", {"type": "number", "minimum": 0}, "The most prompt price, USD per 1M tokens."),
)

OPERATIONS: dict[tuple[str, str], Operation] = {
    ("POST", "/chat/completions"): Operation(
        "Create a chat completion (JSON, or an SSE stream with `stream: true`)", completion.ChatResponse,
        security=API, body=ChatRequest, stream_chunk=completion.ChatStreamingResponseChunk, error_in_body=True,
        errors=(402, 404, 408, 422, 429, 502, 503), examples=(
            {"model": "nousresearch/hermes-4-70b", "messages": [{"role": "user", "content": "Hi"}], "max_tokens": 200},
            {"model": "nousresearch/hermes-4-70b", "messages": [{"role": "user", "content": "Hi"}], "max_tokens": 200,
             "stream": True})),
    ("POST", "/messages"): Operation(
        "Create a message, Anthropic's Messages API (JSON, or Anthropic's SSE events with `stream: true`); keys"
        " also as `x-api-key`", MessagesResponse, security=API, body=MessagesRequest,
        stream_chunk=MessagesStreamEvent, error_answer=AnthropicError, errors=(402, 404, 408, 422, 429, 502, 503),
        examples=({"model": "nousresearch/hermes-4-70b", "max_tokens": 200,
                   "messages": [{"role": "user", "content": "Hi"}]},
                  {"model": "nousresearch/hermes-4-70b", "max_tokens": 200, "stream": True,
                   "messages": [{"role": "user", "content": "Hi"}]})),
    ("POST", "/messages/count_tokens"): Operation(
        "Count a Messages request's input tokens (routeway's estimate; nothing is charged)", CountTokensResponse,
        security=API, body=CountTokensRequest, error_answer=AnthropicError, errors=(429,),
        examples=({"model": "nousresearch/hermes-4-70b", "messages": [{"role": "user", "content": "Hi"}]},)),
    ("POST", "/responses"): Operation(
        "Create a response (OpenAI Responses API, stateless: JSON, or typed SSE events with `stream: true`)",
        responses.ResponsesResult, security=API, body=responses.ResponsesRequest, stream_chunk=responses.StreamEvent,
        error_in_body=True, errors=(402, 404, 408, 422, 429, 502, 503), examples=(
            {"model": "nousresearch/hermes-4-70b", "input": "Hi", "max_output_tokens": 200},
            {"model": "nousresearch/hermes-4-70b", "input": [{"role": "user", "content": "Hi"}],
             "max_output_tokens": 200, "stream": True})),
    ("GET", "/models"): Operation(
        "List the catalog's models", catalog.ModelsListResponse, errors=(400,),
        query=(*MODEL_FILTERS, Query("sort", {"type": "string", "enum": list(SORTS)}, "The order of the list."),
               OFFSET, Query("limit", COUNT, "How many models to list at most (default 1000)."))),
    ("GET", "/models/count"): Operation("Count the catalog's models that pass the filters of GET /models",
                                        catalog.ModelsCountResponse, errors=(400,), query=MODEL_FILTERS),
    ("POST", "/completions"): Operation(
        "Create a text completion from a prompt (JSON, or an SSE stream with `stream: true`)",
        text_completion.CompletionResponse, security=API, body=text_completion.CompletionRequest,
        stream_chunk=text_completion.CompletionResponse, error_in_body=True,
        errors=(402, 404, 408, 422, 429, 502, 503), examples=(
            {"model": "openai/gpt-3.5-turbo-instruct", "prompt": "Once upon a time", "max_tokens": 50},)),
    ("POST", "/embeddings"): Operation(
        "Create embeddings of texts or token ids", embeddings.EmbeddingsResponse, security=API,
        body=embeddings.EmbeddingsRequest, error_in_body=True, errors=(402, 404, 408, 422, 429, 502, 503),
        examples=({"model": "openai/text-embedding-3-small", "input": ["routeway", "embeddings"]},)),
    ("GET", "/embeddings/models"): Operation("List the catalog's embedding models", catalog.ModelsListResponse),
    ("GET", "/activity"): Operation(
        "Get the account's usage per UTC day, model and endpoint (the last 30 completed days, or one `date`)",
        activity.ActivityResponse, security=MANAGEMENT, errors=(400,),
        query=(Query("date", {"type": "string", "format": "date"}, "A UTC day (YYYY-MM-DD), of the last 30 or today."),
               Query("api_key_hash", {"type": "string"}, "Only this key's requests."))),
    ("GET", "/models/{author}/{slug}/endpoints"): Operation(
        "List the endpoints serving a model, with their live health", catalog.ListEndpointsResponse, errors=(404,)),
    ("GET", "/providers"): Operation("List the configured providers", catalog.ProvidersListResponse),
    ("GET", "/generation"): Operation(
        "Get the stored record of one generation of the caller's account", generation.GenerationResponse,
        security=ANY_KEY, errors=(400, 404),
        query=(Query("id", {"type": "string", "minLength": 1}, "The `id` of a chat response.", required=True),)),
    ("GET", "/key"): Operation("Get the calling key: limit, usage, rate limits", keys.CurrentKeyResponse,
                               security=ANY_KEY),
    ("GET", "/auth/key"): Operation("Get the calling key (the older path of GET /key)", keys.CurrentKeyResponse,
                                    security=ANY_KEY),
    ("GET", "/credits"): Operation("Get the account's total credits and usage", keys.CreditsResponse,
                                   security=ANY_KEY),
    ("GET", "/keys"): Operation(
        "List the account's API keys", keys.KeysListResponse, security=MANAGEMENT, errors=(400,),
        query=(Query("include_disabled", {"type": "string", "enum": ["true", "false"]},
                     "`true` lists disabled keys too."), OFFSET)),
    ("POST", "/keys"): Operation("Create an API key (its secret is in `key`, shown once)", keys.KeyCreatedResponse,
                                 security=MANAGEMENT, body=KeyCreate, status=201, errors=(503,)),
    ("GET", "/keys/{hash}"): Operation("Get one key of the account", keys.KeyResponse, security=MANAGEMENT,
                                       errors=(404,)),
    ("PATCH", "/keys/{hash}"): Operation("Change a key's name, disabled state, limit or reset", keys.KeyResponse,
                                         security=MANAGEMENT, body=KeyPatch, errors=(404, 503)),
    ("DELETE", "/keys/{hash}"): Operation("Delete a key", Deleted, security=MANAGEMENT, errors=(404, 503)),
    ("GET", "/observability/destinations"): Operation(
        "List the account's observability destinations (secrets shown as `[REDACTED]`)", DestinationsListResponse,
        security=MANAGEMENT),
    ("POST", "/observability/destinations"): Operation(
        "Add an observability destination: an OTLP collector, a webhook or Langfuse", DestinationResponse,
        security=MANAGEMENT, body=DestinationCreate, status=201, errors=(400, 503)),
    ("GET", "/observability/destinations/{id}"): Operation(
        "Get one observability destination and its delivery status", DestinationResponse, security=MANAGEMENT,
        errors=(404,)),
    ("PATCH", "/observability/destinations/{id}"): Operation(
        "Change a destination", DestinationResponse, security=MANAGEMENT, body=DestinationPatch,
        errors=(400, 404, 503)),
    ("DELETE", "/observability/destinations/{id}"): Operation(
        "Delete a destination", Deleted, security=MANAGEMENT, errors=(404, 503)),
    ("POST", "/admin/accounts"): Operation("Create an account, with initial credits", admin.AccountResponse,
                                           security=OPERATOR, body=AccountCreate, status=201, errors=(503,)),
    ("PUT", "/admin/accounts/{account}/response-cache"): Operation(
        "Turn the response cache on (with its TTL) or off for every request of an account",
        admin.ResponseCacheSettingResponse, security=OPERATOR, body=ResponseCacheSetting, errors=(404, 503)),
    ("GET", "/admin/accounts"): Operation("List accounts", admin.AccountsListResponse, security=OPERATOR),
    ("GET", "/admin/accounts/{account}"): Operation("Get an account", admin.AccountResponse, security=OPERATOR,
                                                    errors=(404,)),
    ("POST", "/admin/accounts/{account}/credits"): Operation(
        "Grant credits (USD; negative takes back, never below what is available)", admin.GrantResponse,
        security=OPERATOR, body=CreditGrant, status=201, errors=(404, 503)),
    ("POST", "/admin/accounts/{account}/keys"): Operation(
        "Issue a management key (or an API key with `management: false`)", keys.KeyCreatedResponse,
        security=OPERATOR, body=AdminKeyCreate, status=201, errors=(404, 503)),
    ("GET", "/admin/accounts/{account}/keys"): Operation("List an account's keys", admin.AdminKeysListResponse,
                                                         security=OPERATOR, errors=(404,)),
    ("GET", "/admin/accounts/{account}/ledger"): Operation("List an account's ledger rows", admin.LedgerResponse,
                                                           security=OPERATOR, errors=(404,)),
    ("GET", "/openapi.json"): Operation("This OpenAPI document", None),
    # guardrails and presets (teams/): OpenRouter's paths, management keys
    ("GET", "/guardrails"): Operation("List the account's guardrails", teams.GuardrailsListResponse,
                                      security=MANAGEMENT, errors=(400,), query=(OFFSET, LIMIT)),
    ("POST", "/guardrails"): Operation(
        "Create a guardrail (enforces nothing until assigned to keys, or `account_default`)",
        teams.GuardrailResponse, security=MANAGEMENT, body=GuardrailCreate, status=201, errors=(503,)),
    ("GET", "/guardrails/assignments/keys"): Operation(
        "List every key assignment of the account's guardrails", teams.KeyAssignmentsResponse,
        security=MANAGEMENT, errors=(400,), query=(OFFSET, LIMIT)),
    ("GET", "/guardrails/{id}"): Operation("Get a guardrail", teams.GuardrailResponse, security=MANAGEMENT,
                                           errors=(404,)),
    ("PATCH", "/guardrails/{id}"): Operation("Change a guardrail (the fields given)", teams.GuardrailResponse,
                                             security=MANAGEMENT, body=GuardrailPatch, errors=(404, 503)),
    ("DELETE", "/guardrails/{id}"): Operation("Delete a guardrail and its assignments", Deleted,
                                              security=MANAGEMENT, errors=(404, 503)),
    ("GET", "/guardrails/{id}/assignments/keys"): Operation(
        "List the keys a guardrail is assigned to", teams.KeyAssignmentsResponse, security=MANAGEMENT,
        errors=(400, 404), query=(OFFSET, LIMIT)),
    ("POST", "/guardrails/{id}/assignments/keys"): Operation(
        "Assign a guardrail to API keys", teams.AssignedCount, security=MANAGEMENT, body=KeyHashes,
        errors=(404, 503)),
    ("POST", "/guardrails/{id}/assignments/keys/remove"): Operation(
        "Unassign a guardrail from API keys", teams.UnassignedCount, security=MANAGEMENT, body=KeyHashes,
        errors=(404, 503)),
    ("GET", "/presets"): Operation("List the account's presets", teams.PresetsListResponse, security=MANAGEMENT,
                                   errors=(400,), query=(OFFSET, LIMIT)),
    ("POST", "/presets"): Operation(
        "Create a preset, or save a new version of an existing slug", teams.PresetResponse,
        security=MANAGEMENT, body=PresetCreate, status=201, errors=(503,)),
    ("GET", "/presets/{slug}"): Operation("Get a preset with its designated (latest) version", teams.PresetResponse,
                                          security=MANAGEMENT, errors=(404,)),
    ("PATCH", "/presets/{slug}"): Operation(
        "Change a preset's name, description or status; a new config or system prompt is a new version",
        teams.PresetResponse, security=MANAGEMENT, body=PresetPatch, errors=(404, 503)),
    ("GET", "/presets/{slug}/versions"): Operation("List a preset's versions, newest first",
                                                   teams.PresetVersionsResponse, security=MANAGEMENT,
                                                   errors=(400, 404), query=(OFFSET,)),
    ("GET", "/presets/{slug}/versions/{version}"): Operation("Get one version of a preset",
                                                             teams.PresetVersionResponse, security=MANAGEMENT,
                                                             errors=(404,)),
    ("POST", "/presets/{slug}/chat/completions"): Operation(
        "Save a chat completions body's configuration as the preset's new version (messages and stream are not"
        " kept; a system message becomes the system prompt)", teams.PresetResponse, security=MANAGEMENT,
        body=ChatRequest, errors=(503,)),
}

