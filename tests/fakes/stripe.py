"""Fake Stripe API (customers + Checkout Sessions + events), as a Starlette app, plus webhook helpers.

The real ``stripe`` library (16.x) works against it unmodified:

    stripe.StripeClient("sk_test_x", base_addresses={"api": f"{base}"}, max_network_retries=0)

(``base`` without ``/v1``: the library appends ``/v1/...``). localstripe has no Checkout Sessions, hence this fake.

Wire details honoured:
  * Requests are ``application/x-www-form-urlencoded`` with UNENCODED brackets
    (``line_items[0][price_data][unit_amount]=1999&metadata[k]=v``); :func:`parse_form` rebuilds nested dicts/lists.
  * ``Idempotency-Key`` (stripe-python adds a UUID to EVERY POST): the same key + same endpoint + same params
    replays the saved response (header ``Idempotent-Replayed: true``); same key with other params or another
    endpoint -> 400 ``idempotency_error``. Only successful results are saved (as Stripe: failed validation is not).
  * ``"object": "checkout.session"`` makes the library build ``stripe.checkout.Session`` objects.
  * Errors are ``{"error": {"type", "message", "code"?, "param"?}}``: 400/404 -> ``stripe.InvalidRequestError``,
    401 -> ``stripe.AuthenticationError``, 429 -> ``stripe.RateLimitError``, 5xx -> ``stripe.APIError``.
  * While open, a session's ``payment_intent`` is null (Stripe creates it lazily since API 2022-08-01); it is set
    on completion. ``customer`` stays null in payment mode unless given or ``customer_creation="always"``.

``POST /v1/checkout/sessions/{id}/expire`` closes an open session (``status: expired``, ``url: null``, and the
``checkout.session.expired`` Event, see ``expired_event(id)``); any other status answers Stripe's 400
``Only Checkout Sessions with a status in ["open"] can be expired. This Checkout Session has a status of
`complete`.`` (``invalid_request_error``, no code).

Test helpers on :class:`StripeState`: ``complete_session(id)`` / ``expire_session(id)`` /
``async_payment_succeeded(id)`` mutate a session and return the Event dict the real Stripe would send
(``complete_session`` raises :class:`SessionClosed` for a session that is not open: it cannot be paid);
``add_price(...)``; ``fail_next(status, type, message)``; ``requests`` log; ``customers``, ``sessions``, ``events``.
Module helpers: :func:`sign_webhook`, :func:`make_event`, :func:`webhook_request`.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import re
import secrets
import string
import time
from typing import Any
from urllib.parse import parse_qsl

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from tests.fakes._common import FakeState, route_path

API_VERSION = "2026-10-28.endive"  # what stripe 16.1.0 sends as Stripe-Version
_ALNUM = string.ascii_letters + string.digits


def new_id(prefix: str, n: int = 24) -> str:
    return prefix + "".join(secrets.choice(_ALNUM) for _ in range(n))


# --- form parsing ----------------------------------------------------------------------------------

_KEY_RE = re.compile(r"^([^\[\]]+)((?:\[[^\[\]]*\])*)$")


def parse_form(body: bytes | str) -> dict[str, Any]:
    """Decode Stripe's bracket form encoding into nested dicts/lists.

    ``a[0][b]=1&a[1][b]=2&m[k]=v&e[]=x&e[]=y`` -> ``{"a": [{"b": "1"}, {"b": "2"}], "m": {"k": "v"}, "e": ["x", "y"]}``.
    Values stay strings (as sent); an empty value is kept as "" (Stripe's "unset" marker).
    Keys under ``metadata`` are never turned into list indices.
    """
    if isinstance(body, bytes):
        body = body.decode("utf-8")
    root: dict[str, Any] = {}
    for key, value in parse_qsl(body, keep_blank_values=True):
        m = _KEY_RE.match(key)
        parts = [m.group(1), *re.findall(r"\[([^\[\]]*)\]", m.group(2))] if m else [key]
        node = root
        for i, part in enumerate(parts):
            if part == "":  # "[]" = append
                part = str(len(node))
            if i == len(parts) - 1:
                node[part] = value
            else:
                child = node.get(part)
                if not isinstance(child, dict):
                    child = node[part] = {}
                node = child
    return _listify(root)


def _listify(node: Any, key: str | None = None) -> Any:
    if not isinstance(node, dict):
        return node
    out = {k: _listify(v, k) for k, v in node.items()}
    if key != "metadata" and out and all(k.isdigit() for k in out):
        return [out[k] for k in sorted(out, key=int)]
    return out


# --- webhooks & events -------------------------------------------------------------------------------

def sign_webhook(payload: bytes | str, secret: str, timestamp: int | None = None) -> str:
    """A real ``Stripe-Signature`` header value: ``t=<ts>,v1=<hex HMAC-SHA256(secret, "<ts>.<payload>")>``.
    Accepted by ``stripe.Webhook.construct_event(payload, header, secret)`` (default tolerance 300 s)."""
    if isinstance(payload, bytes):
        payload = payload.decode("utf-8")
    t = int(time.time()) if timestamp is None else int(timestamp)
    sig = hmac.new(secret.encode("utf-8"), f"{t}.{payload}".encode("utf-8"), hashlib.sha256).hexdigest()
    return f"t={t},v1={sig}"


def make_event(event_type: str, data_object: dict[str, Any], event_id: str | None = None, *,
               previous_attributes: dict[str, Any] | None = None) -> dict[str, Any]:
    """A real-shaped Stripe Event (``stripe.Event`` after ``construct_event``)."""
    data: dict[str, Any] = {"object": json.loads(json.dumps(data_object))}  # deep copy, JSON-safe
    if previous_attributes is not None:
        data["previous_attributes"] = previous_attributes
    return {"id": event_id or new_id("evt_"), "object": "event", "api_version": API_VERSION,
            "created": int(time.time()), "data": data, "livemode": False, "pending_webhooks": 1,
            "request": {"id": None, "idempotency_key": None}, "type": event_type}


def webhook_request(event: dict[str, Any], secret: str, timestamp: int | None = None) -> tuple[bytes, dict[str, str]]:
    """(body, headers) to POST to the app's webhook endpoint, as Stripe would send them."""
    body = json.dumps(event, separators=(",", ":")).encode()
    return body, {"Content-Type": "application/json; charset=utf-8",
                  "Stripe-Signature": sign_webhook(body, secret, timestamp),
                  "User-Agent": "Stripe/1.0 (+https://stripe.com/docs/webhooks)"}


# --- state -------------------------------------------------------------------------------------------

class StripeError(Exception):
    def __init__(self, status: int, message: str, *, type: str = "invalid_request_error",
                 code: str | None = None, param: str | None = None):
        super().__init__(message)
        self.status, self.body = status, {"type": type, "message": message}
        if code:
            self.body["code"] = code
            self.body["doc_url"] = f"https://stripe.com/docs/error-codes/{code.replace('_', '-')}"
        if param:
            self.body["param"] = param


class SessionClosed(ValueError):
    """``complete_session`` on a session that is not open: the customer cannot pay it any more."""


def _no_such(kind: str, oid: str, param: str = "id") -> StripeError:
    return StripeError(404 if param == "id" else 400, f"No such {kind}: '{oid}'", code="resource_missing", param=param)


class StripeState(FakeState):
    """``api_key``: None accepts any ``sk_test_...`` key; set a string to require exactly that key."""

    def __init__(self, api_key: str | None = None):
        self.api_key = api_key
        super().__init__()

    def reset(self) -> None:
        with self.lock:
            super().reset()
            self.customers: dict[str, dict[str, Any]] = {}
            self.sessions: dict[str, dict[str, Any]] = {}
            self.line_items: dict[str, list[dict[str, Any]]] = {}  # session id -> parsed line_items as sent
            self.prices: dict[str, dict[str, Any]] = {}
            self.events: dict[str, dict[str, Any]] = {}
            self.idempotency: dict[str, dict[str, Any]] = {}
            self.checkout_url_base = "https://checkout.stripe.test/c/pay/"

    def fail_next(self, status: int, type: str = "api_error", message: str = "injected error", *,
                  code: str | None = None, times: int = 1, path: str | None = None) -> None:
        self._inject(status=status, type=type, message=message, code=code, times=times, path=path)

    def add_price(self, unit_amount: int, currency: str = "eur", product_name: str = "Product",
                  recurring_interval: str | None = None) -> str:
        with self.lock:
            pid = new_id("price_")
            self.prices[pid] = {
                "id": pid, "object": "price", "active": True, "currency": currency, "unit_amount": unit_amount,
                "product": new_id("prod_", 14), "nickname": product_name, "livemode": False,
                "type": "recurring" if recurring_interval else "one_time",
                "recurring": {"interval": recurring_interval, "interval_count": 1} if recurring_interval else None,
                "created": int(time.time()), "metadata": {}}
            return pid

    def _record_event(self, event_type: str, obj: dict[str, Any]) -> dict[str, Any]:
        event = make_event(event_type, obj)
        self.events[event["id"]] = event
        return event

    # --- customers ---
    def create_customer(self, p: dict[str, Any]) -> dict[str, Any]:
        cid = new_id("cus_", 14)
        cust = {
            "id": cid, "object": "customer", "address": None, "balance": 0, "created": int(time.time()),
            "currency": None, "default_source": None, "delinquent": False, "description": p.get("description"),
            "discount": None, "email": p.get("email"), "invoice_prefix": cid[4:12].upper(),
            "invoice_settings": {"custom_fields": None, "default_payment_method": None, "footer": None,
                                 "rendering_options": None},
            "livemode": False, "metadata": {k: v for k, v in (p.get("metadata") or {}).items() if v != ""},
            "name": p.get("name"), "next_invoice_sequence": 1, "phone": p.get("phone"), "preferred_locales": [],
            "shipping": None, "tax_exempt": "none", "test_clock": None,
        }
        self.customers[cid] = cust
        return cust

    def update_customer(self, cid: str, p: dict[str, Any]) -> dict[str, Any]:
        cust = self.customers.get(cid)
        if cust is None:
            raise _no_such("customer", cid)
        for field in ("email", "name", "description", "phone"):
            if field in p:
                cust[field] = p[field] or None  # "" unsets
        for k, v in (p.get("metadata") or {}).items():
            if v == "":
                cust["metadata"].pop(k, None)
            else:
                cust["metadata"][k] = v
        return cust

    # --- checkout sessions ---
    def create_session(self, p: dict[str, Any]) -> dict[str, Any]:
        mode = p.get("mode")
        if not mode:
            raise StripeError(400, "Missing required param: mode.", code="parameter_missing", param="mode")
        if mode not in ("payment", "subscription", "setup"):
            raise StripeError(400, "Invalid mode: must be one of payment, setup, or subscription",
                              code="parameter_invalid_empty", param="mode")
        if p.get("customer") and p.get("customer_email"):
            raise StripeError(400, "You may only specify one of these parameters: customer, customer_email.")
        if p.get("customer") and p["customer"] not in self.customers:
            raise _no_such("customer", p["customer"], param="customer")
        items = p.get("line_items") or []
        if not isinstance(items, list):
            raise StripeError(400, "Invalid array", param="line_items")
        if mode != "setup" and not items:
            raise StripeError(400, f"`line_items` is required in `{mode}` mode.", param="line_items")
        subtotal, currencies = 0, set()
        for i, item in enumerate(items):
            prefix = f"line_items[{i}]"
            try:
                qty = int(item.get("quantity", ""))
            except ValueError:
                raise StripeError(400, f"Quantity is required. Add `quantity` to `{prefix}`.",
                                  param=f"{prefix}[quantity]") from None
            if "price" in item:
                price = self.prices.get(item["price"])
                if price is None:
                    raise _no_such("price", item["price"], param=f"{prefix}[price]")
                unit, cur = price["unit_amount"], price["currency"]
            elif isinstance(item.get("price_data"), dict):
                pd = item["price_data"]
                if not pd.get("currency"):
                    raise StripeError(400, "Missing required param: currency.", code="parameter_missing",
                                      param=f"{prefix}[price_data][currency]")
                if "product" not in pd and "name" not in (pd.get("product_data") or {}):
                    raise StripeError(400, "Missing required param: product_data[name].", code="parameter_missing",
                                      param=f"{prefix}[price_data][product_data][name]")
                try:
                    unit = (int(pd["unit_amount"]) if "unit_amount" in pd
                            else round(float(pd["unit_amount_decimal"])))
                except (KeyError, ValueError):
                    raise StripeError(400, "Missing required param: unit_amount.", code="parameter_missing",
                                      param=f"{prefix}[price_data][unit_amount]") from None
                cur = pd["currency"].lower()
            else:
                raise StripeError(400, "You must specify either `price` or `price_data` in each line item.",
                                  param=prefix)
            subtotal += unit * qty
            currencies.add(cur)
        if len(currencies) > 1:
            raise StripeError(400, "Checkout does not support multiple currencies.", param="line_items")
        now = int(time.time())
        sid = new_id("cs_test_", 58)
        session = {
            "id": sid, "object": "checkout.session", "after_expiration": None, "allow_promotion_codes": None,
            "amount_subtotal": subtotal if mode != "setup" else None,
            "amount_total": subtotal if mode != "setup" else None,
            "automatic_tax": {"enabled": False, "liability": None, "status": None},
            "billing_address_collection": p.get("billing_address_collection"),
            "cancel_url": p.get("cancel_url"), "client_reference_id": p.get("client_reference_id"),
            "client_secret": None, "created": now,
            "currency": (currencies.pop() if currencies else (p.get("currency") or None)),
            "customer": p.get("customer"),
            "customer_creation": p.get("customer_creation", "if_required") if mode == "payment" and not p.get("customer") else None,
            "customer_details": None, "customer_email": p.get("customer_email"),
            "expires_at": int(p["expires_at"]) if p.get("expires_at") else now + 24 * 3600,
            "invoice": None, "livemode": False, "locale": p.get("locale"),
            "metadata": {k: v for k, v in (p.get("metadata") or {}).items() if v != ""},
            "mode": mode, "payment_intent": None, "payment_link": None,
            "payment_method_types": p.get("payment_method_types") or ["card"],
            "payment_status": "no_payment_required" if mode == "setup" else "unpaid",
            "setup_intent": None, "status": "open", "submit_type": p.get("submit_type"), "subscription": None,
            "success_url": p.get("success_url"),
            "total_details": {"amount_discount": 0, "amount_shipping": 0, "amount_tax": 0},
            "ui_mode": p.get("ui_mode", "hosted"), "url": self.checkout_url_base + sid,
        }
        self.sessions[sid] = session
        self.line_items[sid] = items
        return session

    def _session(self, sid: str) -> dict[str, Any]:
        s = self.sessions.get(sid)
        if s is None:
            raise _no_such("checkout.session", sid)
        return s

    def _expire(self, sid: str) -> dict[str, Any]:
        """Close an open session; the ``checkout.session.expired`` Event Stripe then sends."""
        s = self._session(sid)
        if s["status"] != "open":
            raise StripeError(400, 'Only Checkout Sessions with a status in ["open"] can be expired. '
                                   f'This Checkout Session has a status of `{s["status"]}`.')
        s.update(status="expired", url=None)
        return self._record_event("checkout.session.expired", s)

    def expired_event(self, sid: str) -> dict[str, Any]:
        """The ``checkout.session.expired`` Event of a session expired through the API (to deliver it)."""
        with self.lock:
            return next(e for e in self.events.values()
                        if e["type"] == "checkout.session.expired" and e["data"]["object"]["id"] == sid)

    # --- test-side helpers (return the Event dict Stripe would deliver) ---
    def complete_session(self, sid: str, *, payment_status: str = "paid", email: str | None = None,
                         name: str = "Jenny Rosen") -> dict[str, Any]:
        """Simulate the customer finishing Checkout. ``payment_status="unpaid"`` models a delayed method (SEPA):
        follow up with :meth:`async_payment_succeeded`."""
        with self.lock:
            s = self._session(sid)
            if s["status"] != "open":  # Stripe's page takes no payment for an expired or a complete session
                raise SessionClosed(f"session {sid} is {s['status']}, not open: it cannot be paid")
            email = email or s["customer_email"] or (self.customers.get(s["customer"] or "", {}).get("email")) \
                or "jenny.rosen@example.com"
            if s["mode"] == "subscription" or (s["mode"] == "payment" and s["customer_creation"] == "always"):
                if not s["customer"]:
                    s["customer"] = self.create_customer({"email": email, "name": name})["id"]
            if s["mode"] == "subscription":
                s["subscription"] = new_id("sub_")
            if s["mode"] == "payment":
                s["payment_intent"] = new_id("pi_")
            s.update(status="complete", url=None,
                     payment_status=payment_status if s["mode"] != "setup" else "no_payment_required",
                     customer_details={"address": None, "email": email, "name": name, "phone": None,
                                       "tax_exempt": "none", "tax_ids": []})
            return self._record_event("checkout.session.completed", s)

    def async_payment_succeeded(self, sid: str) -> dict[str, Any]:
        with self.lock:
            s = self._session(sid)
            s["payment_status"] = "paid"
            return self._record_event("checkout.session.async_payment_succeeded", s)

    def expire_session(self, sid: str) -> dict[str, Any]:
        """Simulate Stripe expiring an open session at its ``expires_at``."""
        with self.lock:
            return self._expire(sid)


# --- HTTP layer ------------------------------------------------------------------------------------

def _error_response(err: StripeError) -> JSONResponse:
    return JSONResponse({"error": err.body}, err.status, headers={"Request-Id": new_id("req_", 14)})


def create_app(state: StripeState) -> Starlette:
    def _check_key(request: Request) -> StripeError | None:
        auth = request.headers.get("authorization", "")
        key = None
        if auth.startswith("Bearer "):
            key = auth[7:]
        elif auth.startswith("Basic "):  # curl -u sk_test_...:
            key = base64.b64decode(auth[6:]).decode(errors="replace").split(":")[0]
        if not key:
            return StripeError(401, "You did not provide an API key. You need to provide your API key in the "
                                    "Authorization header, using Bearer auth (e.g. 'Authorization: Bearer "
                                    "YOUR_SECRET_KEY').")
        ok = key == state.api_key if state.api_key else key.startswith("sk_test_") and len(key) > 8
        if not ok:
            return StripeError(401, f"Invalid API Key provided: {key[:8]}{'*' * max(len(key) - 12, 0)}{key[-4:]}")
        return None

    def endpoint(handler):
        """Wrap a handler (params, path_params) -> (status, dict): auth, logging, injected errors, idempotency."""

        async def view(request: Request) -> Response:
            raw = await request.body()
            params = parse_form(raw) if request.method == "POST" else parse_form(request.url.query)
            path = route_path(request)
            idem = request.headers.get("idempotency-key") if request.method == "POST" else None
            with state.lock:
                state._log(request, path, params=params, idempotency_key=idem)
                err = _check_key(request)
                if err:
                    return _error_response(err)
                injected = state._take_error(request.method, path)
                if injected:
                    return _error_response(StripeError(injected["status"], injected["message"],
                                                       type=injected["type"], code=injected["code"]))
                if idem and idem in state.idempotency:
                    saved = state.idempotency[idem]
                    if (saved["method"], saved["path"], saved["params"]) != (request.method, path, params):
                        return _error_response(StripeError(
                            400, "Keys for idempotent requests can only be used with the same parameters they "
                                 f"were first used with. Try using a key other than '{idem}' if you meant to "
                                 "execute a different request.", type="idempotency_error"))
                    return JSONResponse(saved["body"], saved["status"], headers={
                        "Idempotency-Key": idem, "Idempotent-Replayed": "true", "Request-Id": new_id("req_", 14)})
                try:
                    status, body = handler(params, request.path_params)
                except StripeError as e:
                    return _error_response(e)
                body = json.loads(json.dumps(body))  # snapshot: later state changes must not alter a replay
                headers = {"Request-Id": new_id("req_", 14), "Stripe-Version": API_VERSION}
                if idem:
                    state.idempotency[idem] = {"method": request.method, "path": path, "params": params,
                                               "status": status, "body": body}
                    headers["Idempotency-Key"] = idem
                return JSONResponse(body, status, headers=headers)

        return view

    def create_customer(p, _):
        return 200, state.create_customer(p)

    def get_customer(_, pp):
        cust = state.customers.get(pp["id"])
        if cust is None:
            raise _no_such("customer", pp["id"])
        return 200, cust

    def update_customer(p, pp):
        return 200, state.update_customer(pp["id"], p)

    def create_session(p, _):
        return 200, state.create_session(p)

    def get_session(_, pp):
        return 200, state._session(pp["id"])

    def list_sessions(p, _):
        """Newest first, `limit` (1..100, default 10) — no cursors: nothing here pages through sessions."""
        try:
            limit = min(max(int(p.get("limit", 10)), 1), 100)
        except ValueError:
            raise StripeError(400, "Invalid integer: limit", param="limit") from None
        newest = sorted(state.sessions.values(), key=lambda s: s.get("created", 0), reverse=True)
        return 200, {"object": "list", "url": "/v1/checkout/sessions", "has_more": len(newest) > limit,
                     "data": newest[:limit]}

    def expire_session(_, pp):
        state._expire(pp["id"])
        return 200, state.sessions[pp["id"]]

    def get_event(_, pp):
        ev = state.events.get(pp["id"])
        if ev is None:
            raise _no_such("event", pp["id"])
        return 200, ev

    async def not_found(request: Request, exc: HTTPException) -> Response:
        return _error_response(StripeError(404, f"Unrecognized request URL ({request.method}: "
                                                f"{request.url.path}). Please see https://stripe.com/docs."))

    return Starlette(
        routes=[
            Route("/v1/customers", endpoint(create_customer), methods=["POST"]),
            Route("/v1/customers/{id}", endpoint(get_customer), methods=["GET"]),
            Route("/v1/customers/{id}", endpoint(update_customer), methods=["POST"]),
            Route("/v1/checkout/sessions", endpoint(create_session), methods=["POST"]),
            Route("/v1/checkout/sessions", endpoint(list_sessions), methods=["GET"]),
            Route("/v1/checkout/sessions/{id}", endpoint(get_session), methods=["GET"]),
            Route("/v1/checkout/sessions/{id}/expire", endpoint(expire_session), methods=["POST"]),
            Route("/v1/events/{id}", endpoint(get_event), methods=["GET"]),
        ],
        exception_handlers={HTTPException: not_found},
    )
