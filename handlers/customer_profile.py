"""The caller's billing profile: /customer-profile."""

import inflection

from decabill.customers import service as customers
from handlers._http import dump, principal


async def get_customer_profile(token_info: dict):
    profile = await customers.get_own_profile(principal(token_info))
    if profile is None:  # no profile yet: an empty object, which reference-generated clients parse (spec)
        return {}, 200
    return dump(profile, "CustomerProfileResponse"), 200


async def update_customer_profile(body: dict, token_info: dict):
    fields = {inflection.underscore(name): value for name, value in body.items()}
    return dump(await customers.update_own_profile(principal(token_info), **fields), "CustomerProfileResponse"), 200
