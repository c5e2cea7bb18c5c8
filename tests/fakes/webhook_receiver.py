"""A webhook receiver, as an operator's ERP would run one: it keeps every POST it receives (raw body and
headers, so a test verifies the signature exactly as a receiver does) and answers 200, or — after
`fail_next(times, status)` — an error for the next `times` requests."""

from __future__ import annotations

from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import Route

from ._common import FakeState, route_path


class ReceiverState(FakeState):
    def reset(self) -> None:
        with self.lock:
            super().reset()
            self.received: list[dict[str, Any]] = []  # the deliveries answered 2xx

    def fail_next(self, times: int = 1, status: int = 500, body: str = "receiver down") -> None:
        self._inject(times=times, status=status, body=body)

    def deliveries(self) -> list[dict[str, Any]]:
        with self.lock:
            return list(self.received)


def create_app(state: ReceiverState) -> Starlette:
    async def receive(request: Request) -> Response:
        raw = await request.body()
        path = route_path(request)
        with state.lock:
            state._log(request, path, body=raw)
            error = state._take_error(request.method, path)
            if error is not None:
                return PlainTextResponse(error["body"], status_code=error["status"])
            state.received.append({"path": path, "body": raw, "headers": dict(request.headers)})
        return PlainTextResponse("ok")

    return Starlette(routes=[Route("/{path:path}", receive, methods=["POST"])])
