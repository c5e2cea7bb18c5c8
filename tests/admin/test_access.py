"""The role ladder of all 23 admin billing operations: anonymous 401, plain user 403, the static API key inside
its tenant binding (reads allowed; actions that need an admin user 400), another tenant's ids 404."""

from __future__ import annotations

import pytest

from tests.admin.conftest import BASE, create_draft, issue, line
from tests.helpers import assert_error
from tests.invoicing.conftest import user_id

NONE = "00000000-0000-4000-8000-00000000beef"

READS = [
    ("GET", "/summary", None),
    ("GET", "/statistics/summary", None),
    ("GET", "/statistics/by-product", None),
    ("GET", "/statistics/taxes", None),
    ("GET", "/invoices", None),
    ("GET", "/invoices/open-overdue", None),
    ("GET", "/invoices/{invoice}", None),
    ("GET", "/invoices/{invoice}/pdf", None),
    ("GET", "/invoices/{void}/void-document/pdf", None),
    ("GET", "/invoices/{invoice}/audit-logs", None),
    ("GET", "/customer-profiles", None),
    ("GET", "/customer-profiles/{profile}", None),
    ("GET", "/users/{owner}/subscriptions", None),
]
ACTIONS = [  # need an admin *user* to record as the actor
    ("POST", "/bill-now", {}),
    ("POST", "/invoices/manual", {"userId": "{owner}", "lineItems": [line("x", 1, 1)]}),
    ("POST", "/invoices/{draft}", {"lineItems": [line("x", 1, 1)]}),
    ("DELETE", "/invoices/{draft}", None),
    ("POST", "/invoices/{draft}/issue", {}),
    ("POST", "/invoices/{invoice}/void", None),
    ("POST", "/invoices/{invoice}/mark-paid", {}),
    ("POST", "/invoices/{invoice}/mark-unpaid", {}),
]
PROFILE_WRITES = [  # customer profiles: no actor needed beyond the admin role, the API key may
    ("POST", "/customer-profiles", {"userId": "{stranger}", "firstName": "Key"}),
    ("POST", "/customer-profiles/{profile}", {"city": "Hamburg"}),
    ("DELETE", "/customer-profiles/{stranger_profile}", None),
]
ALL = READS + ACTIONS + PROFILE_WRITES


def test_the_ladder_covers_every_admin_billing_operation():
    import yaml

    from spec import OPENAPI_PATH

    spec = yaml.safe_load(OPENAPI_PATH.read_text())
    documented = {(method.upper(), path[len(BASE):].replace("{invoiceRefId}", "{x}").replace("{id}", "{x}")
                   .replace("{userId}", "{x}"))
                  for path, item in spec["paths"].items()
                  if path.startswith(BASE) and not path.startswith(f"{BASE}/dunning")  # tests/dunning: own ladder
                  for method, op in item.items() if isinstance(op, dict)}
    covered = {(method, _generic(path)) for method, path, _ in ALL}
    assert len(documented) == 24 and covered == documented


def _generic(path: str) -> str:
    for name in ("{invoice}", "{void}", "{draft}", "{profile}", "{stranger_profile}", "{owner}"):
        path = path.replace(name, "{x}")
    return path


def _fill(value, ids: dict):
    if isinstance(value, str):
        return value.format(**ids)
    if isinstance(value, dict):
        return {k: _fill(v, ids) for k, v in value.items()}
    if isinstance(value, list):
        return [_fill(v, ids) for v in value]
    return value


@pytest.fixture
async def world(billing_api, admin, customer):
    """An issued invoice, a void one, a draft, the customer's profile, a user without profile and one with."""
    api = billing_api
    owner = user_id(customer)
    invoice = await issue(api, admin, (await create_draft(api, admin, owner, [line("A", 1, 10)]))["id"])
    void = await issue(api, admin, (await create_draft(api, admin, owner, [line("B", 1, 10)]))["id"])
    assert (await api.post(f"{BASE}/invoices/{void['id']}/void", token=admin)).status_code == 200
    draft = await create_draft(api, admin, owner, [line("C", 1, 10)])
    profiles = (await api.get(f"{BASE}/customer-profiles", token=admin)).json()["items"]
    stranger = await api.user_token(admin, "stranger@example.com")
    loner = await api.user_token(admin, "loner@example.com")
    await api.post("/customer-profile", token=loner, json={"firstName": "Lone"})
    loner_profile = next(p for p in (await api.get(f"{BASE}/customer-profiles", token=admin)).json()["items"]
                         if p["userEmail"] == "loner@example.com")
    return {"invoice": invoice["id"], "void": void["id"], "draft": draft["id"], "owner": str(owner),
            "profile": profiles[0]["id"], "stranger": str(user_id(stranger)),
            "stranger_profile": loner_profile["id"], "customer": customer}


async def _call(api, method, path, body, ids, **kwargs):
    return await api.request(method, f"{BASE}{_fill(path, ids)}", json=_fill(body, ids) if body is not None else None,
                             **kwargs)


async def test_anonymous_401_and_plain_user_403_on_every_operation(billing_api, world):
    for method, path, body in ALL:
        assert_error(await _call(billing_api, method, path, body, world), 401)
        assert_error(await _call(billing_api, method, path, body, world, token=world["customer"]), 403,
                     "Forbidden resource")


async def test_static_api_key_inside_its_tenant_binding(env, make_api, billing_api, world):
    env.update(AUTHENTICATION_METHOD="api-key", STATIC_API_KEY="admin-billing-key", STATIC_API_KEY_TENANT_ID="default")
    keyed = await make_api()
    key = "Bearer admin-billing-key"
    for method, path, body in READS:
        response = await _call(keyed, method, path, body, world, token=key)
        assert response.status_code == 200, (path, response.text)
    listed = (await _call(keyed, "GET", "/invoices", None, world, token=key)).json()
    assert listed["total"] == 3
    for method, path, body in ACTIONS:
        assert_error(await _call(keyed, method, path, body, world, token=key), 400, "User not authenticated")
    for method, path, body in PROFILE_WRITES:
        response = await _call(keyed, method, path, body, world, token=key)
        assert response.status_code in (200, 201, 204), (path, response.text)
    # outside its binding: refused before anything is looked at
    for method, path, body in ALL:
        assert_error(await _call(keyed, method, path, body, world, token=key, tenant="acme"), 403, "Access denied")


async def test_another_tenants_ids_are_not_found(billing_api, world):
    api = billing_api
    other_admin = await api.admin_token("admin@acme.example", tenant="acme")
    for name in ("invoice", "void", "draft"):
        iid = world[name]
        for method, path, body in [("GET", "/invoices/{x}", None), ("POST", "/invoices/{x}", {"lineItems": [line("x", 1, 1)]}),
                                   ("DELETE", "/invoices/{x}", None), ("POST", "/invoices/{x}/issue", {}),
                                   ("POST", "/invoices/{x}/void", None), ("POST", "/invoices/{x}/mark-paid", {}),
                                   ("POST", "/invoices/{x}/mark-unpaid", {}), ("GET", "/invoices/{x}/audit-logs", None)]:
            response = await api.request(method, f"{BASE}{path.format(x=iid)}", token=other_admin, tenant="acme", json=body)
            assert_error(response, 404, f"Invoice {iid} not found")
        for path in ("/invoices/{x}/pdf", "/invoices/{x}/void-document/pdf"):
            assert_error(await api.get(f"{BASE}{path.format(x=iid)}", token=other_admin, tenant="acme"), 404,
                         "Invoice not found")
    for method, body in [("GET", None), ("POST", {"city": "Paris"}), ("DELETE", None)]:
        response = await api.request(method, f"{BASE}/customer-profiles/{world['profile']}", token=other_admin,
                                     tenant="acme", json=body)
        assert_error(response, 404, f"Customer profile with ID {world['profile']} not found")
    # another tenant's user is unknown here
    assert_error(await api.post(f"{BASE}/invoices/manual", token=other_admin, tenant="acme",
                                json={"userId": world["owner"], "lineItems": [line("x", 1, 1)]}), 404, "User not found")
    assert_error(await api.post(f"{BASE}/customer-profiles", token=other_admin, tenant="acme",
                                json={"userId": world["stranger"]}), 404, "User not found")
    assert_error(await api.post(f"{BASE}/bill-now", token=other_admin, tenant="acme", json={"userId": world["owner"]}),
                 400, "User not found")
    # and the other tenant's lists and figures are empty
    assert (await api.get(f"{BASE}/invoices", token=other_admin, tenant="acme")).json()["total"] == 0
    assert (await api.get(f"{BASE}/customer-profiles", token=other_admin, tenant="acme")).json()["total"] == 0
    summary = (await api.get(f"{BASE}/summary", token=other_admin, tenant="acme")).json()
    assert summary == {"activeSubscriptionsCount": 0, "openOverdueCount": 0, "openOverdueTotal": 0, "unbilledTotal": 0}
    # nothing of the default tenant changed
    assert (await api.get(f"{BASE}/invoices/{world['draft']}", token=await api.login("admin@example.com"))).json()[
        "status"] == "draft"


async def test_unknown_ids_and_malformed_input(billing_api, admin):
    api = billing_api
    assert_error(await api.get(f"{BASE}/invoices/{NONE}", token=admin), 404, f"Invoice {NONE} not found")
    assert_error(await api.post(f"{BASE}/invoices/{NONE}/mark-paid", token=admin, json={}), 404, f"Invoice {NONE} not found")
    assert_error(await api.get(f"{BASE}/invoices/{NONE}/pdf", token=admin), 404, "Invoice not found")
    assert_error(await api.get(f"{BASE}/invoices/not-a-uuid", token=admin), 400)
    assert_error(await api.post(f"{BASE}/invoices/{NONE}/mark-paid", token=admin, json={"reason": 5}), 400)
    assert_error(await api.post(f"{BASE}/invoices/{NONE}/issue", token=admin, json={"dueInDays": 0}), 400)
    assert_error(await api.post(f"{BASE}/bill-now", token=admin, json={"userId": "nope"}), 400)
    assert_error(await api.post(f"{BASE}/bill-now", token=admin, json={"userId": NONE}), 400, "User not found")
    assert_error(await api.get(f"{BASE}/statistics/summary?from=2026-02-30", token=admin), 400)
    assert_error(await api.get(f"{BASE}/statistics/summary?from=2026-03-02&to=2026-03-01", token=admin), 400,
                 "Invalid date range: from must be before to")
    assert_error(await api.get(f"{BASE}/statistics/by-product?from=2026-03-02&to=2026-03-01", token=admin), 400,
                 "Invalid date range: from must be before to")
    assert_error(await api.get(f"{BASE}/statistics/summary?groupBy=week", token=admin), 400)
