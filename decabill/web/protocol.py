"""The HTTP protocol of `decabill serve`: uvicorn's httptools protocol with a response's writes sent as one.

uvicorn writes a response's status line and headers, then its body: two writes, so two system calls and two TCP
segments the client wakes up for (uvloop sets TCP_NODELAY). Starlette sends `http.response.start` and a whole body
in one step of the event loop (neither `await send(...)` suspends), so a transport that holds what is written until
the loop's next turn sends both in one write. A response streamed in several steps goes out one step at a time, as
before; nothing is held past the step that wrote it. docs/performance.md ("One write per response") has the figures.
Sending a complete response at once instead of at the next turn was tried and measured: the offerings' p99 at 50
connections went from ~20 to 40-125 ms ("Main on a quiet host, ninth session").
"""

from __future__ import annotations

import asyncio
from typing import Any

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol  # httptools comes with uvicorn[standard]


class StepWriteTransport:
    """A transport whose writes within one step of the event loop reach the wrapped transport as one write, at the
    start of the loop's next turn (or before a close or an end of file). Everything else is the wrapped transport's."""

    __slots__ = ("_transport", "_loop", "_pending")

    def __init__(self, transport: asyncio.Transport, loop: asyncio.AbstractEventLoop) -> None:
        self._transport = transport
        self._loop = loop
        self._pending: list[bytes] | None = None

    def write(self, data: bytes) -> None:
        if type(data) is not bytes:  # a bytearray or memoryview may change before the flush: keep what was written
            data = bytes(data)
        if self._pending is None:
            self._pending = [data]
            self._loop.call_soon(self._flush)
        else:
            self._pending.append(data)

    def writelines(self, list_of_data: Any) -> None:
        for data in list_of_data:
            self.write(data)

    def _flush(self) -> None:
        pending, self._pending = self._pending, None
        if pending and not self._transport.is_closing():
            self._transport.write(pending[0] if len(pending) == 1 else b"".join(pending))

    def get_write_buffer_size(self) -> int:
        return self._transport.get_write_buffer_size() + sum(map(len, self._pending or ()))

    def write_eof(self) -> None:
        self._flush()
        self._transport.write_eof()

    def close(self) -> None:
        self._flush()
        self._transport.close()

    def abort(self) -> None:
        self._pending = None
        self._transport.abort()

    def __getattr__(self, name: str) -> Any:  # is_closing, get_extra_info, pause_reading, set_protocol...
        return getattr(self._transport, name)


class OneWriteHttpProtocol(HttpToolsProtocol):
    """uvicorn's httptools protocol on a `StepWriteTransport`: a response written in one step is one write."""

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(StepWriteTransport(transport, self.loop))  # type: ignore[arg-type]
