"""Users-mode tokens verified recently, per process: a burst of requests with one token costs one user lookup
per `TTL_SECONDS`, not one per request.

* Only a token that passed every check is kept (signature, expiry, the account usable in the request's tenant,
  the credential version current), with the `Principal` it gave; at most `TTL_SECONDS` and never past the
  token's own expiry. Keyed by engine generation, tenant and the token itself.
* What ends a user's sessions (password, lock, role or email change, deletion: `decabill.identity.service`)
  drops that user's entries in this process after its commit, so here the next request is refused at once.
  Another process keeps its entry until it expires: it sees the change within `TTL_SECONDS`.
* Bounded: at most `MAX_ENTRIES` tokens (the oldest dropped first).
* Checked again ahead of expiry: the first request that finds an entry older than `REFRESH_AFTER_SECONDS`
  claims its re-check (`claim_refresh`; one at a time per token) and is still answered from the entry, while
  the check runs in the background and renews it. So a token in steady use never misses: before, every request
  that arrived while the entry was being verified again once a second did its own lookup, and at 50 concurrent
  requests all of them waited for a connection in that window (a stall of 30–60 ms each second, issue #20). The
  entry's lifetime is unchanged: a re-check that does not succeed in time leaves it to expire, and one that finds
  the token dead drops it (`forget`). A re-check that started before `forget_user` / `clear` does not store its
  answer (`put(..., epoch=)`): what that change ended stays ended.
"""

from __future__ import annotations

import time
import uuid
from collections import OrderedDict

from decabill.identity.principal import Principal

TTL_SECONDS = 1.0
REFRESH_AFTER_SECONDS = 0.5  # an entry this old is checked again in the background (at most one check per token)
MAX_ENTRIES = 10_000


class VerifiedTokens:
    def __init__(self, ttl: float = TTL_SECONDS, max_entries: int = MAX_ENTRIES,
                 refresh_after: float = REFRESH_AFTER_SECONDS) -> None:
        self.ttl = ttl
        self.max_entries = max_entries
        self.refresh_after = refresh_after
        # (engine generation, tenant, token) -> (principal, monotonic expiry, monotonic time of its re-check)
        self._entries: OrderedDict[tuple[int, str, str], tuple[Principal, float, float]] = OrderedDict()
        self._refreshing: set[tuple[int, str, str]] = set()
        self._epoch = 0  # moved on by every forget_user / clear

    @property
    def epoch(self) -> int:
        """Pass it to `put` from a verification that started now: if sessions end meanwhile, it is not stored."""
        return self._epoch

    def get(self, key: tuple[int, str, str]) -> Principal | None:
        entry = self._entries.get(key)
        if entry is None:
            return None
        principal, expires, _ = entry
        if expires <= time.monotonic():
            del self._entries[key]
            return None
        return principal

    def claim_refresh(self, key: tuple[int, str, str]) -> int | None:
        """The epoch to verify the token again under, when its entry is due for a re-check and none is running
        (the caller then verifies it and ends with `put` or `forget`, and always `refreshed`); else None."""
        entry = self._entries.get(key)
        if entry is None or key in self._refreshing or time.monotonic() < entry[2]:
            return None
        self._refreshing.add(key)
        return self._epoch

    def refreshed(self, key: tuple[int, str, str]) -> None:
        self._refreshing.discard(key)

    def put(self, key: tuple[int, str, str], principal: Principal, token_expiry: float,
            epoch: int | None = None) -> None:
        """Keep `principal` for the token; `token_expiry` is the token's `exp` (epoch seconds). With `epoch`
        (`self.epoch` when the verification started), only if no sessions ended since."""
        if epoch is not None and epoch != self._epoch:
            return
        now = time.monotonic()
        expires = min(now + self.ttl, now + token_expiry - time.time())
        if expires <= now:
            return
        self._entries[key] = (principal, expires, now + self.refresh_after)
        self._entries.move_to_end(key)
        while len(self._entries) > self.max_entries:
            self._entries.popitem(last=False)

    def forget(self, key: tuple[int, str, str]) -> None:
        """Drop one token (a re-check found it no longer valid)."""
        self._entries.pop(key, None)

    def forget_user(self, user_id: uuid.UUID) -> None:
        """Drop every token of the user (their sessions just ended in this process)."""
        self._epoch += 1
        for key in [key for key, (principal, _, _) in self._entries.items() if principal.user_id == user_id]:
            del self._entries[key]

    def clear(self) -> None:
        self._epoch += 1
        self._entries.clear()


verified_tokens = VerifiedTokens()
