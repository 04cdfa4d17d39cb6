"""Record ids: a random prefix drawn once per process, then a counter.

Unique across restarts and worker processes (48 random bits per process), ordered within one, and
free on the request path — uuid4 and secrets cost a getrandom() syscall each (7% and 4.5% of the CPU
of a request in the first profile; bench/NOTES.md). Ids are not secrets: every lookup also checks the
caller's account.
"""

from __future__ import annotations

import itertools
import secrets
import time

_PROCESS = secrets.token_hex(6)
_COUNTER = itertools.count(1)


def new_id(kind: str) -> str:
    return f"{kind}-{_PROCESS}{next(_COUNTER):010x}"


def new_generation_id() -> str:
    return f"gen-{int(time.time())}-{_PROCESS}{next(_COUNTER):010x}"
