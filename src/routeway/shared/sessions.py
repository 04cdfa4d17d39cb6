"""Dashboard sessions in Redis, so a session started on one replica is found by every other.

One string per session (its JSON, expiring with the session) and sorted sets by expiry that keep the
caps of ``web/session_store.py``: per key (``PER_KEY``), signed-in (``MAX_SIGNED_IN``) and anonymous
(``MAX_ANONYMOUS``), enforced by one Lua script as a session is added, which returns the sessions it
pushed out (their playground keys are deleted by the caller, as in-process).

While Redis is away, sessions are started and found in this process's memory (``MemorySessionStore``):
a session started then is known to this replica only, and sessions kept in Redis are not found until
it answers again (their holders sign in again, or wait)."""

from __future__ import annotations

import contextlib
import time
from typing import TYPE_CHECKING

import msgspec
from redis.commands.core import AsyncScript

from routeway.shared.link import Link, Unavailable
from routeway.web.session_store import MAX_ANONYMOUS, MAX_SIGNED_IN, PER_KEY, MemorySessionStore, owner

if TYPE_CHECKING:
    from routeway.web.sessions import Session

# KEYS[1]: the session's kind index, KEYS[2]: its owner's index (signed-in only). ARGV: prefix of session
# keys, sid, JSON, expiry (ms), now (ms), per-key cap, kind cap. Returns the JSON of the sessions pushed out.
ADD = """
local prefix, sid, expires = ARGV[1], ARGV[2], ARGV[4]
local per_key, max_kind = tonumber(ARGV[6]), tonumber(ARGV[7])
redis.call('SET', prefix .. sid, ARGV[3], 'PXAT', expires)
local gone = {}
local function evict(member)
  for _, index in ipairs(KEYS) do redis.call('ZREM', index, member) end
  local blob = redis.call('GET', prefix .. member)
  if blob then
    redis.call('DEL', prefix .. member)
    gone[#gone + 1] = blob
  end
end
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', ARGV[5])
redis.call('ZADD', KEYS[1], expires, sid)
if #KEYS > 1 then
  redis.call('ZREMRANGEBYSCORE', KEYS[2], '-inf', ARGV[5])
  redis.call('ZADD', KEYS[2], expires, sid)
  redis.call('PEXPIREAT', KEYS[2], expires)
  while redis.call('ZCARD', KEYS[2]) > per_key do evict(redis.call('ZRANGE', KEYS[2], 0, 0)[1]) end
end
while redis.call('ZCARD', KEYS[1]) > max_kind do evict(redis.call('ZRANGE', KEYS[1], 0, 0)[1]) end
return gone
"""


class RedisSessionStore:
    def __init__(self, link: Link, per_key: int = PER_KEY, max_signed_in: int = MAX_SIGNED_IN,
                 max_anonymous: int = MAX_ANONYMOUS) -> None:
        self.link = link
        self.per_key, self.max_signed_in, self.max_anonymous = per_key, max_signed_in, max_anonymous
        self.fallback = MemorySessionStore(per_key, max_signed_in, max_anonymous)
        self.add_script: AsyncScript = link.client.register_script(ADD)

    def _key(self, sid: str) -> str:
        return self.link.key("session", sid)

    def _indexes(self, session: Session) -> list[str]:
        whose = owner(session)
        if whose is None:
            return [self.link.key("sessions", "anonymous")]
        return [self.link.key("sessions", "signed-in"), self.link.key("sessions", "of", whose)]

    async def get(self, sid: str) -> Session | None:
        local = self.fallback.get_now(sid)
        if local is not None:
            return local
        try:
            blob = await self.link.call(self.link.client.get(self._key(sid)))
        except Unavailable:
            return None
        return _decode(blob) if blob is not None else None

    async def add(self, session: Session) -> list[Session]:
        whose = owner(session)
        try:
            cap = self.max_signed_in if whose is not None else self.max_anonymous
            gone = await self.link.call(self.add_script(keys=self._indexes(session), args=[
                self.link.key("session", ""), session.id, msgspec.json.encode(session), int(session.expires * 1000),
                int(time.time() * 1000), self.per_key, cap]))
        except Unavailable:
            return self.fallback.add_now(session)
        return [s for blob in gone if (s := _decode(blob)) is not None]

    async def save(self, session: Session) -> None:
        if self.fallback.get_now(session.id) is not None:
            return  # kept in this process's memory: the caller changed the object itself
        # XX: a session ended meanwhile (sign-out on another replica) stays ended. While Redis is away the
        # change is lost (a flash not shown); the session itself is still there.
        with contextlib.suppress(Unavailable):
            await self.link.call(self.link.client.set(self._key(session.id), msgspec.json.encode(session), xx=True,
                                                      pxat=int(session.expires * 1000)))

    async def remove(self, sid: str) -> Session | None:
        local = self.fallback.remove_now(sid)
        if local is not None:
            return local
        try:
            blob = await self.link.call(self.link.client.getdel(self._key(sid)))
        except Unavailable:
            return None
        session = _decode(blob) if blob is not None else None
        if session is not None:
            pipe = self.link.client.pipeline(transaction=False)
            for index in self._indexes(session):
                pipe.zrem(index, sid)
            with contextlib.suppress(Unavailable):  # else the index entries go when caps or expiry look at them
                await self.link.call(pipe.execute())
        return session


def _decode(blob: bytes | str) -> Session | None:
    from routeway.web.sessions import Session  # web/sessions.py builds its store from services: no cycle at import

    try:
        return msgspec.json.decode(blob, type=Session)
    except msgspec.ValidationError:  # written by another routeway version: its holder signs in again
        return None
