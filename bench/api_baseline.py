"""The bare-stack baseline of bench/api.py: Starlette + asyncpg (uvloop + httptools under uvicorn) answering the
requests the bench drives from the same tables with the same JSON fields (orjson), and nothing else — no
validation, no ORM, no logging, no caches. What the hardware gives; Decabill's figure is read as a fraction of it.

Per request it does the essential work Decabill does: the public offerings are one query; each authenticated read
verifies the bearer token (pyjwt, HS256 with `BENCH_JWT_SECRET`, the users-mode token Decabill issued; Decabill
additionally checks the account, at most once a second per token) and runs ONE statement of the same shape as
Decabill's on the same tables and indexes, scoped by the token's tenant. Customer reads take the user from `sub`;
the admin list requires the `admin` role. The search is the admin search's statement (a CTE of one branch per
searched column, its count and the page) for terms no id can hold — what the bench searches for."""

from __future__ import annotations

import contextlib
import os
import re
import uuid
from decimal import Decimal
from typing import Any

import asyncpg
import jwt
import orjson
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from decabill.catalog.pricing import customer_price

OFFERINGS = """
SELECT p.id, p.name, p.description, p.service_type_id, t.name AS type_name, p.billing_interval_type,
       p.billing_interval_value, p.base_price, p.margin_percent, p.margin_fixed, p.ordering_highlights,
       p.allow_customer_location_selection
FROM service_plans p JOIN service_types t ON t.id = p.service_type_id
WHERE p.tenant_id = 'default' AND p.is_active
ORDER BY p.created_at DESC, p.id LIMIT $1 OFFSET $2
"""

# the columns of an invoice the lists show (InvoiceResponse)
INVOICE = """i.id, i.subscription_id, i.user_id, i.invoice_number, i.status, i.balance_due, i.created_at, i.due_date,
       i.tax_rule, i.dunning_level, i.dunning_action, i.dunning_applied_at, i.credit_note_number"""

# the user's subscription LEFT JOIN its invoices (by the invoice's subscription or one of its lines): the ownership
# check and the list in one statement, as Decabill's `InvoiceRepository._of_own_subscription`
INVOICES_OF_SUBSCRIPTION = f"""
SELECT s.id AS owned, {INVOICE}
FROM subscriptions s
LEFT JOIN invoices i ON i.tenant_id = s.tenant_id AND i.user_id = s.user_id
     AND (i.subscription_id = $2 OR i.id IN (SELECT l.invoice_id FROM invoice_lines l WHERE l.subscription_id = $2))
WHERE s.tenant_id = $1 AND s.id = $2 AND s.user_id = $3
ORDER BY i.created_at DESC, i.id
"""

OPEN_STATUSES = "('issued', 'partially_paid', 'overdue')"

OPEN_OVERDUE = f"""
SELECT {INVOICE}, s.number AS subscription_number
FROM invoices i LEFT JOIN subscriptions s ON s.id = i.subscription_id
WHERE i.tenant_id = $1 AND i.user_id = $2 AND i.status IN {OPEN_STATUSES}
ORDER BY i.created_at DESC, i.id
"""

SUMMARY = f"""
SELECT (SELECT billing_day_of_month FROM users WHERE tenant_id = $1 AND id = $2) AS stored_day,
       (SELECT created_at FROM users WHERE tenant_id = $1 AND id = $2) AS registered,
       (SELECT count(id) FROM invoices WHERE tenant_id = $1 AND user_id = $2 AND status IN {OPEN_STATUSES}) AS open_count,
       (SELECT coalesce(sum(balance_due), 0) FROM invoices
        WHERE tenant_id = $1 AND user_id = $2 AND status IN {OPEN_STATUSES}) AS open_total,
       (SELECT coalesce(sum(amount), 0) FROM open_positions
        WHERE tenant_id = $1 AND user_id = $2 AND invoice_id IS NULL) AS positions,
       (SELECT coalesce(sum(amount), 0) FROM usage_records
        WHERE tenant_id = $1 AND user_id = $2 AND invoice_id IS NULL AND amount > 0) AS usage
"""

SUBSCRIPTIONS = """
SELECT id, number, plan_id, user_id, status, current_period_start, current_period_end, next_billing_at,
       cancel_requested_at, cancel_effective_at, resumed_at, created_at, updated_at, suspended_at
FROM subscriptions WHERE tenant_id = $1 AND user_id = $2
ORDER BY created_at DESC, id LIMIT $3 OFFSET $4
"""

# the unfiltered admin page with the tenant's counter (migration 0024) as a column, as `_latest_page`
ADMIN_PAGE = f"""
SELECT {INVOICE}, s.number AS subscription_number, u.email AS user_email,
       (SELECT c.invoices FROM invoice_counts c WHERE c.tenant_id = $1) AS total
FROM invoices i LEFT JOIN subscriptions s ON s.id = i.subscription_id LEFT JOIN users u ON u.id = i.user_id
WHERE i.tenant_id = $1
ORDER BY i.created_at DESC, i.id DESC LIMIT $2 OFFSET $3
"""


_EMAIL = "lower(u.email) LIKE $2 ESCAPE '/'"
_NUMBER_RANGE = "lower(i.invoice_number) ~>=~ $5 AND lower(i.invoice_number) ~<~ $6"


def _admin_search(matches: str) -> str:
    """The admin search as `InvoiceRepository._search_statement` shapes it (no id branches: the bench's terms
    hold no id): the matching (id, created_at) as a CTE, their count LEFT JOIN the page, the number and email per
    row of the page."""
    return f"""
WITH matches AS ({matches})
SELECT total.total, page.*,
       (SELECT s.number FROM subscriptions s WHERE s.id = page.subscription_id) AS subscription_number,
       (SELECT u.email FROM users u WHERE u.id = page.user_id) AS user_email
FROM (SELECT count(*) AS total FROM matches) total
LEFT JOIN (SELECT {INVOICE} FROM (SELECT id FROM matches ORDER BY created_at DESC, id DESC LIMIT $3 OFFSET $4) chosen
           JOIN invoices i ON i.id = chosen.id) page ON true
ORDER BY page.created_at DESC, page.id DESC
"""


# The branch likely to match most counted as it comes, the others deduplicated among themselves without what it
# matched (its condition read per row by primary key). The term anywhere in the email, number or subscription
# number (trigram indexes); an `INV-…` prefix as a byte-wise range (migration 0027), $5/$6, first, and not looked
# for in the subscription numbers (`SUB-<digits>` hold no "inv-").
ADMIN_SEARCH = _admin_search(f"""
    SELECT i.id, i.created_at FROM invoices i JOIN users u ON u.id = i.user_id WHERE i.tenant_id = $1 AND {_EMAIL}
    UNION ALL
    SELECT rest.id, rest.created_at FROM (
        SELECT i.id, i.created_at, i.user_id FROM invoices i
        WHERE i.tenant_id = $1 AND lower(i.invoice_number) LIKE $2 ESCAPE '/'
        UNION SELECT i.id, i.created_at, i.user_id FROM invoices i JOIN subscriptions s ON s.id = i.subscription_id
        WHERE i.tenant_id = $1 AND lower(s.number) LIKE $2 ESCAPE '/') rest
    WHERE (SELECT {_EMAIL} FROM users u WHERE u.id = rest.user_id) IS NOT TRUE""")
# A term holding a character no number and no id holds (Decabill's `search_kind` "email"): the e-mails alone.
ADMIN_SEARCH_EMAIL = _admin_search(f"""
    SELECT i.id, i.created_at FROM invoices i JOIN users u ON u.id = i.user_id WHERE i.tenant_id = $1 AND {_EMAIL}""")
ADMIN_SEARCH_NUMBER = _admin_search(f"""
    SELECT i.id, i.created_at FROM invoices i WHERE i.tenant_id = $1 AND {_NUMBER_RANGE}
    UNION ALL
    SELECT rest.id, rest.created_at FROM (
        SELECT i.id, i.created_at FROM invoices i JOIN users u ON u.id = i.user_id WHERE i.tenant_id = $1 AND {_EMAIL}) rest
    WHERE (SELECT {_NUMBER_RANGE} FROM invoices i WHERE i.id = rest.id) IS NOT TRUE""")
NUMBER_PREFIX = re.compile(r"inv-[0-9-]*")
NUMBER_OR_ID_CHARACTERS = frozenset("0123456789abcdef-" "inv" "sub")
OPEN_OR_OVERDUE = ("issued", "partially_paid", "overdue")

SECRET = os.environ.get("BENCH_JWT_SECRET", "")
pool: asyncpg.Pool | None = None


@contextlib.asynccontextmanager
async def lifespan(_app):
    global pool
    pool = await asyncpg.create_pool(os.environ["BENCH_DSN"], min_size=2, max_size=10)
    yield
    await pool.close()


def json_response(body: Any, status: int = 200) -> Response:
    return Response(orjson.dumps(body, default=float), status_code=status, media_type="application/json")


def claims_of(request: Request, *, admin: bool = False) -> dict[str, Any] | Response:
    """The verified claims of the bearer token, or the 401/403 answer."""
    scheme, _, token = request.headers.get("authorization", "").partition(" ")
    if scheme.lower() != "bearer" or not token:
        return json_response({"message": "Unauthorized"}, 401)
    try:
        claims = jwt.decode(token, SECRET, algorithms=["HS256"], options={"require": ["sub", "exp", "iat", "cv"]})
    except jwt.PyJWTError:
        return json_response({"message": "Unauthorized"}, 401)
    if admin and "admin" not in claims.get("roles", ()):
        return json_response({"message": "Forbidden"}, 403)
    return claims


def paging(request: Request) -> tuple[int | None, int]:
    limit = int(request.query_params.get("limit", 0))
    return (limit if limit > 0 else None), max(int(request.query_params.get("offset", 0)), 0)


def invoice_item(row: asyncpg.Record, subscription_number: str | None = None) -> dict[str, Any]:
    """InvoiceResponse of a row with the `INVOICE` columns (the capability flags as `InvoiceView` derives them)."""
    status, balance = row["status"], row["balance_due"]
    void_document = status == "void" and bool(row["invoice_number"])
    item = {
        "id": str(row["id"]), "invoiceNumber": row["invoice_number"], "status": status, "balance": balance,
        "subscriptionNumber": subscription_number, "createdAt": row["created_at"], "dueDate": row["due_date"],
        "canPay": status in OPEN_OR_OVERDUE and balance > 0, "canDownload": status != "draft",
        "canPreview": status != "draft", "canDownloadVoidDocument": void_document,
        "voidDocumentNumber": row["credit_note_number"] if void_document else None, "taxRule": row["tax_rule"],
        "dunningLevel": row["dunning_level"] or 0, "dunningAction": row["dunning_action"],
        "dunningAppliedAt": row["dunning_applied_at"],
    }
    if row["subscription_id"] is not None:
        item["subscriptionId"] = str(row["subscription_id"])
    return item


def admin_item(row: asyncpg.Record) -> dict[str, Any]:
    return {**invoice_item(row, row["subscription_number"]), "userId": str(row["user_id"]), "userEmail": row["user_email"]}


async def offerings(request: Request) -> Response:
    limit = min(max(int(request.query_params.get("limit", 50)), 1), 100)
    offset = int(request.query_params.get("offset", 0))
    rows = await pool.fetch(OFFERINGS, limit, offset)
    body = [{
        "id": str(row["id"]), "name": row["name"], "description": row["description"],
        "serviceTypeId": str(row["service_type_id"]), "serviceTypeName": row["type_name"],
        "billingIntervalType": row["billing_interval_type"], "billingIntervalValue": row["billing_interval_value"],
        "totalPrice": float(customer_price(row["base_price"] or Decimal(0), row["margin_percent"],
                                           row["margin_fixed"]).total_price),
        "orderingHighlights": orjson.loads(row["ordering_highlights"]) if isinstance(row["ordering_highlights"], str)
        else row["ordering_highlights"],
        "allowCustomerLocationSelection": row["allow_customer_location_selection"],
    } for row in rows]
    return json_response(body)


async def invoices_of_subscription(request: Request) -> Response:
    claims = claims_of(request)
    if isinstance(claims, Response):
        return claims
    try:
        subscription_id = uuid.UUID(request.path_params["subscription_id"])
    except ValueError:
        return json_response({"message": "Bad Request"}, 400)
    rows = await pool.fetch(INVOICES_OF_SUBSCRIPTION, claims["tenant"], subscription_id, uuid.UUID(claims["sub"]))
    if not rows:
        return json_response({"message": f"Subscription with ID {subscription_id} not found"}, 404)
    return json_response([invoice_item(row) for row in rows if row["id"] is not None])


async def open_overdue(request: Request) -> Response:
    claims = claims_of(request)
    if isinstance(claims, Response):
        return claims
    rows = await pool.fetch(OPEN_OVERDUE, claims["tenant"], uuid.UUID(claims["sub"]))
    return json_response([invoice_item(row, row["subscription_number"]) for row in rows])


async def summary(request: Request) -> Response:
    claims = claims_of(request)
    if isinstance(claims, Response):
        return claims
    row = await pool.fetchrow(SUMMARY, claims["tenant"], uuid.UUID(claims["sub"]))
    stored, registered = row["stored_day"], row["registered"]
    day = stored if stored and 1 <= stored <= 28 else (min(registered.day, 28) if registered else 1)
    return json_response({"openOverdueCount": row["open_count"], "openOverdueTotal": row["open_total"],
                          "billingDayOfMonth": day, "unbilledTotal": row["positions"] + row["usage"]})


async def subscriptions(request: Request) -> Response:
    claims = claims_of(request)
    if isinstance(claims, Response):
        return claims
    limit, offset = paging(request)
    rows = await pool.fetch(SUBSCRIPTIONS, claims["tenant"], uuid.UUID(claims["sub"]), limit, offset)
    return json_response([{
        "id": str(row["id"]), "number": row["number"], "planId": str(row["plan_id"]), "userId": str(row["user_id"]),
        "status": row["status"], "currentPeriodStart": row["current_period_start"],
        "currentPeriodEnd": row["current_period_end"], "nextBillingAt": row["next_billing_at"],
        "cancelRequestedAt": row["cancel_requested_at"], "cancelEffectiveAt": row["cancel_effective_at"],
        "resumedAt": row["resumed_at"], "createdAt": row["created_at"], "updatedAt": row["updated_at"],
        "suspendedAt": row["suspended_at"],
    } for row in rows])


async def admin_invoices(request: Request) -> Response:
    claims = claims_of(request, admin=True)
    if isinstance(claims, Response):
        return claims
    limit, offset = paging(request)
    term = request.query_params.get("search", "").strip().lower()
    if not term:
        rows = await pool.fetch(ADMIN_PAGE, claims["tenant"], limit, offset)
        total = rows[0]["total"] if rows else await pool.fetchval(
            "SELECT invoices FROM invoice_counts WHERE tenant_id = $1", claims["tenant"])
    else:
        pattern = "%" + "".join("/" + c if c in "%_/" else c for c in term) + "%"
        if NUMBER_PREFIX.fullmatch(term):
            rows = await pool.fetch(ADMIN_SEARCH_NUMBER, claims["tenant"], pattern, limit, offset,
                                    term, term[:-1] + chr(ord(term[-1]) + 1))
        else:
            only_emails = not NUMBER_OR_ID_CHARACTERS.issuperset(term)
            rows = await pool.fetch(ADMIN_SEARCH_EMAIL if only_emails else ADMIN_SEARCH, claims["tenant"], pattern,
                                    limit, offset)
        total = rows[0]["total"] if rows else 0
    items = [admin_item(row) for row in rows if row["id"] is not None]
    return json_response({"items": items, "total": total or 0, "limit": limit or 0, "offset": offset})


app = Starlette(routes=[
    Route("/api/public/service-plan-offerings", offerings),
    Route("/api/invoices/open-overdue", open_overdue),
    Route("/api/invoices/summary", summary),
    Route("/api/invoices/{subscription_id}", invoices_of_subscription),
    Route("/api/subscriptions", subscriptions),
    Route("/api/admin/billing/invoices", admin_invoices),
], lifespan=lifespan)
