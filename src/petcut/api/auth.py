"""Optional API keys for server-to-server clients (docs/security.md).

A key travels in ``X-API-Key`` (preferred) or ``Authorization: Bearer <key>``. Settings hold only
hashes (``PETCUT_API_KEY_HASHES``: ``sha256:<hex>``, comma separated); a presented key is hashed and
compared with every configured hash with :func:`hmac.compare_digest`, without stopping at a match, so
the time taken says nothing about which key (or how much of one) matched. Keys are random and long
(:func:`new_key`: 256 bits), so one unsalted SHA-256 is enough; they are not passwords.

Helper (cli.py belongs to the CLI)::

    python -m petcut.api.auth new          # a fresh key and its hash
    python -m petcut.api.auth hash KEY     # the hash of KEY ("-" reads it from stdin)

This module decides (and defines the 401, :class:`Unauthorized`); :mod:`petcut.api.ratelimit`'s middleware
answers it and applies the limits. Whether a request comes from a browser page of an allowed origin is
:class:`petcut.api.cors.CorsPolicy`'s answer.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import sys
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from starlette.datastructures import Headers

from petcut.errors import PetcutError

KEY_HEADER = "x-api-key"
HASH_PREFIX = "sha256:"
#: longer values are refused without hashing them
MAX_KEY_BYTES = 512
REALM = 'Bearer realm="petcut"'


def hash_key(key: str | bytes) -> str:
    """``sha256:<hex>`` of a key, the form ``PETCUT_API_KEY_HASHES`` holds."""
    raw = key.encode("utf-8") if isinstance(key, str) else key
    return HASH_PREFIX + hashlib.sha256(raw).hexdigest()


def new_key() -> str:
    """A random key: 256 bits, URL-safe, no dots (so it never looks like a JWT)."""
    return "pc_" + secrets.token_urlsafe(32)


def presented_key(headers: Headers) -> bytes | None:
    """The key the request carries: ``X-API-Key``, else ``Authorization: Bearer``. A bearer token that
    looks like a JWT (two dots) is a platform identity token (e.g. Cloud Run IAM), not ours: ignored."""
    value = (headers.get(KEY_HEADER) or "").strip()
    if value:
        return value.encode("latin-1")
    authorization = headers.get("authorization")
    if authorization:
        scheme, _, token = authorization.strip().partition(" ")
        token = token.strip()
        if scheme.lower() == "bearer" and token and token.count(".") != 2:
            return token.encode("latin-1")
    return None


class ApiKeys:
    """The configured key hashes."""

    def __init__(self, hashes: Iterable[str]) -> None:
        self._digests = [bytes.fromhex(h.removeprefix(HASH_PREFIX)) for h in hashes]

    @property
    def enabled(self) -> bool:
        return bool(self._digests)

    def __len__(self) -> int:
        return len(self._digests)

    def verify(self, key: bytes) -> str | None:
        """The key's id (the first 12 hex digits of its hash, safe to log) when it is valid, else None."""
        if not key or len(key) > MAX_KEY_BYTES:
            return None
        digest = hashlib.sha256(key).digest()
        match: bytes | None = None
        for candidate in self._digests:  # every hash, always: no early exit
            if hmac.compare_digest(digest, candidate):
                match = candidate
        return match.hex()[:12] if match is not None else None


class Unauthorized(PetcutError):
    """No API key where one is needed, or a key that is not valid (with its ``WWW-Authenticate`` challenge)."""

    status = 401
    code = "unauthorized"
    default_message = "This route needs an API key."
    description = "This route needs an API key (PETCUT_REQUIRE_API_KEY), or the key sent is not valid."
    response_headers = ("WWW-Authenticate",)

    def __init__(self, message: str | None = None, challenge: str = REALM) -> None:
        super().__init__(message, headers={"WWW-Authenticate": challenge})


@dataclass(frozen=True)
class AuthOutcome:
    """``key_id`` for a valid key; ``error`` when the answer must be 401."""

    key_id: str | None = None
    error: Unauthorized | None = None


ANONYMOUS = AuthOutcome()


def authenticate(headers: Headers, keys: ApiKeys, *, required: bool, browser: bool) -> AuthOutcome:
    """Decide for one request to a guarded route.

    * a valid key → its id (the caller applies the key's limit instead of the client IP's);
    * a key that is not valid → 401, whether or not keys are required (a misconfigured client should
      hear about it rather than be served anonymously);
    * no key → 401 when ``required`` and the request is not from a browser page of an allowed (or the
      same) origin (``browser``), else anonymous.
    """
    presented = presented_key(headers) if keys.enabled or required else None
    if presented is not None:
        key_id = keys.verify(presented)
        if key_id is not None:
            return AuthOutcome(key_id=key_id)
        return AuthOutcome(error=Unauthorized("The API key is not valid.", f'{REALM}, error="invalid_token"'))
    if required and not browser:
        return AuthOutcome(
            error=Unauthorized(
                "This route needs an API key: send it in the X-API-Key header (or Authorization: Bearer).", REALM
            )
        )
    return ANONYMOUS


# --- python -m petcut.api.auth -------------------------------------------------------------------
USAGE = """usage: python -m petcut.api.auth new | hash KEY | hash -

  new        print a fresh random key and the sha256:<hex> hash to put in PETCUT_API_KEY_HASHES
  hash KEY   print the hash of KEY ("-" reads the key from standard input: keeps it out of ps and history)
"""


def main(argv: Sequence[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    if args == ["new"]:
        key = new_key()
        print(f"key:  {key}")
        print(f"hash: {hash_key(key)}")
        return 0
    if len(args) == 2 and args[0] == "hash":
        key = sys.stdin.readline().strip() if args[1] == "-" else args[1]
        if not key:
            print("the key is empty", file=sys.stderr)
            return 2
        print(hash_key(key))
        return 0
    print(USAGE, file=sys.stderr, end="")
    return 2


if __name__ == "__main__":
    raise SystemExit(main())
