"""The HTTP application: Connexion routes every request from spec/openapi.yaml to `handlers/`."""

from __future__ import annotations

import copy
import functools
from contextlib import asynccontextmanager

from connexion.decorators import parameter as connexion_parameters
from connexion.middleware import MiddlewarePosition
from starlette.middleware.cors import CORSMiddleware

from decabill import db
from decabill.config import Settings, get_settings
from decabill.web import observability as observability_http
from decabill.web import errors
from decabill.web.docs import swagger_ui_options
from decabill.web.encoding import OrjsonJsonifier
from decabill.web.middleware import RequestContextMiddleware
from decabill.web.operations import DecabillAsyncApp
from decabill.web.security import SECURITY_MAP
from decabill.web.stack import middlewares
from decabill.web.validation import VALIDATOR_MAP, SpecURIParser
from handlers import AreaResolver
from spec import openapi_document

ALLOWED_HEADERS = ["Content-Type", "Authorization", "X-Correlation-Id", "X-Request-Id", "X-Tenant", "Stripe-Signature",
                   "Idempotency-Key"]
EXPOSED_HEADERS = ["Content-Range", "X-Content-Range", "X-Correlation-Id"]


# `pythonic_params` converts every parameter name of every request with `inflection`'s regexes (~2.5 % of a
# customer list request, py-spy); the names are the spec's (and a client's query keys), so the conversion is
# remembered, bounded. Read by Connexion's parameter decorators when the API is added.
if not hasattr(connexion_parameters.pythonic, "cache_info"):
    connexion_parameters.pythonic = functools.lru_cache(maxsize=1024)(connexion_parameters.pythonic)


def create_app(settings: Settings | None = None) -> DecabillAsyncApp:
    settings = settings or get_settings()

    @asynccontextmanager
    async def lifespan(_app):
        owns_engine = False
        try:
            db.get_engine()
        except RuntimeError:
            db.init_engine(settings.database_url, **settings.database_pool)
            owns_engine = True
        yield
        if owns_engine:
            await db.dispose_engine()

    app = DecabillAsyncApp(__name__, lifespan=lifespan, security_map=SECURITY_MAP, middlewares=middlewares(),
                             jsonifier=OrjsonJsonifier())
    app.add_api(
        # the parsed document, not the file: Connexion would parse it again with the pure-Python YAML loader (two
        # thirds of building the app); a copy, as Connexion fills in defaults in the document it is given
        copy.deepcopy(openapi_document()),
        base_path="/api",
        resolver=AreaResolver(wrap_reads=db.retried_on_lost_connection),  # a GET is safe to run twice
        pythonic_params=True,
        strict_validation=True,
        validate_responses=settings.validate_responses,
        validator_map=VALIDATOR_MAP,
        uri_parser_class=SpecURIParser,
        swagger_ui_options=swagger_ui_options(settings),  # /api/docs/, /api/openapi.json
    )
    errors.register(app)
    observability_http.install(app)  # outermost: counts and traces the refusals of the middlewares below too
    origins = settings.cors_origins
    app.add_middleware(
        CORSMiddleware,
        position=MiddlewarePosition.BEFORE_EXCEPTION,
        allow_origins=origins,
        allow_credentials=bool(origins) and "*" not in origins,
        allow_methods=["GET", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"],
        allow_headers=ALLOWED_HEADERS,
        expose_headers=EXPOSED_HEADERS,
    )
    # Added after CORS so it sits inside it: its own refusals (400 tenant, 403 origin, 429, 413) carry CORS
    # headers. It bounds the request body after its own checks (rate limited first, the 413 carries the
    # correlation id), outside the error mapper, which answers the 413 raised while the validator reads an
    # oversize chunked body.
    app.add_middleware(RequestContextMiddleware, position=MiddlewarePosition.BEFORE_EXCEPTION, settings=settings)
    return app
