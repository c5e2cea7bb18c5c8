"""Run all fakes on ONE local port (127.0.0.1 only) in a background thread.

    cloud = FakeCloud().start()
    cloud.url          -> "http://127.0.0.1:<port>"
    cloud.hetzner_url  -> f"{url}/hetzner/v1"       hcloud.Client(api_endpoint=...)
    cloud.do_url       -> f"{url}/do"               pydo.Client(endpoint=...)   (pydo appends /v2/...)
    cloud.cf_url       -> f"{url}/cf/client/v4"     httpx base_url / cloudflare.Cloudflare(base_url=...)
    cloud.stripe_url   -> f"{url}/stripe"           stripe.StripeClient(base_addresses={"api": ...})  (appends /v1/...)
    cloud.receiver_url -> f"{url}/receiver"          a webhook receiver (cloud.receiver: what it got)
    cloud.keycloak_url -> f"{url}/keycloak"         KEYCLOAK_SERVER_URL (realm JWKS under /realms/<realm>/...)
    cloud.vies_url     -> f"{url}/vies"             VIES_API_URL (POST /check-vat-number)
    cloud.hetzner / .digitalocean / .cloudflare / .stripe / .keycloak  -> the state objects
    cloud.reset(); cloud.stop()

Pattern from stack.md §9: uvicorn.Server in a daemon thread, port 0, wait for ``started``, read the bound port.
"""

from __future__ import annotations

import threading
import time

import uvicorn
from starlette.applications import Starlette
from starlette.routing import Mount

from . import cloudflare, digitalocean, hetzner
from . import keycloak as keycloak_fake
from . import vies as vies_fake
from . import stripe as stripe_fake
from . import webhook_receiver


class FakeCloud:
    def __init__(self, host: str = "127.0.0.1", port: int = 0):
        self.hetzner = hetzner.HetznerState()
        self.digitalocean = digitalocean.DigitalOceanState()
        self.cloudflare = cloudflare.CloudflareState()
        self.stripe = stripe_fake.StripeState()
        self.keycloak = keycloak_fake.KeycloakState()
        self.vies = vies_fake.ViesState()
        self.receiver = webhook_receiver.ReceiverState()
        self.app = Starlette(routes=[
            Mount("/hetzner", app=hetzner.create_app(self.hetzner)),
            Mount("/do", app=digitalocean.create_app(self.digitalocean)),
            Mount("/cf", app=cloudflare.create_app(self.cloudflare)),
            Mount("/stripe", app=stripe_fake.create_app(self.stripe)),
            Mount("/keycloak", app=keycloak_fake.create_app(self.keycloak)),
            Mount("/vies", app=vies_fake.create_app(self.vies)),
            Mount("/receiver", app=webhook_receiver.create_app(self.receiver)),
        ])
        self._host, self._port = host, port
        self._server: uvicorn.Server | None = None
        self._thread: threading.Thread | None = None
        self.url = ""

    # Tokens the fakes expect (Stripe accepts any "sk_test_..." key unless cloud.stripe.api_key is set).
    hetzner_token = hetzner.HetznerState.TOKEN
    do_token = digitalocean.DigitalOceanState.TOKEN
    cf_token = cloudflare.CloudflareState.TOKEN
    cf_zone_id = cloudflare.CloudflareState.ZONE_ID
    stripe_key = "sk_test_fake_decabill"

    @property
    def hetzner_url(self) -> str:
        return f"{self.url}/hetzner/v1"

    @property
    def do_url(self) -> str:
        return f"{self.url}/do"

    @property
    def cf_url(self) -> str:
        return f"{self.url}/cf/client/v4"

    @property
    def stripe_url(self) -> str:
        return f"{self.url}/stripe"

    @property
    def receiver_url(self) -> str:
        """Where a webhook endpoint points to reach the fake receiver (any path below it)."""
        return f"{self.url}/receiver"

    @property
    def keycloak_url(self) -> str:
        return f"{self.url}/keycloak"

    @property
    def vies_url(self) -> str:
        return f"{self.url}/vies"

    def start(self, timeout: float = 10.0) -> "FakeCloud":
        config = uvicorn.Config(self.app, host=self._host, port=self._port, log_level="warning",
                                access_log=False, lifespan="off")
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(target=self._server.run, name="fake-cloud", daemon=True)
        self._thread.start()
        deadline = time.monotonic() + timeout
        while not self._server.started:
            if not self._thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError("fake cloud server did not start")
            time.sleep(0.01)
        port = self._server.servers[0].sockets[0].getsockname()[1]
        self.url = f"http://{self._host}:{port}"
        self.keycloak.base_url = self.keycloak_url  # the issuer of the tokens it mints
        return self

    def stop(self, timeout: float = 5.0) -> None:
        if self._server is not None:
            self._server.should_exit = True
        if self._thread is not None:
            self._thread.join(timeout)
        self._server = self._thread = None

    def reset(self) -> None:
        """Clear all state (servers, droplets, records, customers, sessions, logs, injected errors, realm keys)."""
        for state in (self.hetzner, self.digitalocean, self.cloudflare, self.stripe, self.keycloak, self.vies, self.receiver):
            state.reset()
        self.stripe.api_key = None

    def __enter__(self) -> "FakeCloud":
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def main() -> None:
    """`python -m tests.fakes.server`: the fakes and an SMTP sink as a process of their own, for tests in
    other languages (the TypeScript client's end-to-end test). Prints one JSON line with the URLs, tokens
    and SMTP port, then serves until stdin closes or SIGTERM/SIGINT arrives. The mails the sink received
    are listed by `GET /smtp/messages?to=<address>` (JSON: to, subject, text, attachments)."""
    import json
    import signal
    import sys

    from starlette.requests import Request
    from starlette.responses import JSONResponse
    from starlette.routing import Route

    from .smtp import SmtpSink

    sink = SmtpSink().start()

    async def messages(request: Request) -> JSONResponse:
        return JSONResponse([
            {"to": str(m["To"]), "subject": str(m["Subject"]), "text": sink.text_of(m),
             "attachments": [part.get_filename() for part in m.iter_attachments()]}
            for m in sink.to(request.query_params.get("to", ""))
        ])

    cloud = FakeCloud()
    cloud.app.router.routes.append(Route("/smtp/messages", messages))
    cloud.start()
    print(json.dumps({
        "url": cloud.url, "hetznerUrl": cloud.hetzner_url, "hetznerToken": cloud.hetzner_token,
        "digitaloceanUrl": cloud.do_url, "digitaloceanToken": cloud.do_token,
        "cloudflareUrl": cloud.cf_url, "cloudflareToken": cloud.cf_token, "cloudflareZoneId": cloud.cf_zone_id,
        "stripeUrl": cloud.stripe_url, "stripeKey": cloud.stripe_key, "smtpPort": sink.port,
    }), flush=True)
    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    threading.Thread(target=lambda: (sys.stdin.read(), stop.set()), daemon=True).start()
    stop.wait()
    cloud.stop()
    sink.stop()


if __name__ == "__main__":
    main()
