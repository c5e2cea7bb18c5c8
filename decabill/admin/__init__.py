"""Admin billing (behavior.md part B §2.6, §7; decisions D11, D12, D17): the 22 operations under
/admin/billing. Built on the invoicing area's services — drafts, lines and totals, issuing, numbering,
voiding, documents, the state machine and the audit trail are theirs; these modules add the admin rules.

| module              | what                                                                            |
|---------------------|---------------------------------------------------------------------------------|
| `service`           | the public face: every operation below, named in one place for the handlers     |
| `invoices`          | lists (all, open/overdue), one invoice, its PDFs, its audit trail; shared lookups |
| `manual`            | manual invoices: create, update and delete drafts, issue                        |
| `payment_status`    | mark paid, mark unpaid, void — through the invoice state machine                |
| `statistics`        | key figures, turnover per day/month and per plan (SQL aggregates)               |
| `customer_profiles` | the tenant's customer profiles: browse, create, read, change, delete            |
| `bill_now`          | bill-now: queue the billing day's per-user unit for one or every user now       |
| `tasks`             | the bill-now coordinator and unit on the job layer                              |
"""
