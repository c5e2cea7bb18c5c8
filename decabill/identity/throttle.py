"""Per-account sign-in throttling: an increasing delay after repeated failures, never a hard lock.

After LOGIN_THROTTLE_FREE_ATTEMPTS failed sign-ins to one account (tenant + email, whether or not the
account exists, so the throttle itself reveals nothing), every further attempt must wait: the base delay,
doubled with each further failure up to the maximum. An attempt inside the wait is answered 429 with
Retry-After without looking at the password, and it does not count as a failure; so a guesser gets one
try per delay, while the owner can still sign in once the current delay has passed (a hard lock would let
anyone lock a victim out). A successful sign-in forgets the failures; so does LOGIN_THROTTLE_RESET_SECONDS
without one. An attempt that is let through while a delay applies claims the slot at once, so concurrent
guesses cannot all slip through when a delay ends.

The counters live in Redis when it is configured (shared by every process), else in this process.
"""

from __future__ import annotations

import hashlib
import time
from collections import OrderedDict
from dataclasses import dataclass

from decabill.config import Settings
from decabill.redis_clients import client_for

MEMORY_ACCOUNTS = 100_000  # in-process counters kept at most (least recently failed dropped first)

# KEYS[1] the account's hash; ARGV: now, free attempts, base delay, max delay. Returns the wait in ms (0: go).
ATTEMPT_SCRIPT = """
local state = redis.call('HMGET', KEYS[1], 'failures', 'last')
local failures = tonumber(state[1]) or 0
local last = tonumber(state[2]) or 0
local free = tonumber(ARGV[2])
if failures < free then return 0 end
local delay = math.min(tonumber(ARGV[4]), tonumber(ARGV[3]) * 2 ^ (failures - free))
local wait = last + delay - tonumber(ARGV[1])
if wait > 0 then return math.ceil(wait * 1000) end
redis.call('HSET', KEYS[1], 'last', ARGV[1])
return 0
"""
# KEYS[1] the account's hash; ARGV: now, reset seconds.
FAILURE_SCRIPT = """
redis.call('HINCRBY', KEYS[1], 'failures', 1)
redis.call('HSET', KEYS[1], 'last', ARGV[1])
redis.call('EXPIRE', KEYS[1], ARGV[2])
return 1
"""


@dataclass(frozen=True)
class Policy:
    free_attempts: int
    base_delay: float
    max_delay: float
    reset_seconds: int

    def delay(self, failures: int) -> float:
        if failures < self.free_attempts:
            return 0.0
        return min(self.max_delay, self.base_delay * 2 ** min(failures - self.free_attempts, 64))


class MemoryCounters:
    def __init__(self, policy: Policy) -> None:
        self.policy = policy
        self._accounts: OrderedDict[str, tuple[int, float]] = OrderedDict()

    def _state(self, key: str, now: float) -> tuple[int, float]:
        failures, last = self._accounts.get(key, (0, 0.0))
        if failures and now - last > self.policy.reset_seconds:
            self._accounts.pop(key, None)
            return 0, 0.0
        return failures, last

    async def attempt(self, key: str) -> float:
        now = time.time()
        failures, last = self._state(key, now)
        wait = last + self.policy.delay(failures) - now
        if failures >= self.policy.free_attempts and wait <= 0:
            self._accounts[key] = (failures, now)
        return max(wait, 0.0)

    async def failed(self, key: str) -> None:
        now = time.time()
        failures, _ = self._state(key, now)
        self._accounts[key] = (failures + 1, now)
        self._accounts.move_to_end(key)
        while len(self._accounts) > MEMORY_ACCOUNTS:
            self._accounts.popitem(last=False)

    async def succeeded(self, key: str) -> None:
        self._accounts.pop(key, None)


class RedisCounters:
    def __init__(self, policy: Policy, url: str, prefix: str) -> None:
        self.policy = policy
        self.url = url
        self.prefix = f"{prefix}:login-throttle"

    def _client(self):
        return client_for(self.url)

    def _key(self, key: str) -> str:
        return f"{self.prefix}:{key}"

    async def attempt(self, key: str) -> float:
        p = self.policy
        wait_ms = await self._client().eval(ATTEMPT_SCRIPT, 1, self._key(key), repr(time.time()),
                                            p.free_attempts, repr(p.base_delay), repr(p.max_delay))
        return int(wait_ms) / 1000

    async def failed(self, key: str) -> None:
        await self._client().eval(FAILURE_SCRIPT, 1, self._key(key), repr(time.time()), self.policy.reset_seconds)

    async def succeeded(self, key: str) -> None:
        await self._client().delete(self._key(key))


class LoginThrottle:
    def __init__(self, counters: MemoryCounters | RedisCounters) -> None:
        self.counters = counters

    @staticmethod
    def account(tenant: str, email: str) -> str:
        # Hashed: the counters' keys (in Redis, in a memory dump) name no address.
        return hashlib.sha256(f"{tenant}\0{email}".encode()).hexdigest()

    async def wait_before(self, account: str) -> float:
        """Seconds the account's next attempt must still wait (0: it may go, and has claimed its slot)."""
        return await self.counters.attempt(account)

    async def failed(self, account: str) -> None:
        await self.counters.failed(account)

    async def succeeded(self, account: str) -> None:
        await self.counters.succeeded(account)


_throttles: dict[tuple, LoginThrottle] = {}


def login_throttle(settings: Settings) -> LoginThrottle:
    """The process's throttle for these settings (the in-process counters must outlive a request)."""
    policy = Policy(settings.login_throttle_free_attempts, settings.login_throttle_base_delay_seconds,
                    settings.login_throttle_max_delay_seconds, settings.login_throttle_reset_seconds)
    key = (policy, settings.redis_url, settings.redis_key_prefix)
    throttle = _throttles.get(key)
    if throttle is None:
        counters = (RedisCounters(policy, settings.redis_url, settings.redis_key_prefix) if settings.redis_url
                    else MemoryCounters(policy))
        throttle = _throttles[key] = LoginThrottle(counters)
    return throttle


def forget_in_process_counters() -> None:
    """Drop every in-process throttle (the tests' fresh start; Redis counters expire on their own)."""
    _throttles.clear()
