"""Client JSON bodies into wire types, with every way a body can be refused as one 400 in the error
envelope: a wrong field (named in ``metadata.param``), text that is not JSON, and nesting deep enough to
reach the interpreter's recursion limit (msgspec recurses, even into unknown fields it skips)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import msgspec

from routeway.errors import APIError


@contextmanager
def refused_as_400() -> Iterator[None]:
    """Turns msgspec's refusals of a client body, raised inside the block, into a 400 saying why."""
    try:
        yield
    except msgspec.ValidationError as exc:
        field = invalid_field(exc)
        raise APIError(400, f"Invalid request: {exc}", metadata={"param": field} if field else None) from None
    except msgspec.DecodeError as exc:
        raise APIError(400, f"Request body is not valid JSON: {exc}") from None
    except RecursionError:
        raise APIError(400, "Request body is not usable JSON: arrays and objects are nested too deeply.") from None


def decode(body: bytes, type_: type[Any]) -> Any:
    with refused_as_400():
        return msgspec.json.decode(body, type=type_)


def invalid_field(exc: msgspec.ValidationError) -> str | None:
    """The field msgspec names at the end of its message ("... - at `$.limit`"), for ``metadata.param``."""
    text = str(exc)
    return text.rsplit("at `$.", 1)[-1].rstrip("`") if "at `$." in text else None
