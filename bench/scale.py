"""Do the hot list queries keep their cost as the tables grow? The same statements timed on the benchmark database
and on a copy with `--factor` times its customers, subscriptions and invoices.

    .venv/bin/python -m bench.scale --database decabill_bench_api        # after bench/api.py has seeded it
    .venv/bin/python -m bench.scale --database decabill_bench_api --factor 10 --time 20 --only "admin"

The copy (`<database>_x<factor>`, made from the seeded database as a template, dropped and made again each run)
gets (factor - 1) more customers per seeded customer, each with copies of that customer's subscriptions and
invoices, loaded without triggers (the counters are set afterwards). The copies are older (a year per copy) and
written so that none matches a search term of bench/explain.py that names something (an e-mail, a customer, a year,
an invoice-number prefix, a whole id): their e-mails are made of letters no such term holds
(`fK.<letters>@fill.test`), their invoice numbers are the originals ten years earlier per copy
(`INV-<year - 10 K>-…`), their subscription numbers `SUB-<K><the seeded digits>`. Terms that every row or a share of
all rows can hold (one or two characters, a fragment of digits or of hex, "inv-", "@") match the copies too, as they
would on a grown database. Then bench/explain.py times every statement on both databases in turn (`--rounds` times,
the best kept) and prints µs per run side by side with the matches each search counts, so a statement whose cost
follows the table's size, rather than what it matches and shows, stands out.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import re
import subprocess
import sys
from pathlib import Path

import asyncpg

from bench.pg import recreate_database

ROOT = Path(__file__).resolve().parent.parent
PG_URL = os.environ.get("BENCH_PG_URL", "postgresql://postgres@127.0.0.1:5432")

# Letters no term of bench/explain.py holds in order (no "c", "q", "x", "y", hex digits only as single letters
# among the others): md5 hex digits are mapped onto them for the copies' e-mails.
_HEX = "0123456789abcdef"
_LETTERS = "ghijklmnoprstuvw"


async def _columns(connection: asyncpg.Connection, table: str) -> list[str]:
    rows = await connection.fetch("SELECT column_name FROM information_schema.columns WHERE table_name = $1 "
                                  "AND table_schema = 'public' ORDER BY ordinal_position", table)
    return [row["column_name"] for row in rows]


async def _copy(connection: asyncpg.Connection, table: str, source: str, overrides: dict[str, str]) -> str:
    """INSERT INTO `table` every column from `source` (a FROM clause naming the row `t` and the copy's number `k`)
    as it is, but `overrides` (column -> SQL expression)."""
    columns = await _columns(connection, table)
    values = ", ".join(overrides.get(column, f"t.{column}") for column in columns)
    return await connection.execute(f"INSERT INTO {table} ({', '.join(columns)}) SELECT {values} FROM {source}")


async def grow(database: str, factor: int) -> str:
    """The copy of `database` with `factor` times its customers, subscriptions and invoices; its name."""
    grown = f"{database}_x{factor}"
    await recreate_database(f"{PG_URL}/postgres", grown, template=database)
    connection = await asyncpg.connect(f"{PG_URL}/{grown}")
    try:
        async with connection.transaction():
            # Without triggers (foreign keys, and the counters of migrations 0024 and 0030, set again below): the
            # counter of the tenant's invoices, bumped by a trigger per inserted row, was updated 900,000 times in
            # one transaction, and that COMMIT had not ended after eight minutes.
            await connection.execute("SET LOCAL session_replication_role = replica")
            # the seeded customers (not the bench's admin and customer, who keep what they had)
            await connection.execute(
                "CREATE TEMP TABLE copied AS SELECT u.id AS old_id, gen_random_uuid() AS new_id, k "
                "FROM users u, generate_series(1, $1::int - 1) AS k "
                "WHERE u.role <> 'admin' AND u.email NOT LIKE 'bench-%'", factor)
            await connection.execute("CREATE INDEX ON copied (old_id, k)")
            letters = f"translate(md5(c.new_id::text), '{_HEX}', '{_LETTERS}')"
            print(await _copy(connection, "users", "users t JOIN copied c ON c.old_id = t.id", {
                "id": "c.new_id", "email": f"'f' || c.k || '.' || {letters} || '@fill.test'",
                "keycloak_sub": "NULL", "email_confirmation_token": "NULL", "password_reset_token": "NULL",
                "created_at": "t.created_at - make_interval(years => c.k)"}), "users", flush=True)
            await connection.execute(
                "CREATE TEMP TABLE copied_subscriptions AS SELECT s.id AS old_id, gen_random_uuid() AS new_id, c.k, "
                "c.new_id AS user_id FROM subscriptions s JOIN copied c ON c.old_id = s.user_id")
            await connection.execute("CREATE INDEX ON copied_subscriptions (old_id, k)")
            print(await _copy(connection, "subscriptions",
                              "subscriptions t JOIN copied_subscriptions c ON c.old_id = t.id", {
                                  "id": "c.new_id", "user_id": "c.user_id",
                                  "number": "'SUB-' || c.k || substr(t.number, 5)",
                                  "created_at": "t.created_at - make_interval(years => c.k)"}), "subscriptions",
                  flush=True)
            print(await _copy(connection, "invoices",
                              "invoices t JOIN copied c ON c.old_id = t.user_id "
                              "LEFT JOIN copied_subscriptions s ON s.old_id = t.subscription_id AND s.k = c.k", {
                                  "id": "gen_random_uuid()", "user_id": "c.new_id", "subscription_id": "s.new_id",
                                  "invoice_number": "CASE WHEN t.invoice_number IS NOT NULL THEN "
                                                    "'INV-' || (substr(t.invoice_number, 5, 4)::int - 10 * c.k) "
                                                    "|| substr(t.invoice_number, 9) END",
                                  "credit_note_number": "NULL", "pdf_storage_key": "NULL",
                                  "credit_note_storage_key": "NULL", "external_payment_id": "NULL",
                                  "created_at": "t.created_at - make_interval(years => c.k)"}), "invoices",
                  flush=True)
            await connection.execute(
                "UPDATE invoice_counts n SET invoices = (SELECT count(*) FROM invoices i WHERE i.tenant_id = n.tenant_id), "
                "list_version = nextval('invoice_list_versions')")
            await connection.execute(
                "INSERT INTO invoice_user_counts (tenant_id, user_id, invoices) SELECT tenant_id, user_id, count(*) "
                "FROM invoices WHERE user_id IN (SELECT new_id FROM copied) GROUP BY tenant_id, user_id")
        await connection.execute("VACUUM ANALYZE")
        sizes = await connection.fetchrow("SELECT (SELECT count(*) FROM users) AS users, "
                                          "(SELECT count(*) FROM subscriptions) AS subscriptions, "
                                          "(SELECT count(*) FROM invoices) AS invoices")
        print(f"{grown}: {sizes['users']:,} users, {sizes['subscriptions']:,} subscriptions, "
              f"{sizes['invoices']:,} invoices", flush=True)
    finally:
        await connection.close()
    return grown


_TIMED = re.compile(r"^\s*(\d+) µs  (.*?)(?:  \[(\d+) matches\])?$")


def timed(database: str, runs: int, only: str) -> dict[str, tuple[int, str]]:
    """bench/explain.py --time on `database`: label -> (µs per run, matches or "")."""
    output = subprocess.run([sys.executable, "-m", "bench.explain", "--time", str(runs), "--only", only],
                            cwd=ROOT, env={**os.environ, "BENCH_DATABASE": database}, check=True,
                            capture_output=True, text=True).stdout
    result: dict[str, tuple[int, str]] = {}
    for line in output.splitlines():
        found = _TIMED.match(line)
        if found:
            label, number = found[2], 2
            while label in result:  # a call that ran more than one statement
                label, number = f"{found[2]} ({number})", number + 1
            result[label] = (int(found[1]), found[3] or "")
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--database", default=os.environ.get("BENCH_DATABASE", "decabill_bench_api"))
    parser.add_argument("--factor", type=int, default=10, help="how many times the customers and their rows")
    parser.add_argument("--time", type=int, default=20, metavar="RUNS", help="runs per statement and round")
    parser.add_argument("--rounds", type=int, default=2, help="both databases timed in turn this many times")
    parser.add_argument("--only", default="", help="the statements whose label holds this text")
    parser.add_argument("--skip-grow", action="store_true", help="time the copy a previous run made")
    args = parser.parse_args()
    if args.factor < 2:
        parser.error("--factor must be 2 or more")
    grown = f"{args.database}_x{args.factor}" if args.skip_grow else asyncio.run(grow(args.database, args.factor))
    best: dict[str, dict[str, tuple[int, str]]] = {args.database: {}, grown: {}}
    for _ in range(args.rounds):
        for database in best:
            for label, (micros, matches) in timed(database, args.time, args.only).items():
                kept = best[database].get(label)
                best[database][label] = (min(micros, kept[0]) if kept else micros, matches)
    print(f"\n{'µs per run':>22}  {'×' + str(args.factor) + ' rows':>10}  {'ratio':>5}  {'matches':>15}  statement")
    for label, (small, small_matches) in best[args.database].items():
        large, large_matches = best[grown].get(label, (0, ""))
        matches = f"{small_matches} → {large_matches}" if small_matches else ""
        print(f"{small:>22,}  {large:>10,}  {large / small:5.1f}  {matches:>15}  {label}")


if __name__ == "__main__":
    main()
