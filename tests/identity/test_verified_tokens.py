"""A users-mode token verified a moment ago is not looked up again for a second (decabill/identity/
verified_tokens.py): what ends a user's sessions — lock, password change, role change, deletion — must still
refuse the token at once in the process that made the change, and a change made elsewhere (another process, the
database directly) within the cache's second."""

from __future__ import annotations

import asyncio
import uuid

import pytest
from sqlalchemy import update

from decabill import db
from decabill.identity.principal import Principal
from decabill.identity.verified_tokens import TTL_SECONDS, VerifiedTokens
from models.identity import User
from tests.helpers import assert_error

LOCKED = "This account is locked. Please contact an administrator."
ENDED = "Session is no longer valid."


async def _user(api, email: str) -> tuple[str, str, str]:
    """(admin token, user token, user id), the user's token used once (so it is held verified)."""
    admin = await api.admin_token()
    token = await api.user_token(admin, email)
    assert (await api.get("/subscriptions", token=token)).status_code == 200
    user_id = next(u["id"] for u in (await api.get("/users", token=admin)).json() if u["email"] == email)
    return admin, token, user_id


@pytest.mark.parametrize("method, suffix, body, status, message", [
    ("post", "/lock", None, 200, LOCKED),  # locked
    ("post", "", {"role": "admin"}, 200, ENDED),  # promoted: the old token carries the old role
    ("delete", "", None, 204, ENDED),  # deleted
])
async def test_an_admins_change_to_the_user_ends_the_held_token_at_once(api, method, suffix, body, status, message):
    admin, token, user_id = await _user(api, "changed@example.com")
    kwargs = {"json": body} if body is not None else {}
    done = await getattr(api, method)(f"/users/{user_id}{suffix}", token=admin, **kwargs)
    assert done.status_code == status, done.text
    assert_error(await api.get("/subscriptions", token=token), 401, message)


async def test_a_password_change_ends_the_old_token_at_once(api):
    _, token, _ = await _user(api, "changer@example.com")
    changed = await api.post("/auth/change-password", token=token, json={
        "currentPassword": "correct-horse-1", "newPassword": "brand-new-pass", "newPasswordConfirmation": "brand-new-pass"})
    assert changed.status_code == 200, changed.text
    assert_error(await api.get("/subscriptions", token=token), 401, ENDED)


async def test_a_lock_made_elsewhere_is_seen_within_the_cache_lifetime(api):
    _, token, user_id = await _user(api, "elsewhere@example.com")
    async with db.transaction() as session:  # as another process would: this process is not told
        await session.execute(update(User).where(User.id == uuid.UUID(user_id)).values(locked_at=db.utcnow()))
    await asyncio.sleep(TTL_SECONDS)
    assert_error(await api.get("/subscriptions", token=token), 401, LOCKED)


def test_the_cache_is_bounded_and_never_outlives_the_token():
    import time

    tokens = VerifiedTokens(max_entries=2)
    principal = Principal(tenant="default", role="user", method="users", user_id=uuid.uuid4())
    later = time.time() + 3600
    for name in ("a", "b", "c"):
        tokens.put((0, "default", name), principal, later)
    assert [tokens.get((0, "default", name)) for name in ("a", "b", "c")] == [None, principal, principal]
    tokens.put((0, "default", "expired"), principal, time.time() - 1)
    assert tokens.get((0, "default", "expired")) is None
    tokens.forget_user(principal.user_id)
    assert tokens.get((0, "default", "c")) is None


def _fake_clock(monkeypatch, token: str) -> list[float]:
    """The cache's monotonic clock, moved by the test (the event loop keeps the real one). It starts at the moment
    `token`'s entry was stored, not at the real now: on a loaded machine the requests before this call can take
    longer than the offsets the tests add, and the entry would already have expired."""
    import time
    import types

    from decabill.identity import verified_tokens as module

    stored_at = [refresh_at - module.verified_tokens.refresh_after
                 for key, (_, _, refresh_at) in module.verified_tokens._entries.items() if key[2] == token]
    assert len(stored_at) == 1, "the token is held verified"
    clock = [stored_at[0]]
    monkeypatch.setattr(module, "time", types.SimpleNamespace(monotonic=lambda: clock[0], time=time.time))
    return clock


async def _rechecks_done() -> None:
    from decabill.identity import auth

    for _ in range(200):
        if not auth._rechecks:
            return
        await asyncio.sleep(0.01)
    raise AssertionError("the background re-check did not end")


async def test_a_token_in_steady_use_is_checked_again_in_the_background_not_on_the_request_path(api, monkeypatch):
    """Half a second after its verification, a token's next request is answered from the cache while one re-check
    runs in the background and renews the entry: no request waits for the user lookup when the entry would have
    expired (before, every request arriving in that window looked the user up itself, and at c=50 all of them
    queued for a database connection — a stall once a second)."""
    from decabill.identity.repository import UserRepository

    _, token, user_id = await _user(api, "steady@example.com")
    clock = _fake_clock(monkeypatch, token)
    lookups, release = [], asyncio.Event()
    original = UserRepository.get_in_any_tenant

    async def slow_lookup(self, id):
        lookups.append(str(id))
        await release.wait()
        return await original(self, id)

    monkeypatch.setattr(UserRepository, "get_in_any_tenant", slow_lookup)
    clock[0] += 0.6  # due for a re-check, not expired
    for _ in range(2):  # answered at once both times; one re-check, still waiting for its lookup
        answer = await asyncio.wait_for(api.get("/subscriptions", token=token), 5)
        assert answer.status_code == 200, answer.text
    assert lookups == [user_id]
    release.set()
    await _rechecks_done()
    clock[0] += 0.45  # past the first verification's second, within the renewed one (not yet due again)
    assert (await asyncio.wait_for(api.get("/subscriptions", token=token), 5)).status_code == 200
    assert lookups == [user_id]


async def test_a_re_check_that_finds_the_token_dead_drops_it_before_its_second_is_over(api, monkeypatch):
    """A lock made elsewhere (another process, the database directly) is seen by the first re-check: the token is
    refused from then on, not only once its cached second has run out."""
    _, token, user_id = await _user(api, "recheck@example.com")
    clock = _fake_clock(monkeypatch, token)
    async with db.transaction() as session:  # as another process would: this process is not told
        await session.execute(update(User).where(User.id == uuid.UUID(user_id)).values(locked_at=db.utcnow()))
    clock[0] += 0.6
    assert (await api.get("/subscriptions", token=token)).status_code == 200  # still within its second
    await _rechecks_done()
    assert_error(await api.get("/subscriptions", token=token), 401, LOCKED)


def test_a_re_check_that_started_before_the_sessions_ended_does_not_store_its_answer():
    import time

    tokens = VerifiedTokens(refresh_after=0)
    principal = Principal(tenant="default", role="user", method="users", user_id=uuid.uuid4())
    key = (0, "default", "token")
    tokens.put(key, principal, time.time() + 3600)
    epoch = tokens.claim_refresh(key)
    assert epoch is not None and tokens.claim_refresh(key) is None  # one re-check at a time
    tokens.forget_user(principal.user_id)  # the password changed while the re-check read the user
    tokens.put(key, principal, time.time() + 3600, epoch=epoch)
    tokens.refreshed(key)
    assert tokens.get(key) is None
