"""Subscriptions: ordering, provisioning, server control, backorders, recurring charges and their jobs.

* `service` — the subscription operations (order, read, cancel/resume, items, server info and power), and
  the backorder operations of `backorders`: the domain's public face;
* `backorders` — waiting orders, their retries and cancellation (D4);
* `lifecycle` — inserting an order, starting its first period, ending it: shared by the modules here;
* `repository` — every query on subscriptions, items, hostnames, backorders and open positions;
* `provisioning` — configuration, capacity, creating and removing servers (with `hostnames`, `dns`,
  `keys`, `cloud_init`, `configuration`);
* `schedule` — billing periods and prorated amounts (D5, D7);
* `billing`, `expiration`, `updates`, `recovery` (orders a crash interrupted) — the units of the
  background jobs, wrapped in `tasks`.
"""
