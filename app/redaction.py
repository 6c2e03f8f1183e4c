"""Redaction of secrets and e-mail addresses in loguru records."""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from loguru import Record

from app.correlation import add_correlation_ids

__all__ = ["REDACTED", "is_sensitive_key", "mask_emails", "redact_record"]

REDACTED = "[REDACTED]"

# Extra keys whose values are credentials: authorization, cookie, set_cookie,
# auth_token, password, client_secret, api_key, X-Api-Key and the like.
_SENSITIVE_KEY = re.compile(
    r"authori[sz]ation|cookie|token|passw(?:or)?d|secret|api[_-]?key", re.IGNORECASE
)
# An e-mail address, also with its "@" percent-encoded as in a URL path. The
# local part is bounded at 254 characters so that a long run of letters without
# a domain cannot make the search backtrack for long.
_EMAIL = re.compile(
    r"(?P<first>[A-Za-z0-9_+-])[A-Za-z0-9._%+-]{0,253}"
    r"(?P<at>@|%40)"
    r"(?P<domain>[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)+)",
    re.IGNORECASE,
)
# Containers nested deeper than this in a record's extra are replaced whole.
_MAX_DEPTH = 8


def redact_record(record: Record) -> None:
    """Mask e-mail addresses and credentials in a loguru record, in place.

    A loguru patcher: e-mail addresses in the message and in every string of
    ``extra`` become ``j***@example.com``, and the value of every ``extra`` key
    named like a credential becomes ``[REDACTED]``. Loguru runs patchers only
    for records that some sink's level accepts, so disabled levels cost nothing.

    It also adds the request id, and the trace and span ids of the current span,
    to ``extra`` (see :func:`~app.correlation.add_correlation_ids`), so that
    every line of a request carries them.

    NOTE: the text of a logged exception and its traceback is not rewritten.
    """
    record["message"] = mask_emails(record["message"])
    extra = record["extra"]
    add_correlation_ids(extra)
    for key, value in extra.items():
        extra[key] = REDACTED if is_sensitive_key(key) else _redact(value, 0)


def mask_emails(text: str) -> str:
    """Replace each e-mail address in ``text`` with its first character and domain."""
    if "@" not in text and "%40" not in text:
        return text
    return _EMAIL.sub(r"\g<first>***\g<at>\g<domain>", text)


def is_sensitive_key(key: object) -> bool:
    """Tell whether a field or header name is one that carries a credential."""
    return isinstance(key, str) and _SENSITIVE_KEY.search(key) is not None


def _redact(value: Any, depth: int) -> Any:
    if isinstance(value, str):
        return mask_emails(value)
    if not isinstance(value, dict | list | tuple | set | frozenset):
        return value
    if depth >= _MAX_DEPTH:
        return REDACTED
    if isinstance(value, dict):
        redacted = {}
        for key, item in value.items():
            name = mask_emails(key) if isinstance(key, str) else key
            sensitive = is_sensitive_key(key)
            redacted[name] = REDACTED if sensitive else _redact(item, depth + 1)
        return redacted
    return [_redact(item, depth + 1) for item in value]
