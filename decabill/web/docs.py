"""API docs for humans: Connexion's Swagger UI at `/api/docs/` and the contract at `/api/openapi.json`
(and `/api/openapi.yaml`), public like `/api/config`, switched off with `API_DOCS_ENABLED=false`.

Connexion would serve its working copy of the spec, every `$ref` inlined (three times the size, the
component names lost for client generators and for the UI's schema list). We serve the document as
written; only `servers` points at the base path that serves it, so "Try it out" calls this deployment.
"""

from __future__ import annotations

from connexion.middleware.swagger_ui import SwaggerUIAPI, SwaggerUIMiddleware
from connexion.options import SwaggerUIOptions
from starlette.types import Receive, Scope, Send

from decabill.config import Settings

DOCS_PATH = "/docs"
SPEC_PATH_MARK = "/openapi."  # openapi.json, openapi.yaml


class _DocsAPI(SwaggerUIAPI):
    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self._documents: dict[str, dict] = {}

    def _spec_for_prefix(self, request) -> dict:
        base_path = self._base_path_for_prefix(request)
        if base_path not in self._documents:  # a clone re-resolves the whole spec: once per base path
            self._documents[base_path] = self.specification.with_base_path(base_path).raw
        return self._documents[base_path]


class DocsMiddleware(SwaggerUIMiddleware):
    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        # Every request went through the docs' own router (a mount per API, its routes tried one by one,
        # ~2 % of a read); only paths that can name a docs route still do.
        if scope["type"] == "http" and DOCS_PATH not in scope["path"] and SPEC_PATH_MARK not in scope["path"]:
            await self.app(scope, receive, send)
        else:
            await super().__call__(scope, receive, send)

    def add_api(self, specification, base_path=None, arguments=None, **kwargs) -> None:
        api = _DocsAPI(specification, base_path=base_path, arguments=arguments, default=self.default_fn, **kwargs)
        self.router.mount(api.base_path, app=api.router)


def swagger_ui_options(settings: Settings) -> SwaggerUIOptions:
    enabled = settings.api_docs_enabled
    return SwaggerUIOptions(serve_spec=enabled, swagger_ui=enabled, swagger_ui_path=DOCS_PATH)
