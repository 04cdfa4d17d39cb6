"""Request and response types: the one place OpenRouter's field names live."""
