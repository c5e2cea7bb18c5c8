"""EU VAT: the rates table, the tax rule of an invoice and VAT ID checks with VIES (see service.py)."""
