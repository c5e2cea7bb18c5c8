"""Usage records: /usage."""

import uuid

from decabill.usage import service as usage
from handlers._http import dump, principal


async def get_usage_summary(subscription_id: str, token_info: dict):
    summary = await usage.usage_summary(principal(token_info), uuid.UUID(subscription_id))
    return dump(summary, "UsageSummary"), 200


async def record_usage(body: dict, token_info: dict):
    record = await usage.record_usage(principal(token_info), uuid.UUID(body["subscriptionId"]), body["periodStart"],
                                      body["periodEnd"], body["usagePayload"])
    return dump(record, "UsageRecordResponse"), 200
