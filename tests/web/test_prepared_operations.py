"""The handlers' Connexion decorators are built once per operation (decabill/web/operations.py), not on
every request as Connexion's own `AsyncOperation` does; each request still gets its own parameters."""

from __future__ import annotations

from connexion.decorators import parameter as connexion_parameters

from decabill.web.operations import PreparedAsyncASGIApp
from tests.helpers import assert_error


async def test_an_operation_inspects_its_handler_once_and_parses_each_request(make_api, monkeypatch):
    inspected = []
    original = connexion_parameters.inspect_function_arguments

    def counting(function):
        inspected.append(function.__name__)
        return original(function)

    monkeypatch.setattr(connexion_parameters, "inspect_function_arguments", counting)
    api = await make_api(fresh=True)
    for params in ({"limit": 1}, {"limit": 2, "offset": 1}, {}):
        response = await api.get("/public/service-plan-offerings", params=params)
        assert response.status_code == 200, response.text
        assert response.json() == []
    assert_error(await api.get("/public/service-plan-offerings", params={"limit": 0}), 400)
    assert_error(await api.post("/public/service-plan-offerings"), 405)
    assert_error(await api.get("/public/no-such-thing"), 404)
    # Connexion's AsyncOperation inspects the handler on each of the four requests that reach it.
    assert inspected == ["list_public_service_plan_offerings"]


async def test_the_app_runs_the_prepared_operations_inside_connexion_s_middleware(env):
    from decabill.web.app import create_app

    app = create_app()
    inner = app.middleware.app
    assert isinstance(inner, PreparedAsyncASGIApp)
    assert inner is app._middleware_app
