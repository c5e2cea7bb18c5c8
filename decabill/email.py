"""Outgoing email over SMTP (aiosmtplib). Best-effort: a mail failure is logged, never turned into a
failed business operation, and mails are sent only after the transaction that caused them commits."""

from __future__ import annotations

from dataclasses import dataclass, field
from email.message import EmailMessage

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


def _build(mail: Mail) -> EmailMessage:
    message = EmailMessage()
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
    settings = get_settings()
    if not settings.email_enabled:
        log.info("email.skipped", reason="SMTP not configured", subject=mail.subject)
        return False
    try:
        with calls.smtp_send():
            await aiosmtplib.send(
                _build(mail),
                hostname=settings.smtp_host,
                port=settings.smtp_port,
                username=settings.smtp_user or None,
                password=settings.smtp_password or None,
                start_tls=False if not settings.smtp_user else None,
                timeout=15,
            )
    except (aiosmtplib.SMTPException, OSError) as exc:
        log.warning("email.failed", to=mail.to, subject=mail.subject, error=str(exc))
        return False
    log.info("email.sent", to=mail.to, subject=mail.subject)
    return True


def send_after_commit(mail: Mail) -> None:
    async def _send() -> None:
        await send_now(mail)

    db.after_commit(_send)
