"""Invoicing (behavior.md part B §1–§4, §9–§10; decisions D7–D10, D14, D16).

| module        | what                                                                                   |
|---------------|----------------------------------------------------------------------------------------|
| `service`     | the customer invoice operations of the API (summary, lists, details, PDFs, create, void) |
| `billing`     | the billing day (`bill_user`: one invoice of everything unbilled; `users_due`), createInvoice |
| `invoices`    | drafts, lines and totals, issuing (gapless numbers), voiding — shared by every path      |
| `states`      | the invoice state machine (the one place statuses change) and the append-only audit log |
| `documents`   | invoice / credit-note PDFs (Factur-X EN 16931) from the invoice row, and their storage  |
| `mail`        | billing mails, each sent once per event (`MailDelivery` outbox)                         |
| `rendering`   | the billing day's PDFs and mails after issuing: batches of tasks, claimed and rendered    |
| `render_pool` | the processes the billing day's PDFs are rendered in                                    |
| `overdue`     | issued/partially paid past their due date → overdue                                      |
| `reminders`   | renewal reminders                                                                       |
| `tasks`       | the coordinators and units of the job layer                                             |
| `repository`  | every query on invoices, lines, the audit trail and the mail outbox                     |
"""
