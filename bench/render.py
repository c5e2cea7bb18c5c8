"""Micro benchmark: invoice PDF renders per second on one core (Factur-X EN 16931, PDF/A-3).

    .venv/bin/python -m bench.render [--count 200] [--lines 10]

Renders one typical billing-day invoice (`--lines` lines) `--count` times in this process after one warm-up
render, and prints renders/s with the load average (the machine is shared: read the figure with it).
"""

from __future__ import annotations

import argparse
import os
import time
from datetime import date
from decimal import Decimal

from decabill.documents import InvoiceDocument, Issuer, Party, breakdown, make_line, render_invoice_pdf, totals

ISSUER = Issuer(name="Decabill Hosting GmbH", address_line1="Hauptstraße 1", postal_code="10115", city="Berlin",
                country="DE", vat_id="DE123456789", email="billing@decabill.example", bank="Example Bank AG",
                iban="DE89 3704 0044 0532 0130 00", bic="COBADEFFXXX")
CUSTOMER = Party(name="Müller & Söhne Webdesign KG", address_line1="Königsallee 27", postal_code="40212",
                 city="Düsseldorf", country="DE", email="buchhaltung@mueller.example")


def sample_invoice(line_count: int) -> InvoiceDocument:
    lines = [make_line(f"Cloud server S, 2026-11-01 – 2026-12-01 #{i}", Decimal(1), Decimal("12.34"),
                       Decimal(19)) for i in range(line_count)]
    subtotal, tax_total, total = totals(lines)
    return InvoiceDocument(
        number="INV-2026-00042", issue_date=date(2026, 12, 1), due_date=date(2026, 12, 15), currency="EUR",
        issuer=ISSUER, customer=CUSTOMER, lines=lines, tax_breakdown=breakdown(lines), subtotal=subtotal,
        tax_total=tax_total, total=total, amount_paid=Decimal("0.00"), amount_due=total,
        payment_note="Please quote the invoice number INV-2026-00042 with your payment.",
        service_period_start=date(2026, 11, 1), service_period_end=date(2026, 12, 1), order_reference="SUB-1")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=200)
    parser.add_argument("--lines", type=int, default=10)
    args = parser.parse_args()
    document = sample_invoice(args.lines)
    first = render_invoice_pdf(document)
    cpu, wall = time.process_time(), time.perf_counter()
    for _ in range(args.count):
        content = render_invoice_pdf(document)
    cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
    print(f"renders: {args.count}  lines: {args.lines}  size: {len(content)} B  "
          f"identical to the first: {content == first}")
    print(f"renders/s (CPU time, one core): {args.count / cpu:.1f}  (wall: {args.count / wall:.1f})  "
          f"load average: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")


if __name__ == "__main__":
    main()
