"""Sign-in against a real `decabill serve`: tokens end when the password, the lock or the role changes;
per-account throttling with an increasing delay (shared through Redis across processes); the same work
for unknown emails as for known ones."""

from __future__ import annotations

import asyncio
import statistics
import time
import uuid

import httpx
import jwt

from tests.helpers import assert_error
from tests.security.conftest import api_of

PASSWORD = "correct-horse-1"
THROTTLED = "Too many failed sign-in attempts for this account, please try again later."


async def _usable(api, token: str) -> bool:
    status = (await api.get("/subscriptions", token=token)).status_code
    assert status in (200, 401), status
    return status == 200


async def test_password_change_lock_and_role_change_end_older_tokens(serve, database, smtp_sink):
    with serve(database) as served:
        api = api_of(served)
        admin = await api.admin_token()
        user = await api.user_token(admin, "user@example.com")
        user_id = jwt.decode(user, options={"verify_signature": False})["sub"]
        assert await _usable(api, user)

        # Own password change: the token it was made with and every other older one end; a new login works.
        second = await api.login("user@example.com")
        changed = await api.post("/auth/change-password", token=user, json={
            "currentPassword": PASSWORD, "newPassword": "another-horse-2", "newPasswordConfirmation": "another-horse-2"})
        assert changed.status_code == 200, changed.text
        assert not await _usable(api, user) and not await _usable(api, second)
        user = await api.login("user@example.com", "another-horse-2")
        assert await _usable(api, user)

        # Password set by an admin.
        assert (await api.post(f"/users/{user_id}", token=admin, json={"password": PASSWORD})).status_code == 200
        assert not await _usable(api, user)
        user = await api.login("user@example.com")

        # Lock, then unlock: the token of before the lock stays dead.
        assert (await api.post(f"/users/{user_id}/lock", token=admin)).status_code in (200, 201)
        assert not await _usable(api, user)
        assert (await api.post(f"/users/{user_id}/unlock", token=admin)).status_code in (200, 201)
        assert not await _usable(api, user)
        user = await api.login("user@example.com")
        assert await _usable(api, user)

        # An unchanged role leaves tokens alone; a changed one ends them (in both directions).
        assert (await api.post(f"/users/{user_id}", token=admin, json={"role": "user"})).status_code == 200
        assert await _usable(api, user)
        assert (await api.post(f"/users/{user_id}", token=admin, json={"role": "admin"})).status_code == 200
        assert not await _usable(api, user)
        promoted = await api.login("user@example.com")
        assert (await api.get("/users", token=promoted)).status_code == 200
        assert (await api.post(f"/users/{user_id}", token=admin, json={"role": "user"})).status_code == 200
        assert_error(await api.get("/users", token=promoted), 401)

        # Password reset by mailed code.
        admin_email = "admin@example.com"
        assert (await api.post("/auth/request-password-reset", json={"email": admin_email})).status_code == 200
        code = smtp_sink.code_for(admin_email)
        reset = await api.post("/auth/reset-password", json={"email": admin_email, "code": code,
                                                              "newPassword": "reset-horse-3"})
        assert reset.status_code == 200, reset.text
        assert_error(await api.get("/users", token=admin), 401)
        assert (await api.get("/users", token=await api.login(admin_email, "reset-horse-3"))).status_code == 200


async def _attempt(api, email: str, password: str) -> httpx.Response:
    return await api.post("/auth/login", json={"email": email, "password": password})


async def _wait_out(response: httpx.Response) -> None:
    await asyncio.sleep(int(response.headers["Retry-After"]) + 0.1)


async def test_repeated_failures_slow_the_account_down_with_an_increasing_delay(serve, database):
    settings = {"LOGIN_THROTTLE_FREE_ATTEMPTS": "3", "LOGIN_THROTTLE_BASE_DELAY_SECONDS": "1",
                "LOGIN_THROTTLE_MAX_DELAY_SECONDS": "4"}
    with serve(database, **settings) as served:
        api = api_of(served)
        await api.admin_token()  # admin@example.com
        email = "admin@example.com"
        for _ in range(3):
            assert_error(await _attempt(api, email, "wrong-password"), 401, "Invalid email or password")
        # Now even the right password waits: 429 with Retry-After, the password not even looked at.
        first = assert_throttled(await _attempt(api, email, PASSWORD))
        # Another account (and an unknown one) is not affected.
        assert_error(await _attempt(api, "nobody@example.com", "wrong-password"), 401)

        await _wait_out(first)
        assert_error(await _attempt(api, email, "wrong-password"), 401)  # one try per delay
        second = assert_throttled(await _attempt(api, email, PASSWORD))
        assert int(second.headers["Retry-After"]) > int(first.headers["Retry-After"])  # the delay grows

        await _wait_out(second)
        assert (await _attempt(api, email, PASSWORD)).status_code == 200  # not locked out: the owner gets in
        # A success forgets the failures: the next wrong password is a plain 401 again.
        assert_error(await _attempt(api, email, "wrong-password"), 401)


def assert_throttled(response: httpx.Response) -> httpx.Response:
    assert_error(response, 429, THROTTLED)
    assert int(response.headers["Retry-After"]) >= 1
    return response


async def test_the_throttle_is_shared_by_processes_through_redis(serve, database):
    shared = {"REDIS_URL": "redis://127.0.0.1:6379/0", "REDIS_KEY_PREFIX": f"decabill-test-{uuid.uuid4().hex[:8]}",
              "LOGIN_THROTTLE_FREE_ATTEMPTS": "3", "LOGIN_THROTTLE_MAX_DELAY_SECONDS": "60"}
    with serve(database, **shared) as first, serve(database, **shared) as second:
        one, other = api_of(first), api_of(second)
        await one.admin_token()
        for api in (one, other, one):
            assert_error(await _attempt(api, "admin@example.com", "wrong-password"), 401)
        assert_throttled(await _attempt(other, "admin@example.com", PASSWORD))
        assert_throttled(await _attempt(one, "admin@example.com", PASSWORD))


async def test_unknown_emails_take_as_long_as_known_ones(serve, database):
    """Account enumeration by timing: the medians of many interleaved attempts (a wrong password for a known
    account, any password for an unknown one) are within 20 % of each other."""
    with serve(database, PASSWORD_HASH_ROUNDS="11", LOGIN_THROTTLE_FREE_ATTEMPTS="100000") as served:
        api = api_of(served)
        await api.admin_token()
        durations: dict[str, list[float]] = {"known": [], "unknown": []}
        for n in range(40):
            for kind, email in (("known", "admin@example.com"), ("unknown", f"nobody{n}@example.com")):
                started = time.perf_counter()
                response = await _attempt(api, email, "wrong-password")
                durations[kind].append(time.perf_counter() - started)
                assert_error(response, 401, "Invalid email or password")
        known, unknown = statistics.median(durations["known"]), statistics.median(durations["unknown"])
        assert abs(known - unknown) <= 0.2 * max(known, unknown), (known, unknown)
