"""Identifiers, tiers and object keys: everything that becomes part of a storage path is checked here.

A key is ``<tier>/<session_id>/<image_type>-<UTC timestamp>-<random token>.<ext>``, e.g.
``temporary/sess-42/original-20260719T101530123456Z-9f86d081884c7d65.png``. Identifiers match
``[A-Za-z0-9][A-Za-z0-9_-]{0,63}`` (ASCII only), so no key can hold ``..``, a slash, a backslash, NUL
or a look-alike Unicode character; free text (``pet_name``, ``effect_applied``) only ever goes into
metadata.
"""

from __future__ import annotations

import contextlib
import re
import secrets
import unicodedata
from datetime import UTC, datetime, timedelta
from enum import StrEnum

from petcut.storage.errors import InvalidIdentifier, InvalidParameter


class Tier(StrEnum):
    TEMPORARY = "temporary"
    ORDER_PENDING = "order_pending"
    ORDER_COMPLETED = "order_completed"
    ARCHIVED = "archived"


#: How long an image stays in its tier, counted from when it entered it; ``None``: kept indefinitely.
RETENTION: dict[Tier, timedelta | None] = {
    Tier.TEMPORARY: timedelta(hours=24),
    Tier.ORDER_PENDING: timedelta(days=30),
    Tier.ORDER_COMPLETED: timedelta(days=365),
    Tier.ARCHIVED: None,
}
#: Tiers that ``complete_order`` moves to ``order_completed``.
OPEN_TIERS = (Tier.TEMPORARY, Tier.ORDER_PENDING)

ID_PATTERN = r"[A-Za-z0-9][A-Za-z0-9_-]{0,63}"
_ID = re.compile(ID_PATTERN)
_TIMESTAMP_FORMAT = "%Y%m%dT%H%M%S%fZ"
_TOKEN_HEX = 16
EXTENSIONS = ("png", "jpg", "webp", "gif", "heic", "heif", "avif", "tiff")
_KEY = re.compile(
    rf"(?P<tier>{'|'.join(t.value for t in Tier)})/(?P<session_id>{ID_PATTERN})/"
    rf"(?P<image_type>{ID_PATTERN})-(?P<ts>[0-9]{{8}}T[0-9]{{12}}Z)-(?P<token>[0-9a-f]{{{_TOKEN_HEX}}})"
    rf"\.(?P<ext>{'|'.join(EXTENSIONS)})"
)
#: Longest free-text metadata values (characters).
TEXT_LIMITS = {"pet_name": 100, "effect_applied": 200}


def validate_id(field: str, value: object) -> str:
    """``value`` if it is a safe identifier, else :class:`InvalidIdentifier` naming ``field``."""
    if not isinstance(value, str) or not value:
        raise InvalidIdentifier(field, "is required")
    if len(value) > 64:
        raise InvalidIdentifier(field, "is longer than 64 characters")
    if not _ID.fullmatch(value):
        raise InvalidIdentifier(
            field, "may hold only ASCII letters, digits, '-' and '_', and must start with a letter or digit"
        )
    return value


def validate_optional_id(field: str, value: str | None) -> str | None:
    return None if value is None or value == "" else validate_id(field, value)


def validate_tier(value: object) -> Tier:
    if isinstance(value, str):
        with contextlib.suppress(ValueError):
            return Tier(value)
    raise InvalidParameter("tier", f"must be one of: {', '.join(t.value for t in Tier)}")


def validate_text(field: str, value: str | None) -> str | None:
    """Free text for metadata: normalised (NFC), trimmed, length-limited, no control characters."""
    if value is None:
        return None
    value = unicodedata.normalize("NFC", value).strip()
    if not value:
        return None
    limit = TEXT_LIMITS[field]
    if len(value) > limit:
        raise InvalidParameter(field, f"is longer than {limit} characters")
    if any(unicodedata.category(ch) in ("Cc", "Cf", "Cs", "Co", "Cn") for ch in value):
        raise InvalidParameter(field, "contains control or invisible characters")
    return value


def new_token() -> str:
    return secrets.token_hex(_TOKEN_HEX // 2)


def format_timestamp(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime(_TIMESTAMP_FORMAT)


def build_key(tier: Tier, session_id: str, image_type: str, moment: datetime, token: str, ext: str) -> str:
    key = f"{tier.value}/{session_id}/{image_type}-{format_timestamp(moment)}-{token}.{ext}"
    if not _KEY.fullmatch(key):  # the parts were validated; this guards the format itself
        raise ValueError(f"not a valid key: {key!r}")
    return key


class KeyParts:
    """The parts of a valid key (see :func:`parse_key`)."""

    __slots__ = ("created_at", "ext", "filename", "image_type", "key", "session_id", "tier")

    def __init__(self, key: str, match: re.Match[str]) -> None:
        self.key = key
        self.tier = Tier(match["tier"])
        self.session_id = match["session_id"]
        self.image_type = match["image_type"]
        self.created_at = datetime.strptime(match["ts"], _TIMESTAMP_FORMAT).replace(tzinfo=UTC)
        self.ext = match["ext"]
        self.filename = key.rsplit("/", 1)[1]


def parse_key(key: object) -> KeyParts | None:
    """The parts of ``key`` if it is exactly a key this package produces, else ``None``."""
    if not isinstance(key, str) or len(key) > 256:
        return None
    match = _KEY.fullmatch(key)
    if match is None:
        return None
    try:
        return KeyParts(key, match)
    except ValueError:  # e.g. month 13
        return None


def rekey(parts: KeyParts, tier: Tier) -> str:
    """The same file name under another tier."""
    return f"{tier.value}/{parts.session_id}/{parts.filename}"
