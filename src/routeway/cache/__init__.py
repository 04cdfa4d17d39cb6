"""The response cache, as OpenRouter's: opt-in per request (``X-OpenRouter-Cache``) or per account,
exact-match per API key, with a TTL; hits are replayed free of charge without an upstream call."""
