"""The audit trail is append-only: entries are made in one place (the invoice state machine's `audit` /
`audit_unbound`) and no code path updates or deletes them."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_no_code_path_updates_or_deletes_audit_entries():
    sources = [p for p in (ROOT / "decabill").rglob("*.py") if "migrations" not in p.parts]
    sources += list((ROOT / "handlers").glob("*.py"))
    writers = []
    for path in sources:
        text = path.read_text()
        assert not re.search(r"\b(update|delete)\(\s*(InvoiceAuditLog\b|['\"]invoice_audit_logs)", text), path
        assert not re.search(r"invoice_audit_logs.*\b(UPDATE|DELETE)\b|\b(UPDATE|DELETE)\b.*invoice_audit_logs", text,
                             re.IGNORECASE), path
        if "InvoiceAuditLog(" in text:
            writers.append(path.relative_to(ROOT).as_posix())
    assert writers == ["decabill/invoicing/states.py"]
