"""The one answer to "which browser pages may call petcut" (docs/security.md).

:class:`CorsPolicy` is built once per app from ``PETCUT_CORS_ORIGINS`` and ``PETCUT_CORS_ORIGIN_REGEX`` and
shared by the edge middleware (CORS headers, preflights) and the abuse guard (a page of an allowed origin,
or of petcut itself, needs no API key).
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from urllib.parse import urlsplit

# scheme://host[:port] and nothing else: a DNS name (letters, digits, hyphens, dots), IPv4 or [IPv6]
_ORIGIN = re.compile(
    r"(?P<scheme>https?)://"
    r"(?P<host>(?:[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?\.)*[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?|\[[0-9a-f:.]+\])"
    r"(?::(?P<port>[0-9]{1,5}))?",
    re.IGNORECASE,
)


def well_formed_origin(origin: str) -> bool:
    """True for ``scheme://host[:port]`` only: no path, query, fragment, user info, spaces or control
    characters (an Origin header never has them; a regex must not be fooled by them)."""
    match = _ORIGIN.fullmatch(origin)
    if match is None or len(origin) > 300:
        return False
    port = match.group("port")
    return port is None or 0 < int(port) <= 65535


def same_origin(origin: str, host: str | None) -> bool:
    """``Origin`` names the host the request was sent to (a page served by petcut itself, e.g. /ui/)."""
    if not host:
        return False
    try:
        netloc = urlsplit(origin).netloc
    except ValueError:
        return False
    return bool(netloc) and netloc.lower() == host.strip().lower()


class CorsPolicy:
    """Allowed origins: an exact list (``*`` allows any) plus a regular expression (full match)."""

    def __init__(self, origins: Iterable[str], regex: str | None) -> None:
        origins = [o.strip().rstrip("/") for o in origins if o.strip()]
        self.allow_any = "*" in origins
        self.origins = frozenset(o for o in origins if o != "*")
        self.regex = re.compile(regex) if regex else None

    def allows(self, origin: str | None) -> bool:
        """Whether responses to ``origin`` carry CORS headers (and its preflights are answered)."""
        if not origin or not well_formed_origin(origin):
            return False
        return (
            self.allow_any
            or origin in self.origins
            or (self.regex is not None and self.regex.fullmatch(origin) is not None)
        )

    def is_browser_page(self, origin: str | None, host: str | None) -> bool:
        """A page of an allowed origin, or of petcut itself (``Origin`` names ``Host``). Non-browser clients
        can send any Origin: this spares the shop's front-end an API key, it does not authenticate."""
        return bool(origin) and (self.allows(origin) or same_origin(origin or "", host))
