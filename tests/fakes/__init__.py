"""Local fakes of external APIs (Hetzner Cloud, DigitalOcean, Cloudflare DNS, Stripe) speaking their real
wire formats, so the real client libraries (hcloud, pydo, stripe, httpx) run against them unmodified.

Typical use (see tests/fakes/test_fakes.py)::

    from tests.fakes.server import FakeCloud
    cloud = FakeCloud().start()
    ...  # cloud.hetzner_url, cloud.do_url, cloud.cf_url, cloud.stripe_url; cloud.hetzner.capacity[...] = False
    cloud.reset(); cloud.stop()
"""
