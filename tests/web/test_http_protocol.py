"""The API server's HTTP protocol (decabill/web/protocol.py): what a response writes in one step of the event loop
reaches the socket as one write; a response streamed over several steps and a connection closed after its
response lose nothing; `decabill serve` runs the API on it, without a `server` header."""

from __future__ import annotations

import asyncio
import socket

import uvicorn
from starlette.responses import Response, StreamingResponse
from uvicorn.server import ServerState

from decabill.cli import _api_config, _BoundServer
from decabill.web.protocol import OneWriteHttpProtocol, StepWriteTransport


class RecordingTransport(asyncio.Transport):
    """What a socket transport does for the protocol, with every write recorded as it reaches the "socket"."""

    def __init__(self) -> None:
        super().__init__()
        self.writes: list[bytes] = []
        self.closed = self.closed_by_server = False

    def write(self, data: bytes) -> None:
        assert not self.closed, "written after close"
        self.writes.append(bytes(data))

    def is_closing(self) -> bool:
        return self.closed

    def close(self) -> None:
        self.closed = True

    def get_extra_info(self, name, default=None):
        return {"sockname": ("127.0.0.1", 8080), "peername": ("127.0.0.1", 50000)}.get(name, default)

    def pause_reading(self) -> None:
        pass

    def resume_reading(self) -> None:
        pass

    def get_write_buffer_size(self) -> int:
        return 0


async def app(scope, receive, send):
    if scope["type"] == "lifespan":
        return
    if scope["path"] == "/stream":
        async def chunks():
            for chunk in (b"one,", b"two,", b"three"):
                await asyncio.sleep(0)  # each chunk in its own step of the loop
                yield chunk
        response = StreamingResponse(chunks(), media_type="text/plain")
    else:
        response = Response(b'{"answer":42}', media_type="application/json")
    await response(scope, receive, send)


async def exchange(request: bytes) -> RecordingTransport:
    """One request through the protocol as uvicorn runs it, until its response is complete."""
    config = uvicorn.Config(app, log_config=None, access_log=False, lifespan="off", http=OneWriteHttpProtocol)
    config.load()
    protocol = OneWriteHttpProtocol(config, ServerState(), {}, asyncio.get_running_loop())
    transport = RecordingTransport()
    protocol.connection_made(transport)
    protocol.data_received(request)
    for _ in range(200):
        await asyncio.sleep(0)
        if protocol.cycle is not None and protocol.cycle.response_complete:
            break
    await asyncio.sleep(0)  # the step that flushes
    assert protocol.cycle.response_complete
    transport.closed_by_server = transport.closed
    protocol.connection_lost(None)  # the client goes: no keep-alive timer left behind
    return transport


async def test_a_response_written_in_one_step_reaches_the_socket_as_one_write():
    transport = await exchange(b"GET /invoices HTTP/1.1\r\nHost: api\r\n\r\n")
    assert len(transport.writes) == 1
    head, _, body = transport.writes[0].partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 200 OK\r\n")
    assert b"content-length: 13" in head.lower()
    assert body == b'{"answer":42}'
    assert not transport.closed_by_server  # kept alive


async def test_a_response_streamed_over_several_steps_arrives_whole_and_in_order():
    transport = await exchange(b"GET /stream HTTP/1.1\r\nHost: api\r\n\r\n")
    assert len(transport.writes) > 1  # nothing held past the step that wrote it
    head, _, body = b"".join(transport.writes).partition(b"\r\n\r\n")
    assert b"transfer-encoding: chunked" in head.lower()
    assert body == b"4\r\none,\r\n4\r\ntwo,\r\n5\r\nthree\r\n0\r\n\r\n"


async def test_a_connection_closed_after_its_response_sends_the_response_first():
    transport = await exchange(b"GET /invoices HTTP/1.1\r\nHost: api\r\nConnection: close\r\n\r\n")
    assert transport.closed_by_server
    assert b"".join(transport.writes).endswith(b'\r\n\r\n{"answer":42}')


async def test_what_is_held_counts_in_the_write_buffer_and_an_abort_drops_it():
    class Abortable(RecordingTransport):
        aborted = False

        def abort(self) -> None:
            self.aborted = self.closed = True

    real = Abortable()
    transport = StepWriteTransport(real, asyncio.get_running_loop())
    transport.writelines([b"abc", b"de"])
    assert transport.get_write_buffer_size() == 5 and real.writes == []
    transport.abort()
    await asyncio.sleep(0)
    assert real.aborted and real.writes == []
    assert transport.get_extra_info("peername") == ("127.0.0.1", 50000)  # the rest is the socket's


async def test_a_buffer_changed_after_its_write_goes_out_as_it_was_written():
    real = RecordingTransport()
    transport = StepWriteTransport(real, asyncio.get_running_loop())
    body = bytearray(b"paid")
    transport.write(b"status: ")
    transport.write(body)
    body[:] = b"void"  # the writer reuses its buffer before the loop's next turn
    await asyncio.sleep(0)
    assert real.writes == [b"status: paid"]


async def test_the_api_server_runs_on_it_and_keeps_connections_alive():
    async def api(scope, receive, send):
        if scope["type"] == "http":
            await Response(scope["path"].encode(), media_type="text/plain")(scope, receive, send)

    config = _api_config(api, "127.0.0.1", 0, [])
    config.lifespan = "off"
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    server = _BoundServer(config, sock)  # as `decabill serve` runs a listener on a bound socket
    serving = asyncio.create_task(server.serve())
    try:
        for _ in range(500):
            if server.started:
                break
            await asyncio.sleep(0.01)
        assert config.http_protocol_class is OneWriteHttpProtocol
        reader, writer = await asyncio.open_connection("127.0.0.1", sock.getsockname()[1])
        answers = []
        for path in (b"/first", b"/second"):  # one connection, two requests
            writer.write(b"GET " + path + b" HTTP/1.1\r\nHost: api\r\n\r\n")
            head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 5)
            assert b"\r\ndate:" in head.lower()
            assert b"\r\nserver:" not in head.lower()  # the software behind the API is not named
            length = int(next(line.split(b":")[1] for line in head.split(b"\r\n")
                              if line.lower().startswith(b"content-length")))
            answers.append((head.split(b"\r\n")[0], await asyncio.wait_for(reader.readexactly(length), 5)))
        assert answers == [(b"HTTP/1.1 200 OK", b"/first"), (b"HTTP/1.1 200 OK", b"/second")]
        writer.close()
    finally:
        server.should_exit = True
        await asyncio.wait_for(serving, 10)
