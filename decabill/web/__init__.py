"""The HTTP face: the app factory (`app.create_app`), middleware, security handler, validation fixes, error
mapping and the API docs, around Connexion. Handlers (`handlers/`) are the routes it serves."""
