"""Outgoing email over SMTP (aiosmtplib). Best-effort: a mail failure is logged, never turned into a
failed business operation, and mails are sent only after the transaction that caused them commits.

`send_now(mail)` is one SMTP transaction; `connection()` sends many over one SMTP connection. Mails that must go out exactly once even when a process dies
(billing mails) are recorded and delivered by `decabill.invoicing.mail` (`record` in the transaction of the
event, `deliver(delivery_id)` from any job): a claim with a renewed lease, the state written before and after
the SMTP transaction, and a stable `Message-ID` (`message_id(key)`) so that the one copy a crash in the
milliseconds between the server's "250 OK" and our commit can cause is recognisably the same mail."""

from __future__ import annotations

import base64
import binascii
import contextlib
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from email.message import EmailMessage
from email.utils import getaddresses, make_msgid, parseaddr

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


# --- the common mail written straight to bytes ---------------------------------------------------------
# `_build` (the `email` package) costs ~1 ms of Python per mail with a PDF: a fifth of a billing-day worker
# (issue #19). Mails whose headers are plain ASCII on one line — every billing mail in practice — are
# written here instead, in the same MIME structure `_build` gives them (text, or text + HTML alternatives,
# then the attachments, base64); anything else (a non-ASCII subject or address, a long header, an odd file
# name) goes through `_build`, which encodes it.

_CRLF = b"\r\n"
_MAX_HEADER = 900  # well below SMTP's 998 octets per line, with the header's name


def _plain_header(value: str) -> bool:
    return value.isascii() and len(value) <= _MAX_HEADER and "\r" not in value and "\n" not in value


def _text_part(content: str, subtype: str) -> bytes:
    """A text part: 7bit when it is ASCII in lines SMTP accepts, else UTF-8 quoted-printable."""
    text = content.replace("\r\n", "\n")
    if text.isascii() and "\r" not in text and "\0" not in text and max(map(len, text.split("\n"))) <= _MAX_HEADER:
        encoding, body = "7bit", text.encode("ascii")
    else:
        encoding, body = "quoted-printable", binascii.b2a_qp(text.encode(), istext=True)
    return (f'Content-Type: text/{subtype}; charset="utf-8"\r\nContent-Transfer-Encoding: {encoding}\r\n\r\n'
            .encode() + body.replace(b"\n", _CRLF))


def _attachment_part(attachment: Attachment) -> bytes:
    return (f"Content-Type: {attachment.mime_type}\r\nContent-Transfer-Encoding: base64\r\n"
            f'Content-Disposition: attachment; filename="{attachment.filename}"\r\n\r\n'.encode()
            + base64.encodebytes(attachment.content).replace(b"\n", _CRLF))


def _multipart(subtype: str, parts: list[bytes]) -> bytes:
    boundary = f"=_decabill_{uuid.uuid4().hex}"
    while any(boundary.encode() in part for part in parts):  # pragma: no cover - 128 random bits
        boundary = f"=_decabill_{uuid.uuid4().hex}"
    delimiter = f"\r\n--{boundary}\r\n".encode()
    return (f'Content-Type: multipart/{subtype}; boundary="{boundary}"\r\n\r\n'.encode()
            + delimiter[2:] + delimiter.join(parts) + f"\r\n--{boundary}--\r\n".encode())


def _raw(mail: Mail) -> tuple[str, list[str], bytes] | None:
    """(envelope sender, recipients, the message's bytes) of a mail with plain headers; None for the others,
    which `_build` encodes."""
    sender = get_settings().email_from
    message_id = mail.message_id or make_msgid(domain="decabill.localhost")
    names = [attachment.filename for attachment in mail.attachments]
    if not all(_plain_header(value) for value in (sender, mail.to, mail.subject, message_id, *names)) or any(
            '"' in name or "\\" in name for name in names) or not all(
            _plain_header(attachment.mime_type) and attachment.mime_type.count("/") == 1
            for attachment in mail.attachments):
        return None
    recipients = [address for _name, address in getaddresses([mail.to]) if address]
    if not recipients:
        return None
    body = _text_part(mail.text, "plain")
    if mail.html:
        body = _multipart("alternative", [body, _text_part(mail.html, "html")])
    if mail.attachments:
        body = _multipart("mixed", [body, *map(_attachment_part, mail.attachments)])
    headers = (f"Message-ID: {message_id}\r\nFrom: {sender}\r\nTo: {mail.to}\r\nSubject: {mail.subject}\r\n"
               "MIME-Version: 1.0\r\n")
    return parseaddr(sender)[1] or sender, recipients, headers.encode() + body


async def _submit(client: aiosmtplib.SMTP, sender: str, recipients: list[str], message: bytes) -> None:
    """Hand a message written by `_raw` to the server: aiosmtplib's `sendmail` — its MAIL, RCPT and DATA
    commands, RSET after a refusal — but declaring the SIZE (RFC 1870, when the server offers it) as the
    message's length: `sendmail` runs its line-ending regex over the whole message once more only to count the
    size (~0.3 ms of a billing-day worker per mail with its PDF, a third of the SMTP client's CPU; issue #19),
    and `_raw` writes CRLF line endings already. DATA still does its own normalising and dot-stuffing. Several
    recipients (where `sendmail` accepts a partial refusal) go through `sendmail`."""
    if len(recipients) != 1:
        await client.sendmail(sender, recipients, message)
        return
    size = len(message) if message.endswith(_CRLF) else len(message) + len(_CRLF)
    try:
        await client.mail(sender, options=[f"SIZE={size}"] if client.supports_extension("size") else [])
        await client.rcpt(recipients[0])
        await client.data(message)
    except aiosmtplib.SMTPResponseException:
        with contextlib.suppress(aiosmtplib.SMTPException, OSError):
            await client.rset()  # the envelope reset for the next mail over this connection, as `sendmail` does
        raise


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
                raw = _raw(mail)
                if raw is None:
                    await client.send_message(_build(mail))
                else:
                    await _submit(client, *raw)
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
