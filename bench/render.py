"""Micro benchmark: invoice PDF renders per second on one core (Factur-X EN 16931, PDF/A-3).

    .venv/bin/python -m bench.render [--count 200] [--lines 10] [--distinct]

Renders one typical billing-day invoice (`--lines` lines) `--count` times in this process after one warm-up
render, and prints renders/s with the load average (the machine is shared: read the figure with it).
`--distinct` renders `--count` different invoices instead (number, customer name and address, line texts
and amounts differ; names from several EU alphabets), so that nothing memoised per text flatters the figure.
"""

from __future__ import annotations

import argparse
import os
import time
from dataclasses import replace
from datetime import date
from decimal import Decimal

from decabill.documents import InvoiceDocument, Issuer, Party, breakdown, make_line, render_invoice_pdf, totals

ISSUER = Issuer(name="Decabill Hosting GmbH", address_line1="Hauptstraße 1", postal_code="10115", city="Berlin",
                country="DE", vat_id="DE123456789", email="billing@decabill.example", bank="Example Bank AG",
                iban="DE89 3704 0044 0532 0130 00", bic="COBADEFF")
CUSTOMER = Party(name="Müller & Söhne Webdesign KG", address_line1="Königsallee 27", postal_code="40212",
                 city="Düsseldorf", country="DE", email="buchhaltung@mueller.example")


_NAMES = ("Müller & Söhne Webdesign KG", "Łukasz Wiśniewski Usługi IT", "Jiří Dvořák s.r.o.", "Ştefan Ionescu SRL",
          "Ærø Hosting ApS", "Café Élysée SARL", "Nuñez Peña S.L.", "Kovács és Társa Kft.", "O'Brien Cloud Ltd",
          "Zoë Jansen B.V.")
_CITIES = ("Düsseldorf", "Łódź", "Brno", "Iași", "Ærøskøbing", "Orléans", "A Coruña", "Győr", "Cork", "Utrecht")


def sample_invoice(line_count: int, variant: int = 0) -> InvoiceDocument:
    """The invoice of the benchmark; `variant` changes its number, customer, line texts and amounts."""
    customer = replace(CUSTOMER, name=_NAMES[variant % len(_NAMES)], city=_CITIES[variant % len(_CITIES)],
                       address_line1=f"Königsallee {variant % 97 + 1}") if variant else CUSTOMER
    lines = [make_line(f"Cloud server {'SMLX'[(i + variant) % 4]}, 2026-11-01 – 2026-12-01 #{i + variant}",
                       Decimal(1 + (i + variant) % 3), Decimal("12.34") + Decimal(variant % 50) / 100, Decimal(19))
             for i in range(line_count)]
    subtotal, tax_total, total = totals(lines)
    number = f"INV-2026-{42 + variant:05d}"
    return InvoiceDocument(
        number=number, issue_date=date(2026, 12, 1), due_date=date(2026, 12, 15), currency="EUR",
        issuer=ISSUER, customer=customer, lines=lines, tax_breakdown=breakdown(lines), subtotal=subtotal,
        tax_total=tax_total, total=total, amount_paid=Decimal("0.00"), amount_due=total,
        payment_note=f"Please quote the invoice number {number} with your payment.",
        service_period_start=date(2026, 11, 1), service_period_end=date(2026, 12, 1), order_reference="SUB-1")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=200)
    parser.add_argument("--lines", type=int, default=10)
    parser.add_argument("--distinct", action="store_true", help="a different invoice for every render")
    args = parser.parse_args()
    documents = [sample_invoice(args.lines, variant if args.distinct else 0) for variant in range(1, args.count + 1)]
    first = render_invoice_pdf(documents[0])
    cpu, wall = time.process_time(), time.perf_counter()
    for document in documents:
        content = render_invoice_pdf(document)
    cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
    again = render_invoice_pdf(documents[0])
    print(f"renders: {args.count}  lines: {args.lines}  distinct: {args.distinct}  size: {len(content)} B  "
          f"identical to the first: {again == first}")
    print(f"renders/s (CPU time, one core): {args.count / cpu:.1f}  (wall: {args.count / wall:.1f})  "
          f"load average: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")


if __name__ == "__main__":
    main()
