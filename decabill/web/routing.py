"""Connexion's routing with its routes indexed by their first path segment.

Connexion's `RoutingMiddleware` routes every request from the spec through a Starlette `Router`: one `Route` per
(path, method) of spec/openapi.yaml, tried one after the other with its regular expression until one matches
(~5 % of an authenticated read, py-spy: `Route.matches`, `get_route_path`, the router's loop). A route whose
first segment is literal (`/invoices/{id}`) can only match a path with that first segment, so the router here
tries only the routes that can: those with the request's first segment and those whose first segment holds a
parameter, **in their registration order** — the same route wins, a method mismatch is the same partial
match (405). A request no candidate matches goes through Starlette's own loop unchanged (the slash redirect
and the default: 404s, the docs). The routes are Connexion's, made from the spec as before; only the order of
looking is cut short.

Plugged in through the middleware list Connexion takes (`ConnexionMiddleware.default_middlewares`, replaced
in `decabill/web/stack.py`); `tests/web/test_request_path.py` fails if Connexion's routing changes under it.
"""

from __future__ import annotations

from starlette.routing import BaseRoute, Match, Mount, Route, Router, get_route_path
from starlette.types import Receive, Scope, Send

from connexion.middleware.routing import RoutingMiddleware

ANY = "{"  # the index key of the routes whose first segment holds a parameter


def _first_segment(path: str) -> str:
    return path.split("/", 2)[1] if path.startswith("/") else ANY


class IndexedRouter(Router):
    """A Starlette router that tries only the routes that can match the request's first path segment."""

    _index: dict[str, tuple[BaseRoute, ...]] | None = None
    _indexed = -1  # how many routes the index was built from (a route added later rebuilds it)

    def _candidates(self, segment: str) -> tuple[BaseRoute, ...]:
        routes = self.routes
        if self._indexed != len(routes):
            self._build(routes)
        return self._index.get(segment) or self._index[ANY]  # type: ignore[union-attr]

    def _build(self, routes: list[BaseRoute]) -> None:
        keyed: list[tuple[str, BaseRoute]] = []
        for route in routes:
            if type(route) is not Route:  # a mount, a host, anything else: tried for every path
                keyed.append((ANY, route))
                continue
            segment = _first_segment(route.path)
            keyed.append((ANY if ANY in segment else segment, route))
        segments = {segment for segment, _ in keyed if segment != ANY}
        index = {segment: tuple(r for s, r in keyed if s in (segment, ANY)) for segment in segments}
        index[ANY] = tuple(r for s, r in keyed if s == ANY)
        self._index, self._indexed = index, len(routes)

    def match(self, scope: Scope) -> tuple[BaseRoute, Scope] | None:
        """Starlette's choice among the candidates: the first full match, else the first partial one (a method
        mismatch: 405); None when none matches."""
        partial = None
        for route in self._candidates(_first_segment(get_route_path(scope))):
            match, child_scope = route.matches(scope)
            if match is Match.FULL:
                return route, child_scope
            if match is Match.PARTIAL and partial is None:
                partial = route, child_scope
        return partial

    async def app(self, scope: Scope, receive: Receive, send: Send) -> None:
        found = self.match(scope) if scope["type"] == "http" else None
        if found is None:  # no candidate, or not a request: Starlette's loop, slash redirect and default
            await super().app(scope, receive, send)
            return
        route, child_scope = found
        scope.setdefault("router", self)
        scope["route"] = route
        scope.update(child_scope)
        await route.handle(scope, receive, send)


class IndexedRoutingMiddleware(RoutingMiddleware):
    """Connexion's routing middleware whose API routers (the mounts under the base paths) are indexed."""

    def add_api(self, *args, **kwargs) -> None:
        super().add_api(*args, **kwargs)
        for route in self.router.routes:
            if isinstance(route, Mount) and type(route.app) is Router:
                route.app = route._base_app = _indexed(route.app)  # noqa: SLF001 - the mount's own app


def _indexed(router: Router) -> Router:
    """The same router (its routes, default, lifespan, slash redirect) indexed; a router with middleware of its
    own (none in Connexion's) is left as it is."""
    if router.middleware_stack != router.app:
        return router
    indexed = IndexedRouter.__new__(IndexedRouter)
    indexed.__dict__.update(router.__dict__)
    indexed.middleware_stack = indexed.app  # Router.__call__ enters through its middleware stack
    return indexed
