"""Price preview: /pricing/preview."""

import uuid

from decabill.catalog import service as catalog
from handlers._http import dump, principal


async def preview_pricing(token_info: dict, body: dict | None = None):
    body = body or {}
    plan_id = uuid.UUID(body["planId"]) if body.get("planId") else None
    preview = await catalog.preview_price(principal(token_info), plan_id, body.get("requestedConfig"))
    return dump(preview, "PricingPreviewResponse"), 200
