"""GET /health/ready: the database and, when configured, Redis; /health stays the cheap liveness probe."""

from __future__ import annotations

from tests.processes import free_port


async def test_ready_without_redis(api):
    response = await api.get("/health/ready")
    assert response.status_code == 200
    assert response.json() == {"status": "ready", "database": "ok", "redis": "not_configured"}


async def test_ready_with_redis(env, make_api):
    env.update(REDIS_URL="redis://127.0.0.1:6379/13")
    api = await make_api()
    response = await api.get("/health/ready")
    assert response.status_code == 200
    assert response.json() == {"status": "ready", "database": "ok", "redis": "ok"}


async def test_redis_down_is_not_ready_but_alive(env, make_api):
    env.update(REDIS_URL=f"redis://127.0.0.1:{free_port()}/0")  # nothing listens there
    api = await make_api()
    response = await api.get("/health/ready")
    assert response.status_code == 503
    assert response.json() == {"status": "unavailable", "database": "ok", "redis": "unreachable"}
    assert (await api.get("/health")).status_code == 200  # liveness does not depend on Redis
