"""The background job layer (taskiq), shared by every domain.

* `decabill.jobs.queue` — `@task` / `@periodic` declarations, the broker of the configuration
  (in-process without Redis, Redis streams with it), `enqueue`, and `fan_out` for coordinators.
* `decabill.jobs.runtime` — what a process runs by `QUEUE_ROLE` (scheduler loop, worker).
* `decabill.jobs.leases` — expiring named claims for units that call external APIs.

The rules every job follows (docs/architecture.md):
1. A coordinator (periodic, no arguments) loops over the configured tenants with the tenant bound,
   selects at most a batch of due entity ids and enqueues one unit per id — nothing else.
2. A unit takes `(tenant, entity_id)`, opens its own transaction(s), re-loads the entity, re-checks
   that the work is still due and CLAIMS it: a row lock (`get(..., for_update=True, skip_locked=True)` on
   PostgreSQL; SQLite's BEGIN IMMEDIATE serialises writers) for database-only work, a lease for work
   that calls an external API. A unique constraint backs every write that must happen once.
   Hence a unit delivered twice, or run by two workers at once, does nothing the second time.
3. Units are plain async service functions first (tested directly); the task is a thin wrapper in
   `decabill/<domain>/tasks.py`, named `<domain>.<verb>`.
4. Failed units are logged and not retried by the queue: the next coordinator run finds the entity
   still due and enqueues it again (backorders back off through `retry_after`).
"""
