"""The outer shell: the ASGI application, its start-up and shutdown, and the HTTP server."""
