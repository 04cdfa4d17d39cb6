"""Dialects: how one kind of engine wants reasoning, tools and structured output written into a request,
and how its answers are read back. One module per dialect behind ``base.Dialect``, found by the name
operators type in an endpoint's ``dialect`` (``registry.py``). Only ``transform/`` asks a dialect;
routing, the exchange, the ledger and the API never see one (tests/test_dialect_conformance.py).

This package's ``__init__`` stays light (config.py imports the registry): dialect modules load on first use."""

from routeway.dialects.registry import NAMES, UnknownDialect, check_pair, default_for, dialect_of, get

__all__ = ["NAMES", "UnknownDialect", "check_pair", "default_for", "dialect_of", "get"]
