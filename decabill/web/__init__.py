"""HTTP plumbing around Connexion: middleware, security handler, validation fixes, error mapping."""
