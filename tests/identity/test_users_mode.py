"""Self-service auth in users mode: register, confirm, login, reset and change password, signup switch."""

from __future__ import annotations

import datetime as dt

import jwt
import pytest

from tests.conftest import JWT_SECRET
from tests.helpers import assert_error

async def test_first_user_of_a_tenant_is_a_confirmed_admin_and_manages_users(api, smtp_sink):
    response = await api.register("Owner@Example.com")
    assert response.status_code == 201
    body = response.json()
    assert body["user"]["role"] == "admin"
    assert body["user"]["email"] == "owner@example.com"
    assert body["message"] == "Account created successfully. You can log in immediately."
    assert smtp_sink.to("owner@example.com") == []  # the first admin gets no confirmation mail

    token = await api.login("owner@example.com")
    users = await api.get("/users", token=token)
    assert users.status_code == 200
    assert [u["email"] for u in users.json()] == ["owner@example.com"]


async def test_later_users_confirm_their_email_with_the_mailed_code(api, smtp_sink):
    await api.admin_token()
    response = await api.register("second@example.com")
    assert response.status_code == 201
    assert response.json()["user"]["role"] == "user"
    assert "confirm your email" in response.json()["message"]

    login = await api.post("/auth/login", json={"email": "second@example.com", "password": "correct-horse-1"})
    assert_error(login, 401, "Email not confirmed. Please confirm your email before logging in.")

    wrong = await api.post("/auth/confirm-email", json={"email": "second@example.com", "code": "AAAAAA"})
    assert_error(wrong, 400, "Invalid or expired confirmation code")

    code = smtp_sink.code_for("second@example.com")
    assert len(code) == 6 and code.isupper() or code.isdigit()
    confirmed = await api.post("/auth/confirm-email", json={"email": "second@example.com", "code": code})
    assert confirmed.status_code == 200
    assert confirmed.json() == {"message": "Email confirmed successfully. You can now log in."}

    token = await api.login("second@example.com")
    claims = jwt.decode(token, JWT_SECRET, algorithms=["HS256"])
    assert claims["roles"] == ["user"]
    assert dt.timedelta(days=6, hours=23) < dt.timedelta(seconds=claims["exp"] - claims["iat"]) <= dt.timedelta(days=7)
    # A plain user may not manage users.
    assert_error(await api.get("/users", token=token), 403, "Forbidden resource")


async def test_register_rejects_duplicates_weak_passwords_and_disabled_signup(api, make_api, env):
    await api.admin_token("dup@example.com")
    assert_error(await api.register("DUP@example.com"), 409, "User with this email already exists")
    assert (await api.register("short@example.com", password="short")).status_code == 400
    assert (await api.post("/auth/register", json={"email": "x@example.com", "password": "long-enough", "extra": 1})).status_code == 400

    env.update(DISABLE_SIGNUP="true")
    closed = await make_api()
    assert_error(await closed.register("late@example.com"), 503, "Signup is disabled")


async def test_login_failures_answer_401_without_revealing_which_part_was_wrong(api):
    await api.admin_token("who@example.com")
    unknown = await api.post("/auth/login", json={"email": "nobody@example.com", "password": "whatever-1"})
    wrong = await api.post("/auth/login", json={"email": "who@example.com", "password": "wrong-password"})
    assert_error(unknown, 401, "Invalid email or password")
    assert_error(wrong, 401, "Invalid email or password")


async def test_a_password_longer_than_bcrypt_reads_is_a_wrong_password_not_a_server_error(api):
    """bcrypt reads 72 bytes (bcrypt 5 raises on more). Passwords are refused beyond that when set, so a longer one
    at sign-in matches nothing: 401 as any wrong password, for an unknown email too (found by the contract fuzz:
    it was a 500). A stored password of exactly 72 bytes still signs in, and not with anything appended to it."""
    exact = "p" * 70 + "é"  # 72 bytes in UTF-8
    assert (await api.register("exact@example.com", password=exact)).status_code == 201  # the first: admin
    assert await api.login("exact@example.com", exact)
    for email, password in (("nobody@example.com", "x" * 100), ("exact@example.com", "y" * 73),
                            ("exact@example.com", exact + "x"), ("exact@example.com", "é" * 60)):
        answer = await api.post("/auth/login", json={"email": email, "password": password})
        assert_error(answer, 401, "Invalid email or password")
    too_long = await api.register("over@example.com", password="z" * 73)
    assert_error(too_long, 400, "Password must be at most 72 bytes long")


async def test_password_reset_code_is_single_use_and_expires_after_five_wrong_tries(api, smtp_sink):
    await api.admin_token("reset@example.com")
    answer = await api.post("/auth/request-password-reset", json={"email": "reset@example.com"})
    assert answer.status_code == 200
    # Unknown addresses get the same answer (no account enumeration) and no mail.
    unknown = await api.post("/auth/request-password-reset", json={"email": "ghost@example.com"})
    assert unknown.json() == answer.json()
    assert smtp_sink.to("ghost@example.com") == []

    mail = smtp_sink.to("reset@example.com")[-1]
    assert mail["Subject"] == "Reset your password"
    assert "expires in 1 hour" in smtp_sink.text_of(mail)
    code = smtp_sink.code_for("reset@example.com")

    ok = await api.post("/auth/reset-password", json={"email": "reset@example.com", "code": code, "newPassword": "new-password-2"})
    assert ok.status_code == 200
    again = await api.post("/auth/reset-password", json={"email": "reset@example.com", "code": code, "newPassword": "new-password-3"})
    assert_error(again, 400, "Invalid or expired reset code")
    assert await api.login("reset@example.com", "new-password-2")

    # Five wrong codes kill the current code, even the right one afterwards.
    await api.post("/auth/request-password-reset", json={"email": "reset@example.com"})
    code = smtp_sink.code_for("reset@example.com")
    wrong_code = "ZZZZZZ" if code != "ZZZZZZ" else "YYYYYY"
    for _ in range(5):
        bad = await api.post("/auth/reset-password", json={"email": "reset@example.com", "code": wrong_code, "newPassword": "new-password-4"})
        assert_error(bad, 400, "Invalid or expired reset code")
    late = await api.post("/auth/reset-password", json={"email": "reset@example.com", "code": code, "newPassword": "new-password-4"})
    assert_error(late, 400, "Invalid or expired reset code")
    assert await api.login("reset@example.com", "new-password-2")


async def test_reset_code_format_is_validated(api):
    response = await api.post("/auth/reset-password", json={"email": "a@example.com", "code": "abc", "newPassword": "long-enough-1"})
    assert_error(response, 400)


async def test_change_password_checks_current_password_and_confirmation(api):
    token = await api.admin_token("change@example.com")
    mismatch = await api.post("/auth/change-password", token=token, json={
        "currentPassword": "correct-horse-1", "newPassword": "brand-new-pass", "newPasswordConfirmation": "other-new-pass"})
    assert_error(mismatch, 400, "New password and confirmation do not match")
    wrong = await api.post("/auth/change-password", token=token, json={
        "currentPassword": "not-my-password", "newPassword": "brand-new-pass", "newPasswordConfirmation": "brand-new-pass"})
    assert_error(wrong, 401, "Current password is incorrect")
    ok = await api.post("/auth/change-password", token=token, json={
        "currentPassword": "correct-horse-1", "newPassword": "brand-new-pass", "newPasswordConfirmation": "brand-new-pass"})
    assert ok.status_code == 200 and ok.json() == {"message": "Password changed successfully."}
    assert await api.login("change@example.com", "brand-new-pass")
    assert_error(await api.post("/auth/change-password", json={
        "currentPassword": "x", "newPassword": "brand-new-pass", "newPasswordConfirmation": "brand-new-pass"}), 401)


@pytest.mark.parametrize(
    "forge",
    [
        pytest.param(lambda claims: jwt.encode(claims, key=None, algorithm="none"), id="alg-none"),
        pytest.param(lambda claims: jwt.encode(claims, "some-other-secret-with-32-bytes!!", algorithm="HS256"), id="wrong-signature"),
        pytest.param(lambda claims: jwt.encode(claims, JWT_SECRET, algorithm="HS512"), id="wrong-algorithm"),
        pytest.param(lambda claims: jwt.encode({**claims, "exp": claims["iat"] - 10}, JWT_SECRET, algorithm="HS256"), id="expired"),
        pytest.param(lambda claims: "not.a.jwt", id="garbage"),
    ],
)
async def test_forged_or_expired_tokens_are_refused(api, forge):
    token = await api.admin_token("forge@example.com")
    claims = jwt.decode(token, JWT_SECRET, algorithms=["HS256"])
    assert (await api.get("/users", token=token)).status_code == 200
    assert_error(await api.get("/users", token=forge(claims)), 401, "Invalid or expired token")


async def test_missing_or_non_bearer_authorization_is_401(api):
    assert_error(await api.get("/users"), 401, "Missing or invalid authorization token")
    assert_error(await api.get("/users", headers={"Authorization": "Basic abc"}), 401, "Missing or invalid authorization token")


async def test_locked_users_cannot_log_in_and_their_tokens_stop_working(api):
    admin = await api.admin_token()
    user_token = await api.user_token(admin, "locked@example.com")
    me = (await api.get("/users", token=admin)).json()
    user_id = next(u["id"] for u in me if u["email"] == "locked@example.com")
    admin_id = next(u["id"] for u in me if u["email"] == "admin@example.com")

    assert_error(await api.post(f"/users/{admin_id}/lock", token=admin), 400, "You cannot lock your own account")
    locked = await api.post(f"/users/{user_id}/lock", token=admin)
    assert locked.status_code == 200 and locked.json()["lockedAt"]

    message = "This account is locked. Please contact an administrator."
    assert_error(await api.post("/auth/change-password", token=user_token, json={
        "currentPassword": "correct-horse-1", "newPassword": "brand-new-pass", "newPasswordConfirmation": "brand-new-pass"}), 401, message)
    assert_error(await api.post("/auth/login", json={"email": "locked@example.com", "password": "correct-horse-1"}), 401, message)

    unlocked = await api.post(f"/users/{user_id}/unlock", token=admin)
    assert unlocked.status_code == 200 and unlocked.json()["lockedAt"] is None
    assert await api.login("locked@example.com")


async def test_deleted_users_tokens_stop_working(api):
    admin = await api.admin_token()
    user_token = await api.user_token(admin, "gone@example.com")
    user_id = next(u["id"] for u in (await api.get("/users", token=admin)).json() if u["email"] == "gone@example.com")
    assert (await api.delete(f"/users/{user_id}", token=admin)).status_code == 204
    response = await api.post("/auth/change-password", token=user_token, json={
        "currentPassword": "correct-horse-1", "newPassword": "brand-new-pass", "newPasswordConfirmation": "brand-new-pass"})
    assert_error(response, 401, "Session is no longer valid.")
