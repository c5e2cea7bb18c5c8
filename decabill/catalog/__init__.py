"""The product catalog: service types, plans, public offerings, availability and pricing."""
