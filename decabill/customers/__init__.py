"""Customer billing profiles (the caller's own; admin management comes with the admin billing area)."""
