"""A provider's client keeps its HTTP connections alive between calls; an API closes a kept-alive connection when
it likes, and the client finds out only when it reuses it. Hetzner's client (hcloud over requests) sends a read
once more on a new connection then, and repeats nothing else. The server here is plain HTTP/1.1 on loopback: it
answers the first request of every connection and keeps it open, and resets a connection at its second request
without answering — a connection the API dropped while it sat in the client's pool."""

from __future__ import annotations

import socket
import struct
import threading
from collections.abc import Iterator

import pytest
import requests

from decabill.providers.hetzner import HetznerProvider

_ANSWER = b'HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 2\r\nConnection: keep-alive\r\n\r\n{}'


class _DroppingServer:
    def __init__(self) -> None:
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.listener.settimeout(10)
        self.requests = 0
        self.connections = 0
        self._stop = False
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.listener.getsockname()[1]}/v1"

    def _serve(self) -> None:
        while not self._stop:
            try:
                connection, _ = self.listener.accept()
            except OSError:
                return
            self.connections += 1
            threading.Thread(target=self._connection, args=(connection,), daemon=True).start()

    def _connection(self, connection: socket.socket) -> None:
        connection.settimeout(10)
        with connection:
            for turn in range(2):
                if not self._request(connection):
                    return
                self.requests += 1
                if turn == 0:
                    connection.sendall(_ANSWER)
                else:  # the second request on this connection: reset, no answer
                    connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
                    return

    @staticmethod
    def _request(connection: socket.socket) -> bool:
        data = b""
        while b"\r\n\r\n" not in data:
            chunk = connection.recv(4096)
            if not chunk:
                return False
            data += chunk
        return True

    def close(self) -> None:
        self._stop = True
        self.listener.close()


@pytest.fixture
def dropping() -> Iterator[_DroppingServer]:
    server = _DroppingServer()
    yield server
    server.close()


def test_a_read_on_a_connection_the_api_dropped_is_sent_again_on_a_new_one(dropping):
    session = HetznerProvider("token", dropping.url, timeout=5)._new_client("token")._client._session
    assert session.get(f"{dropping.url}/servers/1", timeout=5).json() == {}
    # the pooled connection is reused and reset: the read goes out once more, on a second connection
    assert session.get(f"{dropping.url}/servers/1", timeout=5).json() == {}
    assert (dropping.connections, dropping.requests) == (2, 3)


def test_a_write_is_not_repeated(dropping):
    session = HetznerProvider("token", dropping.url, timeout=5)._new_client("token")._client._session
    assert session.post(f"{dropping.url}/servers", json={}, timeout=5).json() == {}
    with pytest.raises(requests.exceptions.ConnectionError):
        session.post(f"{dropping.url}/servers", json={}, timeout=5)
    assert (dropping.connections, dropping.requests) == (1, 2)
