"""The fakes work with the REAL client libraries (hcloud, pydo, stripe) and plain httpx (Cloudflare)."""

from __future__ import annotations

import json
import warnings

import httpx
import hcloud
import pydo
import pytest
import stripe
from azure.core.credentials import AzureKeyCredential
from azure.core.exceptions import ClientAuthenticationError, HttpResponseError
from azure.core.pipeline.policies import AzureKeyCredentialPolicy
from hcloud.actions import ActionFailedException
from hcloud.images import Image
from hcloud.locations import Location
from hcloud.server_types import ServerType

from tests.fakes.server import FakeCloud
from tests.fakes.stripe import make_event, parse_form, sign_webhook


@pytest.fixture(scope="session")
def cloud():
    fake = FakeCloud().start()
    yield fake
    fake.stop()


@pytest.fixture
def fake(cloud):
    cloud.reset()
    return cloud


# --- Hetzner (hcloud) ------------------------------------------------------------------------------

@pytest.fixture
def hc(fake):
    return hcloud.Client(token=fake.hetzner_token, api_endpoint=fake.hetzner_url, poll_interval=0.01)


def _create(hc, name="vm-1", server_type="cx22", location="fsn1", **kw):
    return hc.servers.create(name=name, server_type=ServerType(name=server_type), image=Image(name="ubuntu-24.04"),
                             location=Location(name=location), **kw)


def test_bound_to_loopback(fake):
    assert fake.url.startswith("http://127.0.0.1:")


def test_hetzner_catalogue(fake, hc):
    types = {t.name: t for t in hc.server_types.get_all()}
    assert {"cx22", "cx32", "cpx11", "cax11", "cx11"} <= set(types)
    cx22 = hc.server_types.get_by_name("cx22")
    assert (cx22.cores, cx22.memory, cx22.disk, cx22.architecture) == (2, 4.0, 40, "x86")
    prices = {p["location"]: p for p in cx22.prices}
    assert set(prices) == {"fsn1", "nbg1", "hel1"}
    assert prices["fsn1"]["price_monthly"] == {"net": "3.7900000000", "gross": "4.5101000000"}
    assert {p["location"] for p in types["cx32"].prices} == {"fsn1", "nbg1"}  # not in hel1
    assert types["cax11"].architecture == "arm"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        assert types["cx11"].deprecated is True and types["cx22"].deprecated is False
    assert hc.server_types.get_by_name("nope") is None
    assert [loc.name for loc in hc.locations.get_all()] == ["fsn1", "nbg1", "hel1"]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        assert {dc.name for dc in hc.datacenters.get_all()} == {"fsn1-dc14", "nbg1-dc3", "hel1-dc2"}
    # capacity overrides show up in server_type.locations[].available
    fake.hetzner.capacity[("cx22", "nbg1")] = False
    avail = {loc.location.name: loc.available for loc in hc.server_types.get_by_name("cx22").locations}
    assert avail == {"fsn1": True, "nbg1": False, "hel1": True}


def test_hetzner_server_lifecycle(fake, hc):
    resp = _create(hc, labels={"tenant": "acme"}, user_data="#cloud-config\n")
    assert resp.server.status == "initializing" and resp.root_password
    resp.action.wait_until_finished()
    server = hc.servers.get_by_id(resp.server.id)
    assert server.status == "running"
    assert server.public_net.ipv4.ip.startswith("127.0.0.")  # loopback: tests never leave the machine
    assert server.location.name == "fsn1" and server.server_type.name == "cx22"
    assert server.created.tzinfo is not None
    assert server.private_net == []

    server.power_off().wait_until_finished()
    assert hc.servers.get_by_id(server.id).status == "off"
    server.power_on().wait_until_finished()
    assert hc.servers.get_by_id(server.id).status == "running"
    server.reboot().wait_until_finished()
    server.shutdown().wait_until_finished()
    assert hc.servers.get_by_id(server.id).status == "off"

    assert [s.name for s in hc.servers.get_all(label_selector="tenant=acme")] == ["vm-1"]
    assert hc.servers.get_all(label_selector="tenant=other") == []
    assert hc.servers.get_by_name("vm-1").id == server.id

    server.delete().wait_until_finished()
    with pytest.raises(hcloud.APIException) as exc:
        hc.servers.get_by_id(server.id)
    assert exc.value.code == "not_found"

    create = next(r for r in fake.hetzner.requests if r["method"] == "POST" and r["path"] == "/v1/servers")
    assert create["json"]["server_type"] == "cx22" and create["json"]["location"] == "fsn1"
    assert create["json"]["labels"] == {"tenant": "acme"} and create["json"]["user_data"].startswith("#cloud-config")
    assert ("DELETE", f"/v1/servers/{server.id}") in [(r["method"], r["path"]) for r in fake.hetzner.requests]


def test_hetzner_private_net_and_ssh_keys(fake, hc):
    from hcloud.networks import Network
    from hcloud.ssh_keys import SSHKey

    resp = _create(hc, networks=[Network(id=7)], ssh_keys=[SSHKey(name="deploy")], start_after_create=False)
    assert resp.root_password is None  # ssh keys given -> no root password (as Hetzner)
    server = hc.servers.get_by_id(resp.server.id)
    assert server.status == "off"
    assert server.private_net[0].network.id == 7 and server.private_net[0].ip.startswith("10.0.")


def test_hetzner_capacity_and_limits(fake, hc):
    fake.hetzner.capacity[("cx22", "fsn1")] = False
    with pytest.raises(hcloud.APIException) as exc:
        _create(hc)
    assert exc.value.code == "resource_unavailable"
    with pytest.raises(hcloud.APIException) as exc:
        _create(hc, server_type="cx32", location="hel1")  # type not offered there
    assert exc.value.code == "resource_unavailable"
    with pytest.raises(hcloud.APIException) as exc:
        _create(hc, server_type="cx11")  # deprecated
    assert exc.value.code == "resource_unavailable"

    headers = {"Authorization": f"Bearer {fake.hetzner_token}"}
    assert httpx.get(f"{fake.hetzner_url}/limits", headers=headers).status_code == 404
    fake.hetzner.max_servers = 1
    _create(hc, location="nbg1")
    assert httpx.get(f"{fake.hetzner_url}/limits", headers=headers).json() == {"limits": {"servers": {"max": 1, "used": 1}}}
    with pytest.raises(hcloud.APIException) as exc:
        _create(hc, name="vm-2", location="nbg1")
    assert exc.value.code == "resource_limit_exceeded"


def test_hetzner_raw_capacity_error_body(fake):
    fake.hetzner.capacity[("cx22", "fsn1")] = False
    r = httpx.post(f"{fake.hetzner_url}/servers", headers={"Authorization": f"Bearer {fake.hetzner_token}"},
                   json={"name": "x", "server_type": "cx22", "image": "ubuntu-24.04", "location": "fsn1"})
    assert r.status_code == 412
    assert r.json()["error"]["code"] == "resource_unavailable" and r.json()["error"]["message"]


def test_hetzner_injected_errors(fake, hc):
    fake.hetzner.fail_next("service_error", 503, "maintenance")  # not retried by hcloud
    with pytest.raises(hcloud.APIException) as exc:
        hc.server_types.get_all()
    assert (exc.value.code, exc.value.message) == ("service_error", "maintenance")
    assert len(fake.hetzner.requests) == 1
    assert len(hc.server_types.get_all()) == 5  # only the next call failed

    fake.hetzner.fail_next("locked", 423, method="POST", path="/v1/servers")
    hc.locations.get_all()  # GETs are not affected by the filtered injection
    with pytest.raises(hcloud.APIException) as exc:
        _create(hc)
    assert exc.value.code == "locked"


def test_hetzner_rate_limit_is_retried(fake, hc):
    hc._client._retry_interval_func = lambda retries: 0  # private: skip hcloud's ~1 s backoff in this test
    fake.hetzner.rate_limit(times=1)
    assert hc.locations.get_all()  # hcloud retried transparently
    assert [r["path"] for r in fake.hetzner.requests] == ["/v1/locations", "/v1/locations"]
    hc._client._retry_max_retries = 0
    fake.hetzner.rate_limit()
    with pytest.raises(hcloud.APIException) as exc:
        hc.locations.get_all()
    assert exc.value.code == "rate_limit_exceeded"


def test_hetzner_auth_and_failed_action(fake, hc):
    bad = hcloud.Client(token="wrong", api_endpoint=fake.hetzner_url)
    with pytest.raises(hcloud.APIException) as exc:
        bad.servers.get_all()
    assert (exc.value.code, exc.value.message) == ("unauthorized", "unable to authenticate")

    server = _create(hc).server
    fake.hetzner.action_polls = 2
    fake.hetzner.fail_next_action("action_failed", "power off failed")
    with pytest.raises(ActionFailedException):
        hc.servers.get_by_id(server.id).power_off().wait_until_finished()


# --- DigitalOcean (pydo) ---------------------------------------------------------------------------

@pytest.fixture
def do(fake):
    # azure-core refuses BearerTokenCredentialPolicy over http -> send the bearer header via AzureKeyCredentialPolicy.
    policy = AzureKeyCredentialPolicy(AzureKeyCredential(fake.do_token), "Authorization", prefix="Bearer")
    return pydo.Client(fake.do_token, endpoint=fake.do_url, retry_total=0, authentication_policy=policy)


def test_do_catalogue(fake, do):
    sizes = {s["slug"]: s for s in do.sizes.list()["sizes"]}
    s = sizes["s-1vcpu-1gb"]
    assert (s["vcpus"], s["memory"], s["disk"], s["price_monthly"], s["price_hourly"]) == (1, 1024, 25, 6.0, 0.00893)
    assert s["available"] and "fra1" in s["regions"] and s["description"] == "Basic"
    assert sizes["c-2"]["available"] is False
    regions = {r["slug"]: r for r in do.regions.list()["regions"]}
    assert regions["fra1"]["name"] == "Frankfurt 1" and "s-1vcpu-1gb" in regions["fra1"]["sizes"]
    assert "s-2vcpu-2gb" not in regions["sfo3"]["sizes"]
    fake.digitalocean.capacity[("s-1vcpu-1gb", "fra1")] = False
    assert "fra1" not in {s["slug"]: s for s in do.sizes.list()["sizes"]}["s-1vcpu-1gb"]["regions"]


def test_do_droplet_lifecycle(fake, do):
    created = do.droplets.create(body={"name": "vm-1", "region": "fra1", "size": "s-1vcpu-1gb",
                                       "image": "ubuntu-24-04-x64", "tags": ["decabill", "tenant:acme"],
                                       "user_data": "#cloud-config\n"})
    droplet = created["droplet"]
    assert droplet["status"] == "new" and droplet["networks"]["v4"] == []
    assert droplet["region"]["slug"] == "fra1" and droplet["size_slug"] == "s-1vcpu-1gb"
    did = droplet["id"]

    # new_polls=1: the first GET still says "new", the next one is active with IPs
    assert do.droplets.get(did)["droplet"]["status"] == "new"
    active = do.droplets.get(did)["droplet"]
    assert active["status"] == "active"
    public = [n["ip_address"] for n in active["networks"]["v4"] if n["type"] == "public"]
    private = [n["ip_address"] for n in active["networks"]["v4"] if n["type"] == "private"]
    assert public[0].startswith("127.0.0.") and private[0].startswith("10.")

    for kind, status in (("power_off", "off"), ("power_on", "active"), ("reboot", "active"), ("shutdown", "off")):
        action = do.droplet_actions.post(did, body={"type": kind})["action"]
        assert (action["type"], action["status"], action["resource_id"]) == (kind, "in-progress", did)
        assert do.droplets.get(did)["droplet"]["status"] == status

    assert [d["id"] for d in do.droplets.list(tag_name="tenant:acme")["droplets"]] == [did]
    assert do.droplets.list(tag_name="other")["droplets"] == []
    assert do.droplets.destroy(did) is None  # 204

    # Trap: pydo does NOT raise on 404 for get/destroy/actions; it returns the error body.
    missing = do.droplets.get(did)
    assert missing["id"] == "not_found" and "droplet" not in missing
    assert do.droplet_actions.post(did, body={"type": "power_on"})["id"] == "not_found"

    body = next(r for r in fake.digitalocean.requests if r["method"] == "POST" and r["path"] == "/v2/droplets")["json"]
    assert body["user_data"] == "#cloud-config\n" and body["tags"] == ["decabill", "tenant:acme"]


def test_do_errors(fake, do):
    fake.digitalocean.capacity[("s-1vcpu-1gb", "fra1")] = False
    with pytest.raises(HttpResponseError) as exc:
        do.droplets.create(body={"name": "x", "region": "fra1", "size": "s-1vcpu-1gb", "image": "ubuntu-24-04-x64"})
    assert exc.value.status_code == 422 and "Size is not available in this region." in str(exc.value)
    r = httpx.post(f"{fake.do_url}/v2/droplets", headers={"Authorization": f"Bearer {fake.do_token}"},
                   json={"name": "x", "region": "fra1", "size": "s-1vcpu-1gb", "image": "ubuntu-24-04-x64"})
    assert (r.status_code, r.json()["id"], r.json()["message"]) == (422, "unprocessable_entity",
                                                                    "Size is not available in this region.")

    fake.digitalocean.rate_limit()
    with pytest.raises(HttpResponseError) as exc:
        do.sizes.list()
    assert exc.value.status_code == 429

    bad = pydo.Client("wrong", endpoint=fake.do_url, retry_total=0, authentication_policy=AzureKeyCredentialPolicy(
        AzureKeyCredential("wrong"), "Authorization", prefix="Bearer"))
    with pytest.raises(ClientAuthenticationError):
        bad.sizes.list()


# --- Cloudflare (plain httpx, as in the reference) -------------------------------------------------

def test_cloudflare_dns(fake):
    zone = fake.cf_zone_id
    with httpx.Client(base_url=fake.cf_url, headers={"Authorization": f"Bearer {fake.cf_token}"}) as cf:
        r = cf.post(f"/zones/{zone}/dns_records", json={"type": "A", "name": "vm1.decabill.test",
                                                        "content": "127.0.0.7", "ttl": 60, "proxied": False})
        assert r.status_code == 200 and r.json()["success"] is True and r.json()["errors"] == []
        rec = r.json()["result"]
        assert (rec["name"], rec["type"], rec["content"], rec["ttl"]) == ("vm1.decabill.test", "A", "127.0.0.7", 60)

        found = cf.get(f"/zones/{zone}/dns_records", params={"type": "A", "name": "vm1.decabill.test"}).json()
        assert [x["id"] for x in found["result"]] == [rec["id"]] and found["result_info"]["total_count"] == 1
        # the official SDK's dialect (name.exact) and its page+1 probing (must get an empty page)
        assert cf.get(f"/zones/{zone}/dns_records", params={"name.exact": "vm1.decabill.test"}).json()["result"]
        assert cf.get(f"/zones/{zone}/dns_records", params={"page": 2}).json()["result"] == []

        dup = cf.post(f"/zones/{zone}/dns_records", json={"type": "A", "name": "vm1", "content": "127.0.0.7"})
        assert dup.status_code == 400 and dup.json()["success"] is False and dup.json()["errors"][0]["code"] == 81058
        bad_ip = cf.post(f"/zones/{zone}/dns_records", json={"type": "A", "name": "x", "content": "nope"})
        assert bad_ip.status_code == 400

        assert cf.delete(f"/zones/{zone}/dns_records/{rec['id']}").json()["result"] == {"id": rec["id"]}
        assert fake.cloudflare.records == {}
        gone = cf.delete(f"/zones/{zone}/dns_records/{rec['id']}")
        assert gone.status_code == 404 and gone.json()["errors"][0]["code"] == 81044

        fake.cloudflare.fail_next(500, 10001, "boom")
        assert cf.get(f"/zones/{zone}/dns_records").json()["success"] is False
    denied = httpx.get(f"{fake.cf_url}/zones/{zone}/dns_records", headers={"Authorization": "Bearer nope"})
    assert denied.status_code == 403 and denied.json()["errors"][0]["message"] == "Authentication error"
    assert fake.cloudflare.requests[0]["json"]["name"] == "vm1.decabill.test"


# --- Stripe (stripe-python) ------------------------------------------------------------------------

@pytest.fixture
def sc(fake):
    return stripe.StripeClient(fake.stripe_key, base_addresses={"api": fake.stripe_url}, max_network_retries=0)


def _session_params(**extra):
    params = {"mode": "payment", "success_url": "https://app.test/ok?session_id={CHECKOUT_SESSION_ID}",
              "cancel_url": "https://app.test/cancel", "client_reference_id": "order-42",
              "metadata": {"order_id": "42", "tenant": "acme"},
              "line_items": [
                  {"quantity": 2, "price_data": {"currency": "eur", "unit_amount": 1999,
                                                 "product_data": {"name": "cx22 VM"}}},
                  {"quantity": 1, "price_data": {"currency": "eur", "unit_amount": 500,
                                                 "product_data": {"name": "Backup"}}}]}
    params.update(extra)
    return params


def test_parse_form():
    body = ("mode=payment&metadata[order_id]=42&metadata[0]=x&line_items[0][quantity]=1"
            "&line_items[0][price_data][unit_amount]=1999&line_items[1][price]=price_1&expand[]=a&expand[]=b&empty=")
    assert parse_form(body) == {
        "mode": "payment", "metadata": {"order_id": "42", "0": "x"},
        "line_items": [{"quantity": "1", "price_data": {"unit_amount": "1999"}}, {"price": "price_1"}],
        "expand": ["a", "b"], "empty": ""}
    assert parse_form("a%5B0%5D=1") == {"a": ["1"]}  # percent-encoded brackets work too


def test_stripe_customers(fake, sc):
    cust = sc.v1.customers.create(params={"email": "ops@acme.test", "name": "Acme", "metadata": {"tenant": "acme"}})
    assert cust.id.startswith("cus_") and cust.object == "customer" and isinstance(cust, stripe.Customer)
    again = sc.v1.customers.retrieve(cust.id)
    assert (again.email, again.name, again.metadata["tenant"], again.livemode) == ("ops@acme.test", "Acme", "acme", False)
    sc.v1.customers.update(cust.id, params={"metadata": {"tenant": "", "plan": "pro"}})
    assert fake.stripe.customers[cust.id]["metadata"] == {"plan": "pro"}
    with pytest.raises(stripe.InvalidRequestError) as exc:
        sc.v1.customers.retrieve("cus_missing")
    assert exc.value.http_status == 404 and exc.value.code == "resource_missing"


def test_stripe_checkout_session(fake, sc):
    cust = sc.v1.customers.create(params={"email": "ops@acme.test"})
    cs = sc.v1.checkout.sessions.create(params=_session_params(customer=cust.id))
    assert isinstance(cs, stripe.checkout.Session)
    assert cs.id.startswith("cs_test_") and cs.url.endswith(cs.id)
    assert (cs.amount_total, cs.amount_subtotal, cs.currency) == (2 * 1999 + 500, 4498, "eur")
    assert (cs.status, cs.payment_status, cs.mode, cs.livemode) == ("open", "unpaid", "payment", False)
    assert cs.metadata["order_id"] == "42" and cs.client_reference_id == "order-42" and cs.customer == cust.id
    assert cs.payment_intent is None and cs.expires_at - cs.created == 24 * 3600
    assert cs.success_url.startswith("https://app.test/ok") and cs.cancel_url == "https://app.test/cancel"

    got = sc.v1.checkout.sessions.retrieve(cs.id)
    assert got.id == cs.id and got.amount_total == 4498
    sent = fake.stripe.requests[-2]["params"]  # what stripe-python put on the wire, decoded
    assert sent["line_items"][0]["price_data"]["unit_amount"] == "1999"
    assert fake.stripe.line_items[cs.id][1]["price_data"]["product_data"]["name"] == "Backup"

    expired = sc.v1.checkout.sessions.expire(cs.id)
    assert (expired.status, expired.url) == ("expired", None)
    with pytest.raises(stripe.InvalidRequestError):
        sc.v1.checkout.sessions.expire(cs.id)

    with pytest.raises(stripe.InvalidRequestError) as exc:
        sc.v1.checkout.sessions.create(params={"success_url": "https://x"})
    assert exc.value.param == "mode"
    with pytest.raises(stripe.InvalidRequestError) as exc:
        sc.v1.checkout.sessions.create(params=_session_params(customer="cus_nope"))
    assert exc.value.param == "customer"
    with pytest.raises(stripe.InvalidRequestError) as exc:
        sc.v1.checkout.sessions.retrieve("cs_test_missing")
    assert exc.value.http_status == 404

    price = fake.stripe.add_price(1299, "eur", "cx32 VM")
    cs2 = sc.v1.checkout.sessions.create(params={"mode": "payment", "success_url": "https://x",
                                                 "line_items": [{"price": price, "quantity": 3}]})
    assert cs2.amount_total == 3897


def test_stripe_idempotency(fake, sc):
    first = sc.v1.checkout.sessions.create(params=_session_params(), options={"idempotency_key": "order-42-attempt-1"})
    again = sc.v1.checkout.sessions.create(params=_session_params(), options={"idempotency_key": "order-42-attempt-1"})
    assert again.id == first.id and len(fake.stripe.sessions) == 1
    other = sc.v1.checkout.sessions.create(params=_session_params())  # the library adds a fresh random key
    assert other.id != first.id
    with pytest.raises(stripe.IdempotencyError):
        sc.v1.checkout.sessions.create(params=_session_params(client_reference_id="other"),
                                       options={"idempotency_key": "order-42-attempt-1"})
    keys = [r["idempotency_key"] for r in fake.stripe.requests]
    assert keys[:2] == ["order-42-attempt-1", "order-42-attempt-1"] and keys[2]


def test_stripe_errors(fake, sc):
    bad = stripe.StripeClient("sk_live_nope", base_addresses={"api": fake.stripe_url}, max_network_retries=0)
    with pytest.raises(stripe.AuthenticationError):
        bad.v1.customers.create(params={"email": "a@b.test"})
    fake.stripe.fail_next(500, "api_error", "Something went wrong")
    with pytest.raises(stripe.APIError):
        sc.v1.customers.create(params={"email": "a@b.test"})
    fake.stripe.fail_next(429, "invalid_request_error", "Too many requests", code="rate_limit")
    with pytest.raises(stripe.RateLimitError):
        sc.v1.customers.create(params={"email": "a@b.test"})


def test_stripe_webhooks(fake, sc):
    secret = "whsec_test_secret"
    cs = sc.v1.checkout.sessions.create(params=_session_params(customer_email="buyer@acme.test"))
    event = fake.stripe.complete_session(cs.id)
    assert event["type"] == "checkout.session.completed" and event["id"].startswith("evt_")
    obj = event["data"]["object"]
    assert (obj["status"], obj["payment_status"], obj["metadata"]["order_id"]) == ("complete", "paid", "42")
    assert obj["payment_intent"].startswith("pi_") and obj["customer_details"]["email"] == "buyer@acme.test"
    assert sc.v1.checkout.sessions.retrieve(cs.id).status == "complete"
    assert sc.v1.events.retrieve(event["id"]).type == "checkout.session.completed"

    payload = json.dumps(event)
    header = sign_webhook(payload, secret)
    parsed = stripe.Webhook.construct_event(payload, header, secret)
    assert parsed.type == "checkout.session.completed"
    assert isinstance(parsed.data.object, stripe.checkout.Session) and parsed.data.object.id == cs.id
    assert sc.construct_event(payload.encode(), header, secret).id == event["id"]

    with pytest.raises(stripe.SignatureVerificationError):
        stripe.Webhook.construct_event(payload.replace('"paid"', '"unpaid"'), header, secret)
    with pytest.raises(stripe.SignatureVerificationError):
        stripe.Webhook.construct_event(payload, sign_webhook(payload, "whsec_other"), secret)
    with pytest.raises(stripe.SignatureVerificationError):  # older than the 300 s tolerance
        stripe.Webhook.construct_event(payload, sign_webhook(payload, secret, timestamp=1_700_000_000), secret)

    ev = make_event("customer.created", {"id": "cus_123", "object": "customer"}, event_id="evt_fixed")
    assert ev["id"] == "evt_fixed" and ev["object"] == "event" and ev["livemode"] is False and ev["api_version"]
    assert ev["data"] == {"object": {"id": "cus_123", "object": "customer"}}

    # delayed payment flow + expiry events
    cs2 = sc.v1.checkout.sessions.create(params=_session_params())
    assert fake.stripe.complete_session(cs2.id, payment_status="unpaid")["data"]["object"]["payment_status"] == "unpaid"
    assert fake.stripe.async_payment_succeeded(cs2.id)["type"] == "checkout.session.async_payment_succeeded"
    cs3 = sc.v1.checkout.sessions.create(params=_session_params())
    assert fake.stripe.expire_session(cs3.id)["data"]["object"]["status"] == "expired"


def test_reset_clears_everything(fake, hc, sc):
    _create(hc)
    sc.v1.customers.create(params={"email": "a@b.test"})
    fake.hetzner.capacity[("cx22", "fsn1")] = False
    fake.reset()
    assert fake.hetzner.servers == {} and fake.hetzner.capacity == {} and fake.hetzner.requests == []
    assert fake.stripe.customers == {} and fake.stripe.requests == []
    assert fake.digitalocean.droplets == {} and fake.cloudflare.records == {}


# --- async clients (what async production code will use) -------------------------------------------

async def test_stripe_async_client(fake, sc):
    cs = await sc.v1.checkout.sessions.create_async(params=_session_params())
    got = await sc.v1.checkout.sessions.retrieve_async(cs.id)
    assert got.id == cs.id and got.amount_total == 4498


async def test_pydo_async_client(fake):
    pytest.importorskip("aiohttp")
    import pydo.aio

    policy = AzureKeyCredentialPolicy(AzureKeyCredential(fake.do_token), "Authorization", prefix="Bearer")
    async with pydo.aio.Client(fake.do_token, endpoint=fake.do_url, retry_total=0, authentication_policy=policy) as do:
        created = await do.droplets.create(body={"name": "a1", "region": "fra1", "size": "s-1vcpu-1gb",
                                                 "image": "ubuntu-24-04-x64"})
        assert (await do.droplets.get(created["droplet"]["id"]))["droplet"]["name"] == "a1"
        assert await do.droplets.destroy(created["droplet"]["id"]) is None


async def test_hcloud_from_async_code(fake, hc):
    import asyncio

    resp = await asyncio.to_thread(_create, hc)
    await asyncio.to_thread(resp.action.wait_until_finished)
    assert (await asyncio.to_thread(hc.servers.get_by_id, resp.server.id)).status == "running"
