"""Connexion's middleware stack with our subclasses in the place of its own, the order unchanged:

* the docs (`DocsMiddleware`, decabill/web/docs.py): its router only for paths that can name a docs route;
* the routing (`IndexedRoutingMiddleware`, decabill/web/routing.py): the spec's routes tried by first segment;
* the security (`SharedRequestSecurityMiddleware`, decabill/web/security.py): the verification reads the
  request's shared view of its headers (decabill/web/request.py);
* the request validation (`PreparedRequestValidationMiddleware`, decabill/web/validation.py): the validators of
  an operation made once, no body work for a request without a body.

`tests/web/test_request_path.py` fails if Connexion's stack no longer holds the classes replaced here.
"""

from __future__ import annotations

from connexion.middleware.main import ConnexionMiddleware
from connexion.middleware.request_validation import RequestValidationMiddleware
from connexion.middleware.routing import RoutingMiddleware
from connexion.middleware.security import SecurityMiddleware
from connexion.middleware.swagger_ui import SwaggerUIMiddleware

from decabill.web.docs import DocsMiddleware
from decabill.web.routing import IndexedRoutingMiddleware
from decabill.web.security import SharedRequestSecurityMiddleware
from decabill.web.validation import PreparedRequestValidationMiddleware

REPLACED = {
    SwaggerUIMiddleware: DocsMiddleware,
    RoutingMiddleware: IndexedRoutingMiddleware,
    SecurityMiddleware: SharedRequestSecurityMiddleware,
    RequestValidationMiddleware: PreparedRequestValidationMiddleware,
}


def middlewares() -> list:
    """A new list per app, since `app.add_middleware` inserts into the list it was given."""
    return [REPLACED.get(m, m) for m in ConnexionMiddleware.default_middlewares]
