"""Decabill: a self-hostable billing manager for hosting products."""
