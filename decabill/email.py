"""Outgoing email over SMTP (aiosmtplib). Best-effort: a mail failure is logged, never turned into a
failed business operation, and mails are sent only after the transaction that caused them commits.

`send_now(mail)` is one SMTP transaction; `connection()` sends many over one SMTP connection. Mails that must go out exactly once even when a process dies
(billing mails) are recorded and delivered by `decabill.invoicing.mail` (`record` in the transaction of the
event, `deliver(delivery_id)` from any job): a claim with a renewed lease, the state written before and after
the SMTP transaction, and a stable `Message-ID` (`message_id(key)`) so that the one copy a crash in the
milliseconds between the server's "250 OK" and our commit can cause is recognisably the same mail."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from email.message import EmailMessage
from email.utils import make_msgid

import aiosmtplib
import structlog

from decabill import db
from decabill.config import get_settings
from decabill.observability import calls

log = structlog.get_logger(__name__)


@dataclass(frozen=True)
class Attachment:
    filename: str
    content: bytes
    mime_type: str = "application/pdf"


@dataclass(frozen=True)
class Mail:
    to: str
    subject: str
    text: str
    html: str | None = None
    attachments: tuple[Attachment, ...] = field(default_factory=tuple)
    message_id: str | None = None  # stable across retries (`message_id(key)`); a fresh one otherwise


def message_id(key: str) -> str:
    """The Message-ID of the mail known by `key` (e.g. its delivery id): the same on every attempt."""
    domain = get_settings().email_from.rpartition("@")[2].strip(" >") or "decabill.localhost"
    return f"<{key}@{domain}>"


def _build(mail: Mail) -> EmailMessage:
    message = EmailMessage()
    message["Message-ID"] = mail.message_id or make_msgid(domain="decabill.localhost")
    message["From"] = get_settings().email_from
    message["To"] = mail.to
    message["Subject"] = mail.subject
    message.set_content(mail.text)
    if mail.html:
        message.add_alternative(mail.html, subtype="html")
    for attachment in mail.attachments:
        maintype, _, subtype = attachment.mime_type.partition("/")
        message.add_attachment(attachment.content, maintype=maintype, subtype=subtype, filename=attachment.filename)
    return message


async def send_now(mail: Mail) -> bool:
    async with connection() as send:
        return await send(mail)


@asynccontextmanager
async def connection() -> AsyncIterator[Callable[[Mail], Awaitable[bool]]]:
    """`send(mail) -> bool` over ONE SMTP connection for the block (opened at the first mail, opened again
    after the server dropped it): a batch of mails without a connect, EHLO and login each. A mail the server
    refuses is logged and answered False; the next one goes on."""
    settings = get_settings()
    client: aiosmtplib.SMTP | None = None

    async def send(mail: Mail) -> bool:
        nonlocal client
        if not settings.email_enabled:
            log.info("email.skipped", reason="SMTP not configured", subject=mail.subject)
            return False
        try:
            with calls.smtp_send():
                if client is None or not client.is_connected:
                    client = aiosmtplib.SMTP(hostname=settings.smtp_host, port=settings.smtp_port,
                                             username=settings.smtp_user or None,
                                             password=settings.smtp_password or None,
                                             start_tls=False if not settings.smtp_user else None, timeout=15)
                    await client.connect()
                await client.send_message(_build(mail))
        except (aiosmtplib.SMTPException, OSError) as exc:
            log.warning("email.failed", to=mail.to, subject=mail.subject, error=str(exc))
            return False
        log.info("email.sent", to=mail.to, subject=mail.subject)
        return True

    try:
        yield send
    finally:
        if client is not None and client.is_connected:
            with contextlib.suppress(aiosmtplib.SMTPException, OSError):
                await client.quit()


def send_after_commit(mail: Mail) -> None:
    async def _send() -> None:
        await send_now(mail)

    db.after_commit(_send)
