"""A process that dies by SIGKILL at a chosen point of the webhook path (run by test_crash.py):

* `after-commit <user id>` — saves the user's first customer profile (`customer.created`) and is killed right
  after the commit, before the delivery is sent to the queue;
* `mid-delivery <delivery id>` — claims the delivery and is killed before the receiver answered.
"""

from __future__ import annotations

import asyncio
import os
import signal
import sys
import uuid

from decabill import db
from decabill.identity.principal import Principal
from decabill.tenancy import bound_tenant


def _die(*_args, **_kwargs):
    os.kill(os.getpid(), signal.SIGKILL)


async def main(mode: str, target: str) -> None:
    db.init_engine(os.environ["DATABASE_URL"])
    with bound_tenant("default"):
        if mode == "after-commit":
            from decabill.customers import service as customers
            from decabill.webhooks import outbox

            outbox.enqueue = _die
            await customers.update_own_profile(Principal("default", "user", "users", uuid.UUID(target)),
                                               first_name="Ada", last_name="Lovelace")
        elif mode == "mid-delivery":
            from decabill.webhooks import delivery

            delivery.post = _die
            await delivery.deliver(uuid.UUID(target))
    raise SystemExit("not killed")


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1], sys.argv[2]))
