"""The HTTP service: ``create_app()`` builds the ASGI app; ``petcut.api.server.run`` serves it."""

from petcut.api.app import create_app

__all__ = ["create_app"]
