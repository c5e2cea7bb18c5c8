"""Identity: who is calling (principal), users and their credentials."""
