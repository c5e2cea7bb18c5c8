"""A real SMTP server (aiosmtpd) on 127.0.0.1 that keeps every message it receives; `refuse(address)`
makes it answer `550` to that recipient, as a server does for a mailbox that does not exist; `data_delay` seconds
before each message is accepted make a slow server (a test's window to kill a sender mid-mailing)."""

from __future__ import annotations

import asyncio
import email
import re
import threading
from email.message import EmailMessage
from email.policy import default as default_policy

from aiosmtpd.controller import Controller
from tests.processes import free_port


class _Handler:
    def __init__(self, sink: "SmtpSink"):
        self.sink = sink

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):  # noqa: N802 - aiosmtpd hook
        with self.sink.lock:
            refused = address.lower() in self.sink.refused
        if refused:
            return "550 5.1.1 Requested action not taken: mailbox unavailable"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server, session, envelope):  # noqa: N802 - aiosmtpd hook name
        if self.sink.data_delay:
            await asyncio.sleep(self.sink.data_delay)
        message = email.message_from_bytes(envelope.content, policy=default_policy)
        with self.sink.lock:
            self.sink.messages.append(message)
            self.sink.envelopes.append((list(envelope.mail_options), envelope.original_content))
        return "250 Message accepted for delivery"


class SmtpSink:
    def __init__(self) -> None:
        self.messages: list[EmailMessage] = []
        self.envelopes: list[tuple[list[str], bytes]] = []  # (MAIL FROM options, the message as received) each
        self.refused: set[str] = set()
        self.data_delay = 0.0
        self.lock = threading.Lock()
        self.port = free_port()
        self._controller = Controller(_Handler(self), hostname="127.0.0.1", port=self.port)

    def start(self) -> "SmtpSink":
        self._controller.start()
        return self

    def stop(self) -> None:
        self._controller.stop()

    def clear(self) -> None:
        with self.lock:
            self.messages.clear()
            self.envelopes.clear()
            self.refused.clear()
        self.data_delay = 0.0

    def refuse(self, address: str) -> None:
        with self.lock:
            self.refused.add(address.lower())

    def to(self, address: str) -> list[EmailMessage]:
        with self.lock:
            return [m for m in self.messages if address.lower() in str(m["To"]).lower()]

    @staticmethod
    def text_of(message: EmailMessage) -> str:
        part = message.get_body(preferencelist=("plain",)) or message
        return part.get_content()

    def code_for(self, address: str) -> str:
        """The 6-character code of the newest mail to `address`."""
        messages = self.to(address)
        assert messages, f"no mail was sent to {address}"
        body = self.text_of(messages[-1])
        match = re.search(r"code is:\s*([A-Z0-9]{6})\b", body)
        assert match, body
        return match.group(1)
