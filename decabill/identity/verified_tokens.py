"""Users-mode tokens verified recently, per process: a burst of requests with one token costs one user lookup
per `TTL_SECONDS`, not one per request.

* Only a token that passed every check is kept (signature, expiry, the account usable in the request's tenant,
  the credential version current), with the `Principal` it gave; at most `TTL_SECONDS` and never past the
  token's own expiry. Keyed by engine generation, tenant and the token itself.
* What ends a user's sessions (password, lock, role or email change, deletion: `decabill.identity.service`)
  drops that user's entries in this process after its commit, so here the next request is refused at once.
  Another process keeps its entry until it expires: it sees the change within `TTL_SECONDS`.
* Bounded: at most `MAX_ENTRIES` tokens (the oldest dropped first).
"""

from __future__ import annotations

import time
import uuid
from collections import OrderedDict

from decabill.identity.principal import Principal

TTL_SECONDS = 1.0
MAX_ENTRIES = 10_000


class VerifiedTokens:
    def __init__(self, ttl: float = TTL_SECONDS, max_entries: int = MAX_ENTRIES) -> None:
        self.ttl = ttl
        self.max_entries = max_entries
        # (engine generation, tenant, token) -> (principal, monotonic expiry)
        self._entries: OrderedDict[tuple[int, str, str], tuple[Principal, float]] = OrderedDict()

    def get(self, key: tuple[int, str, str]) -> Principal | None:
        entry = self._entries.get(key)
        if entry is None:
            return None
        principal, expires = entry
        if expires <= time.monotonic():
            del self._entries[key]
            return None
        return principal

    def put(self, key: tuple[int, str, str], principal: Principal, token_expiry: float) -> None:
        """Keep `principal` for the token; `token_expiry` is the token's `exp` (epoch seconds)."""
        now = time.monotonic()
        expires = min(now + self.ttl, now + token_expiry - time.time())
        if expires <= now:
            return
        self._entries[key] = (principal, expires)
        self._entries.move_to_end(key)
        while len(self._entries) > self.max_entries:
            self._entries.popitem(last=False)

    def forget_user(self, user_id: uuid.UUID) -> None:
        """Drop every token of the user (their sessions just ended in this process)."""
        for key in [key for key, (principal, _) in self._entries.items() if principal.user_id == user_id]:
            del self._entries[key]

    def clear(self) -> None:
        self._entries.clear()


verified_tokens = VerifiedTokens()
