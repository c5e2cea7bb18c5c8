"""Every error leaves the API as the contract's ErrorResponse `{statusCode, message, error}` with content type
application/json — routing errors, validation errors, not-yet-available capabilities and crashes alike
(behavior.md part A §1.1, §1.6)."""

from __future__ import annotations

import pytest

from tests.helpers import assert_error

JSON = {"content-type": "application/json"}


async def test_an_unknown_route_is_404_naming_method_and_path(api):
    assert_error(await api.get("/nope"), 404, "Cannot GET /api/nope")
    assert_error(await api.post("/users/x/y/z", json={}), 404, "Cannot POST /api/users/x/y/z")


async def test_a_known_path_with_the_wrong_method_is_405(api):
    assert_error(await api.delete("/health"), 405)
    assert_error(await api.request("PUT", "/auth/login", json={}), 405)


async def test_a_malformed_uuid_in_the_path_is_400_before_any_query(api):
    admin = await api.admin_token()
    assert_error(await api.get("/users/abc", token=admin), 400, "Validation failed (uuid v 4 is expected)")
    assert_error(await api.delete("/users/1234", token=admin), 400, "Validation failed (uuid v 4 is expected)")


async def test_bad_query_parameters_are_400_with_a_one_line_message(api):
    admin = await api.admin_token()
    assert_error(await api.get("/users", token=admin, params={"limit": "ten"}), 400,
                 "Validation failed (numeric string is expected)")
    body = assert_error(await api.get("/users", token=admin, params={"limit": "-1"}), 400)
    assert "limit" in body["message"] and "\n" not in body["message"]
    assert_error(await api.get("/users", token=admin, params={"unknown": "1"}), 400)


async def test_a_body_that_is_not_utf8_is_400_not_500(api):
    response = await api.post("/auth/login", content=b"\xff\xfe", headers=JSON)
    assert_error(response, 400, "Request body is not valid UTF-8")


async def test_malformed_json_is_400(api):
    assert_error(await api.post("/auth/login", content=b'{"email": "a@example.com",', headers=JSON), 400)


async def test_a_missing_required_body_is_400(api):
    assert_error(await api.post("/auth/login"), 400)
    assert_error(await api.post("/auth/login", json={"email": "a@example.com"}), 400)


async def test_unknown_body_properties_are_rejected(api):
    response = await api.post("/auth/login", json={"email": "a@example.com", "password": "whatever-1", "isAdmin": True})
    body = assert_error(response, 400)
    assert "isAdmin" in body["message"]


async def test_a_body_of_another_media_type_is_refused(api):
    response = await api.post("/auth/login", content=b"email=a@example.com", headers={"content-type": "text/plain"})
    assert_error(response, 415)


async def test_a_capability_that_has_not_landed_answers_501_naming_it(api, monkeypatch):
    # Every area has landed; a service that raises CapabilityNotAvailable stands in for one that has not.
    from decabill.admin import service as admin
    from decabill.errors import CapabilityNotAvailable

    async def not_yet(*_args, **_kwargs):
        raise CapabilityNotAvailable("Admin billing")

    monkeypatch.setattr(admin, "billing_summary", not_yet)
    admin = await api.admin_token()
    body = assert_error(await api.get("/admin/billing/summary", token=admin), 501)
    assert body["message"] == "Admin billing is not available yet in this version of Decabill"
    assert body["error"] == "Not Implemented"


async def test_authentication_comes_before_the_501(api):
    assert_error(await api.get("/admin/billing/summary"), 401)


@pytest.mark.parametrize(
    "send",
    [
        pytest.param({}, id="no-body-no-content-type"),
        pytest.param({"content": b"", "headers": JSON}, id="empty-body-json-content-type"),
        pytest.param({"content": b"null", "headers": JSON}, id="json-null"),
    ],
)
async def test_an_optional_body_may_be_omitted(api, send):
    """`adminBillNow` declares `requestBody.required: false`. Request validation runs before the handler, so
    anything but 400 proves the omitted body was accepted (JSON `null` too: some HTTP clients send it for "no
    body")."""
    admin = await api.admin_token()
    response = await api.post("/admin/billing/bill-now", token=admin, **send)
    assert response.status_code == 200, response.text
    # ...while a body that is present is still validated.
    assert_error(await api.post("/admin/billing/bill-now", token=admin, json={"unexpected": 1}), 400)


async def test_an_unexpected_crash_is_a_500_error_response_without_details(api, monkeypatch):
    from decabill import system

    async def broken() -> dict:
        raise RuntimeError("secret internals: password=hunter2")

    monkeypatch.setattr(system, "health", broken)
    response = await api.get("/health")
    assert_error(response, 500, "Internal server error")
    assert "hunter2" not in response.text


async def test_a_concrete_path_wins_over_a_templated_one(api):
    """OpenAPI precedence: `/service-types/providers` is its own path (GET only), not `/service-types/{id}`."""
    admin = await api.admin_token()
    response = await api.post("/service-types/providers", token=admin, json={})
    assert_error(response, 405, "Method Not Allowed")
    assert response.headers["allow"] == "GET"
