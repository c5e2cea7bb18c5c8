"""Shared handler helpers: the caller's principal, role checks, spec-driven response shaping, and PDF
downloads (`pdf_attachment`).

`dump(obj, "UserResponse")` shapes a response from the spec's schema of that name (`decabill.shapes`).
`idempotent(operation_id)` honours `Idempotency-Key` on the operations marked `x-idempotent` (decabill/idempotency).
"""

from __future__ import annotations

import functools
from typing import TYPE_CHECKING, Any, Callable

from connexion import request
from connexion.lifecycle import ConnexionResponse

from decabill.config import get_settings
from decabill.idempotency import service as idempotency
from decabill.identity.principal import Principal, require_admin
from decabill.shapes import dump, dump_list, shape  # noqa: F401 - the handlers' response shapes

if TYPE_CHECKING:
    from decabill.catalog.service import EncodedAnswer
    from decabill.invoicing.service import Pdf


def principal(token_info: dict) -> Principal:
    return token_info["principal"]


def admin_only(handler: Callable) -> Callable:
    """Admin role required (403 `Forbidden resource` otherwise); the API key counts as admin."""

    @functools.wraps(handler)
    async def wrapper(*args: Any, **kwargs: Any) -> Any:
        require_admin(principal(kwargs["token_info"]))
        return await handler(*args, **kwargs)

    return wrapper


def idempotent(operation_id: str) -> Callable[[Callable], Callable]:
    """Honour `Idempotency-Key` on this handler (operations marked `x-idempotent: true`); without the header
    the handler simply runs."""

    def decorate(handler: Callable) -> Callable:
        @functools.wraps(handler)
        async def wrapper(*args: Any, **kwargs: Any) -> Any:
            key = request.headers.get(idempotency.HEADER)
            if key is None or "token_info" not in kwargs:
                return await handler(*args, **kwargs)
            arguments = {name: value for name, value in kwargs.items() if name != "token_info"}

            async def work() -> idempotency.Response:
                answer = await handler(*args, **kwargs)
                return answer if isinstance(answer, tuple) else (answer, 200)

            return await idempotency.run_once(principal(kwargs["token_info"]), key, operation_id,
                                              idempotency.request_hash(operation_id, arguments), work)

        return wrapper

    return decorate


def cacheable_json(answer: EncodedAnswer) -> ConnexionResponse:
    """200 with the encoded JSON and its ETag, or 304 when the client already holds that version. Clients and
    proxies revalidate every time by default (`PUBLIC_CACHE_MAX_AGE=0`): a catalogue change shows at once."""
    headers = {"ETag": answer.etag, "Cache-Control": f"public, max-age={get_settings().public_cache_max_age}"}
    sent = request.headers.get("if-none-match", "")
    if sent and (sent.strip() == "*" or answer.etag in (tag.strip().removeprefix("W/") for tag in sent.split(","))):
        return ConnexionResponse(status_code=304, headers=headers)
    return ConnexionResponse(status_code=200, body=answer.body, content_type="application/json", headers=headers)


def pdf_attachment(document: Pdf) -> ConnexionResponse:
    """A PDF download: 200 `application/pdf` with the document's file name as an attachment."""
    return ConnexionResponse(status_code=200, body=document.content, mimetype="application/pdf",
                             content_type="application/pdf",
                             headers={"Content-Disposition": f'attachment; filename="{document.filename}"'})
