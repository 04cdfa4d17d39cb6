"""HTTP handlers, one module per endpoint family, over a small ASGI layer (``http``)."""
