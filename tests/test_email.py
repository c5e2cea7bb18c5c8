"""Outgoing mail (decabill/email.py): the common mail — plain one-line ASCII headers — is written straight to
bytes (issue #19: the `email` package cost a fifth of a billing-day worker) in the structure the `email` package
gives it; any other goes through the `email` package. Both reach an SMTP server with the same content."""

from __future__ import annotations

import email as std_email
import os
from email.policy import SMTP, default

from decabill import email


def _parsed(raw: bytes):
    return std_email.message_from_bytes(raw, policy=default)


def _content(message) -> dict:
    return {
        "headers": {name: str(message[name]) for name in ("Message-ID", "From", "To", "Subject", "MIME-Version")},
        "types": [part.get_content_type() for part in message.walk()],
        "text": message.get_body(("plain",)).get_content().replace("\r\n", "\n"),
        "html": (message.get_body(("html",)).get_content().replace("\r\n", "\n").strip()
                 if message.get_body(("html",)) else None),
        "attachments": [(part.get_filename(), part.get_content_type(), part.get_content())
                        for part in message.iter_attachments()],
    }


def _mail(**changes) -> email.Mail:
    values = dict(to="Kim Customer <kim@example.com>", subject="Your invoice INV-2026-000001 is ready",
                  text="Dear Jürgen,\n\n.a line starting with a period\nFrom the start\n\nKind regards\n",
                  html="<html><body><p>Dear J&uuml;rgen,</p></body></html>",
                  attachments=(email.Attachment("INV-2026-000001.pdf", b"%PDF-1.7\n" + os.urandom(30000)),),
                  message_id="<mail-1@example.com>")
    values.update(changes)
    return email.Mail(**values)


def test_a_billing_mail_is_written_as_the_email_package_writes_it(env):
    for mail in (_mail(), _mail(html=None), _mail(attachments=()), _mail(html=None, attachments=()),
                 _mail(text="plain ASCII\r\nonly\n")):
        sender, recipients, raw = email._raw(mail)
        assert (sender, recipients) == ("noreply@localhost", ["kim@example.com"])
        written, built = _parsed(raw), _parsed(email._build(mail).as_bytes(policy=SMTP))
        assert _content(written) == _content(built)
        assert all(not part.defects for part in written.walk())
        lines = raw.split(b"\r\n")
        assert raw.isascii() and b"\n" not in raw.replace(b"\r\n", b"") and max(map(len, lines)) <= 998
        assert b"Content-Transfer-Encoding: base64" in raw or not mail.attachments


def test_headers_the_direct_writer_does_not_encode_go_through_the_email_package(env):
    for mail in (_mail(subject="Ihre Rechnung für März"), _mail(to="Jürgen <j@example.com>"),
                 _mail(subject="x" * 1000), _mail(attachments=(email.Attachment('a"b.pdf', b"x"),)),
                 _mail(subject="injected\r\nBcc: someone@example.com")):
        assert email._raw(mail) is None


async def test_both_ways_reach_the_smtp_server_with_the_same_content(env, smtp_sink):
    smtp_sink.clear()
    fast, encoded = _mail(to="kim@example.com"), _mail(to="kim@example.com", subject="Ihre Rechnung für März")
    assert await email.send_now(fast) and await email.send_now(encoded)
    first, second = smtp_sink.to("kim@example.com")[-2:]
    assert _content(first)["text"] == fast.text and _content(second)["text"] == fast.text
    assert str(second["Subject"]) == "Ihre Rechnung für März"
    assert _content(first)["attachments"] == [("INV-2026-000001.pdf", "application/pdf", fast.attachments[0].content)]
    assert _content(second)["attachments"] == [
        ("INV-2026-000001.pdf", "application/pdf", encoded.attachments[0].content)]


async def test_over_one_connection_a_refused_mail_leaves_the_next_one_its_envelope_and_the_size_is_exact(
        env, smtp_sink):
    """A mail written here goes out as MAIL, RCPT and DATA with its own length as the declared SIZE (not counted
    again by aiosmtplib's `sendmail`, issue #19): the size is the message's as received; after a refused recipient
    the envelope is reset, so the next mail over the same connection goes out."""
    smtp_sink.clear()
    smtp_sink.refuse("gone@example.com")
    async with email.connection() as send:
        assert await send(_mail(to="kim@example.com", message_id="<mail-1@example.com>"))
        assert not await send(_mail(to="gone@example.com", message_id="<mail-2@example.com>"))
        assert await send(_mail(to="kim@example.com", message_id="<mail-3@example.com>"))
    assert [str(m["Message-ID"]) for m in smtp_sink.to("kim@example.com")] == [
        "<mail-1@example.com>", "<mail-3@example.com>"]
    for options, received in smtp_sink.envelopes:
        assert options in ([], [f"SIZE={len(received)}"])
    assert any(options for options, _received in smtp_sink.envelopes)  # declared once the server's EHLO is known
