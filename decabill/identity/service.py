"""Users and their credentials: self-service auth flows (users mode) and admin user management.

Rules (behavior.md part A §2): the first user of a tenant becomes a confirmed admin; later users confirm
their email with a 6-character code; reset codes live one hour, are single use and die after
`MAX_RESET_ATTEMPTS` wrong tries (decision D6); locked users can neither log in nor use old tokens.
"""

from __future__ import annotations

import datetime as dt
import uuid
from dataclasses import dataclass

import structlog
from email_validator import EmailNotValidError, validate_email

from decabill import db
from decabill.config import get_settings
from decabill.email import Mail, send_after_commit
from decabill.errors import BadRequest, Conflict, NotFound, ServiceUnavailable, TooManyRequests, Unauthorized
from decabill.identity.credentials import (
    BCRYPT_MAX_BYTES,
    hash_secret,
    issue_token,
    new_code,
    verify_password,
    verify_secret,
)
from decabill.identity.keycloak import fetch_key_set as fetch_key_set  # for `decabill doctor`
from decabill.identity.principal import LOCKED_MESSAGE, Principal
from decabill.identity.repository import UserRepository
from decabill.identity.throttle import login_throttle
from decabill.identity.verified_tokens import verified_tokens
from decabill.tenancy import current_tenant
from models.identity import User

log = structlog.get_logger("decabill.identity")

RESET_CODE_TTL = dt.timedelta(hours=1)
MAX_RESET_ATTEMPTS = 5
ROLES = ("user", "admin")

INVALID_CREDENTIALS = "Invalid email or password"
INVALID_CONFIRMATION = "Invalid or expired confirmation code"
INVALID_RESET = "Invalid or expired reset code"
DUPLICATE_EMAIL = "User with this email already exists"
USER_HAS_BILLING_DATA_HINT = "billing records are kept, so lock the account instead to stop its access"


class UserNotFound(NotFound):
    def __init__(self) -> None:
        super().__init__("User not found")


@dataclass(frozen=True)
class LoginResult:
    access_token: str
    user: User


# --- helpers --------------------------------------------------------------------------------------


def normalize_email(value: str) -> str:
    try:
        result = validate_email(value.strip(), check_deliverability=False)
    except EmailNotValidError:
        raise BadRequest("email must be an email") from None
    return result.normalized.lower()


def _require_mode(*modes: str) -> None:
    method = get_settings().authentication_method
    if method not in modes:
        raise NotFound(f"This operation is not available when AUTHENTICATION_METHOD={method}")


def _validate_password(password: str, field: str = "Password") -> None:
    if len(password) < 8:
        raise BadRequest(f"{field} must be at least 8 characters long")
    if len(password.encode()) > BCRYPT_MAX_BYTES:  # bcrypt reads no more; refuse rather than truncate
        raise BadRequest(f"{field} must be at most {BCRYPT_MAX_BYTES} bytes long")


async def _tenant_is_empty(users: UserRepository) -> bool:
    """Counted under a tenant-wide lock so two simultaneous first sign-ups cannot both become admin."""
    await db.advisory_lock(users.session, f"users:first:{current_tenant()}")
    return await users.count() == 0


def _confirmation_mail(email: str, code: str) -> Mail:
    return Mail(
        to=email,
        subject="Confirm your email address",
        text=(
            "Welcome to Decabill.\n\n"
            f"Your confirmation code is: {code}\n\n"
            "Enter it together with your email address to confirm your account."
        ),
    )


async def _new_user(users: UserRepository, email: str, password: str | None, role: str | None) -> tuple[User, bool]:
    """Create a user of the current tenant; returns (user, confirmation_mail_sent)."""
    if await users.get_by_email(email) is not None:
        raise Conflict(DUPLICATE_EMAIL)
    first = await _tenant_is_empty(users)
    user = User(
        email=email,
        password_hash=await hash_secret(password) if password else None,
        role=role or ("admin" if first else "user"),
    )
    needs_confirmation = not first
    if first:
        user.email_confirmed_at = db.utcnow()
    else:
        code = new_code()
        user.email_confirmation_token = await hash_secret(code)
        send_after_commit(_confirmation_mail(email, code))
    await users.create(user)
    return user, needs_confirmation


async def _get_in_tenant(users: UserRepository, user_id: uuid.UUID, *, lock: bool = False) -> User:
    user = await users.get(user_id, for_update=lock)
    if user is None:
        raise UserNotFound()
    return user


# --- self-service (users mode) --------------------------------------------------------------------


async def register(email: str, password: str) -> tuple[User, str]:
    _require_mode("users")
    if get_settings().signup_disabled:
        raise ServiceUnavailable("Signup is disabled")
    email = normalize_email(email)
    _validate_password(password)
    async with db.transaction() as session:
        user, needs_confirmation = await _new_user(UserRepository(session), email, password, None)
    if needs_confirmation:
        return user, (
            "Account created. Please confirm your email before logging in. "
            "Check your inbox for the confirmation code."
        )
    return user, "Account created successfully. You can log in immediately."


async def login(email: str, password: str) -> LoginResult:
    """Constant work whatever the email (a stand-in hash for unknown ones), and the per-account throttle
    (decabill/identity/throttle.py) in front of the password check."""
    _require_mode("users")
    email = email.strip().lower()
    throttle = login_throttle(get_settings())
    account = throttle.account(current_tenant(), email)
    wait = await throttle.wait_before(account)
    if wait > 0:
        log.warning("auth.login_throttled", retry_after=round(wait, 1))
        raise TooManyRequests("Too many failed sign-in attempts for this account, please try again later.",
                              retry_after=wait)
    async with db.transaction() as session:
        user = await UserRepository(session).get_by_email(email)
    password_ok = await verify_password(password, user.password_hash if user is not None else None)
    if user is None or (user.password_hash and not password_ok):
        await throttle.failed(account)
        log.info("auth.login_failed", known_account=user is not None)
        raise Unauthorized(INVALID_CREDENTIALS)
    if user.email_confirmed_at is None:
        raise Unauthorized("Email not confirmed. Please confirm your email before logging in.")
    if user.is_locked:
        raise Unauthorized(LOCKED_MESSAGE)
    if not user.password_hash:
        raise Unauthorized("This account uses external authentication (Keycloak).")
    await throttle.succeeded(account)
    return LoginResult(issue_token(user.id, user.email, user.role, user.tenant_id, user.credential_version), user)


async def confirm_email(email: str, code: str) -> str:
    _require_mode("users")
    async with db.transaction() as session:
        user = await UserRepository(session).get_by_email(email.strip().lower())
        if user is None or not await verify_secret(code, user.email_confirmation_token):
            raise BadRequest(INVALID_CONFIRMATION)
        user.email_confirmed_at = db.utcnow()
        user.email_confirmation_token = None
        user.touch()
    return "Email confirmed successfully. You can now log in."


async def request_password_reset(email: str) -> str:
    _require_mode("users")
    async with db.transaction() as session:
        user = await UserRepository(session).get_by_email(email.strip().lower())
        # Same answer whether or not the account exists: no user enumeration.
        if user is not None and user.password_hash:
            code = new_code()
            user.password_reset_token = await hash_secret(code)
            user.password_reset_token_expires_at = db.utcnow() + RESET_CODE_TTL
            user.password_reset_failed_attempts = 0
            user.touch()
            send_after_commit(
                Mail(
                    to=user.email,
                    subject="Reset your password",
                    text=(
                        f"Your password reset code is: {code}\n\n"
                        "This code expires in 1 hour. If you did not ask for it, ignore this email."
                    ),
                )
            )
    return "If an account exists with this email, you will receive a password reset code."


def _end_sessions(user: User) -> None:
    """The user's tokens die with the change being made: a new credential version, and this process forgets
    its verifications of them once the change is committed (other processes' lapse within
    `verified_tokens.TTL_SECONDS`)."""
    user.credential_version += 1
    _forget_verified(user.id)


def _forget_verified(user_id: uuid.UUID) -> None:
    async def forget() -> None:
        verified_tokens.forget_user(user_id)

    db.after_commit(forget)


async def reset_password(email: str, code: str, new_password: str) -> str:
    _require_mode("users")
    _validate_password(new_password, "New password")
    async with db.transaction() as session:
        user = await UserRepository(session).get_by_email(email.strip().lower())
        if user is None or not user.password_reset_token:
            raise BadRequest(INVALID_RESET)
        expires = user.password_reset_token_expires_at
        if expires is None or expires < db.utcnow():
            raise BadRequest("Reset code has expired")
        if not await verify_secret(code, user.password_reset_token):
            user.password_reset_failed_attempts += 1
            if user.password_reset_failed_attempts >= MAX_RESET_ATTEMPTS:
                user.password_reset_token = None
                user.password_reset_token_expires_at = None
            user.touch()
            # The failed attempt must be counted even though we answer with an error.
            db.commit_on_error()
            raise BadRequest(INVALID_RESET)
        user.password_hash = await hash_secret(new_password)
        _end_sessions(user)
        user.password_reset_token = None
        user.password_reset_token_expires_at = None
        user.password_reset_failed_attempts = 0
        user.touch()
    return "Password reset successfully. You can now log in with your new password."


async def change_password(principal: Principal, current: str, new: str, confirmation: str) -> str:
    _require_mode("users")
    user_id = principal.require_user_id()
    _validate_password(new, "New password")
    if new != confirmation:
        raise BadRequest("New password and confirmation do not match")
    async with db.transaction() as session:
        user = await _get_in_tenant(UserRepository(session), user_id)
        if not user.password_hash:
            raise BadRequest("This account uses external authentication. Cannot change password here.")
        if not await verify_secret(current, user.password_hash):
            raise Unauthorized("Current password is incorrect")
        user.password_hash = await hash_secret(new)
        _end_sessions(user)
        user.touch()
    return "Password changed successfully."


# --- admin user management (users and keycloak modes) -----------------------------------------------


async def list_users(principal: Principal, limit: int, offset: int) -> list[User]:
    _require_mode("users", "keycloak")
    async with db.transaction() as session:
        return await UserRepository(session).newest_first(limit, offset)


async def get_user(principal: Principal, user_id: uuid.UUID) -> User:
    _require_mode("users", "keycloak")
    async with db.transaction() as session:
        return await _get_in_tenant(UserRepository(session), user_id)


async def create_user(principal: Principal, email: str, password: str, role: str | None) -> User:
    _require_mode("users", "keycloak")
    email = normalize_email(email)
    _validate_password(password)
    async with db.transaction() as session:
        user, _ = await _new_user(UserRepository(session), email, password, role)
    return user


async def update_user(
    principal: Principal,
    user_id: uuid.UUID,
    *,
    email: str | None = None,
    password: str | None = None,
    role: str | None = None,
) -> User:
    _require_mode("users", "keycloak")
    if password is not None:
        _validate_password(password)
    new_email = normalize_email(email) if email is not None else None
    async with db.transaction() as session:
        users = UserRepository(session)
        user = await _get_in_tenant(users, user_id, lock=True)
        if new_email is not None and new_email != user.email:
            if await users.get_by_email(new_email) is not None:
                raise Conflict(DUPLICATE_EMAIL)
            # A changed address must be proven again before the account can log in.
            code = new_code()
            user.email = new_email
            user.email_confirmed_at = None
            user.email_confirmation_token = await hash_secret(code)
            _forget_verified(user.id)  # the tokens stay valid, but name the old address
            send_after_commit(_confirmation_mail(new_email, code))
        if password is not None:
            user.password_hash = await hash_secret(password)
            _end_sessions(user)
        if role is not None and role != user.role:
            user.role = role
            _end_sessions(user)
        user.touch()
    return user


async def delete_user(principal: Principal, user_id: uuid.UUID) -> None:
    """Deletes the account and its purely personal rows; refused (409) while billing data points at it.

    * Subscriptions, backorders, open positions, invoices (and through them payments) and usage records
      are financial records a billing system must keep: while any of them names the user the delete is
      refused with 409, naming what still references the user (a deviation: the reference documents
      only 204/404). Locking the account is the way to stop such a customer from signing in.
    * The customer profile (name, address, phone) is personal data of the account and goes with it (its
      foreign key is ON DELETE CASCADE); by then no invoice that copied the buyer from it exists.
    * Audit trail entries naming the user stay untouched: the trail is append-only and has no foreign key.

    The check runs in the delete's transaction with the user row locked; a referencing row inserted
    concurrently is refused by the foreign key and answered with the same 409.
    """
    _require_mode("users", "keycloak")
    if principal.user_id == user_id:
        # Deviation from the reference (which has no guard): an admin deleting their own account can
        # lock a tenant out of administration; lock/unlock already refuse the same.
        raise BadRequest("You cannot delete your own account")
    async with db.transaction() as session:
        users = UserRepository(session)
        user = await _get_in_tenant(users, user_id, lock=True)
        await users.remove_unreferenced(user, "User", USER_HAS_BILLING_DATA_HINT)
        _forget_verified(user_id)


async def set_locked(principal: Principal, user_id: uuid.UUID, locked: bool) -> User:
    _require_mode("users", "keycloak")
    if principal.user_id == user_id:
        verb = "lock" if locked else "unlock"
        raise BadRequest(f"You cannot {verb} your own account")
    async with db.transaction() as session:
        user = await _get_in_tenant(UserRepository(session), user_id, lock=True)
        if locked and user.locked_at is None:
            _end_sessions(user)  # unlocking does not bring the tokens of before the lock back
        user.locked_at = db.utcnow() if locked else None
        user.touch()
    return user


async def create_admin(email: str, password: str) -> User:
    """Console command `decabill create-admin`: an admin of the current tenant, confirmed at once."""
    email = normalize_email(email)
    _validate_password(password)
    async with db.transaction() as session:
        users = UserRepository(session)
        if await users.get_by_email(email) is not None:
            raise Conflict(DUPLICATE_EMAIL)
        user = await users.create(User(
            email=email,
            password_hash=await hash_secret(password),
            role="admin",
            email_confirmed_at=db.utcnow(),
        ))
    return user


# --- for other domains (each joins the caller's transaction) ---------------------------------------------


async def find_user(user_id: uuid.UUID) -> User | None:
    """The tenant's user, or None."""
    async with db.transaction() as session:
        return await UserRepository(session).get(user_id)


async def find_users(user_ids: list[uuid.UUID]) -> dict[uuid.UUID, User]:
    """The tenant's users among `user_ids` (one query, for many dashboards at once)."""
    async with db.transaction() as session:
        return await UserRepository(session).by_ids(user_ids)


async def user_email(user_id: uuid.UUID) -> str | None:
    async with db.transaction() as session:
        return await UserRepository(session).email_of(user_id)


async def user_emails(user_ids: list[uuid.UUID]) -> dict[uuid.UUID, str | None]:
    async with db.transaction() as session:
        return await UserRepository(session).emails_of(user_ids)


async def admin_emails() -> list[str]:
    """Where operator alerts of the current tenant go (its unlocked admins)."""
    async with db.transaction() as session:
        return await UserRepository(session).admin_emails()


async def users_oldest_first(user_ids: list[uuid.UUID]) -> list[User]:
    """Those of the given ids that are users of the tenant, oldest account first."""
    async with db.transaction() as session:
        return await UserRepository(session).of_ids(user_ids)
