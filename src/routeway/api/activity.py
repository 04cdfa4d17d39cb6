"""GET /activity: an account's usage per UTC day, model and endpoint, as OpenRouter's ``getUserActivity``
answers it. Management keys only (OpenRouter: "only provisioning keys can fetch activity"). Without
``date``, the last 30 completed UTC days (today is still counting, as on OpenRouter); ``date`` picks one
day of the last 30 or today; ``api_key_hash`` keeps one key's requests."""

from __future__ import annotations

import time
from datetime import UTC, date, datetime
from typing import TYPE_CHECKING, Any

from routeway.api.auth import authenticate
from routeway.api.http import Request, Response, json_response
from routeway.errors import APIError
from routeway.ledger.money import nano_to_usd
from routeway.store.usage import DAY_MS, UsageQueries

if TYPE_CHECKING:
    from routeway.services import Services

DAYS = 30
_EPOCH = date(1970, 1, 1)


def routes(services: Services) -> list[tuple[str, str, Any]]:
    queries = UsageQueries(services.store)

    async def activity(request: Request) -> Response:
        key = authenticate(services, request, management=True)
        today = int(time.time() * 1000) // DAY_MS
        first, last = today - DAYS, today - 1
        wanted = request.query.get("date")
        if wanted is not None:
            day = _day(wanted)
            if not first <= day <= today:
                raise APIError(400, f"Invalid request: `date` must be one of the last {DAYS} UTC days"
                                    f" ({_iso(first)} … {_iso(today)}), not {wanted}", metadata={"param": "date"})
            first = last = day
        key_hash = request.query.get("api_key_hash") or None
        rows = await queries.activity(key.account_id, first, last, key_hash)
        return json_response({"data": [{
            "date": _iso(r.day), "model": r.model, "model_permaslug": r.model,
            "endpoint_id": f"{r.provider_slug}/{r.model}", "provider_name": r.provider_name,
            "usage": nano_to_usd(r.cost_nano), "byok_usage_inference": 0.0, "requests": r.requests,
            "prompt_tokens": r.prompt_tokens, "completion_tokens": r.completion_tokens,
            "reasoning_tokens": r.reasoning_tokens, "cached_tokens": r.cached_tokens,
        } for r in rows]})

    return [("GET", "/activity", activity)]


def _day(text: str) -> int:
    try:
        return (datetime.strptime(text, "%Y-%m-%d").replace(tzinfo=UTC).date() - _EPOCH).days
    except ValueError:
        raise APIError(400, f"Invalid request: `date` must be a UTC date as YYYY-MM-DD, not {text[:40]!r}",
                       metadata={"param": "date"}) from None


def _iso(day: int) -> str:
    return date.fromordinal(_EPOCH.toordinal() + day).isoformat()
