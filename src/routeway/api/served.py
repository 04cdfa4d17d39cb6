"""Which models can take a request of an upstream API (text completions, embeddings): a clear 404 naming
the ones that can, before routing, when none of the requested models has an endpoint serving it."""

from __future__ import annotations

from routeway.catalog import Catalog
from routeway.errors import APIError

_ROUTES = {"completions": "POST /completions", "embeddings": "POST /embeddings"}


def check_served(catalog: Catalog, requested: list[str], api: str) -> None:
    """A 404 naming the models whose endpoints serve ``api`` when none of the requested models' do (an
    unknown model, or one with no endpoint at all, is left to routing's own 400 or 503)."""
    serving_requested = [e for m in requested for e in catalog.endpoints_for(m.partition(":")[0])]
    if not serving_requested or any(api in e.apis for e in serving_requested):
        return
    known = [m for m in requested if catalog.endpoints_for(m.partition(":")[0])]
    endpoints: dict[str, list[str]] = {}
    for serving_model in catalog.endpoints.values():
        for e in serving_model:
            if api in e.apis:
                endpoints.setdefault(e.model.id, []).append(e.tag)
    serving = sorted(endpoints)
    route = _ROUTES.get(api, api)
    if serving:
        named = "; ".join(f"{m} via {', '.join(endpoints[m])}" for m in serving[:20])
        where = f"Endpoints that serve it: {named}{' …' if len(serving) > 20 else ''}."
    else:
        where = (f"No configured endpoint serves it: declare apis = [\"{api}\"] on an [[endpoints]] entry whose"
                 f" upstream serves /v1/{api}.")
    raise APIError(404, f"No endpoint of {', '.join(known)} serves {route}. {where}",
                   metadata={"availability": {"code": "api_not_served", "api": api, "requested_models": requested,
                                              "serving_models": serving,
                                              "serving_endpoints": [{"model": m, "provider": p}
                                                                    for m in serving for p in endpoints[m]]}})
