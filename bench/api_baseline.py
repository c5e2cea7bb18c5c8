"""The bare-stack baseline of bench/api.py: Starlette + asyncpg answering the public offerings request from the
same tables with the same JSON (camelCase fields, the customer price), and nothing else — no validation, no
authentication, no logging. What the hardware gives; Decabill's figure is read as a fraction of it."""

from __future__ import annotations

import contextlib
import os
from decimal import Decimal

import asyncpg
import orjson
from starlette.applications import Starlette
from starlette.responses import Response
from starlette.routing import Route

from decabill.catalog.pricing import customer_price

QUERY = """
SELECT p.id, p.name, p.description, p.service_type_id, t.name AS type_name, p.billing_interval_type,
       p.billing_interval_value, p.base_price, p.margin_percent, p.margin_fixed, p.ordering_highlights,
       p.allow_customer_location_selection
FROM service_plans p JOIN service_types t ON t.id = p.service_type_id
WHERE p.tenant_id = 'default' AND p.is_active
ORDER BY p.created_at DESC, p.id LIMIT $1 OFFSET $2
"""

pool: asyncpg.Pool | None = None


@contextlib.asynccontextmanager
async def lifespan(_app):
    global pool
    pool = await asyncpg.create_pool(os.environ["BENCH_DSN"], min_size=2, max_size=10)
    yield
    await pool.close()


async def offerings(request) -> Response:
    limit = min(max(int(request.query_params.get("limit", 50)), 1), 100)
    offset = int(request.query_params.get("offset", 0))
    rows = await pool.fetch(QUERY, limit, offset)
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
    return Response(orjson.dumps(body), media_type="application/json")


app = Starlette(routes=[Route("/api/public/service-plan-offerings", offerings)], lifespan=lifespan)
