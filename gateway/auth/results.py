"""Authentication-Results (RFC 8601): the header Veil adds, and removal of forged ones."""

from __future__ import annotations

import re
from typing import Sequence

from gateway.auth.dkim import DkimResult
from gateway.inbound import header_fields, split_head


def _safe(value: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]", "", value)[:253]


def authentication_results(authserv_id: str, dkim: Sequence[DkimResult]) -> str:
    """The full header line, e.g. 'Authentication-Results: veil; dkim=pass header.d=x header.s=y'."""
    if not dkim:
        return f"Authentication-Results: {authserv_id}; dkim=none"
    parts = []
    for result in dkim:
        text = f"dkim={result.result}"
        if result.reason and result.result != "pass":
            reason = result.reason.replace('"', "'").replace("\\", "/")[:120]
            text += f' reason="{reason}"'
        if result.domain:
            text += f" header.d={_safe(result.domain)}"
        if result.selector:
            text += f" header.s={_safe(result.selector)}"
        parts.append(text)
    return f"Authentication-Results: {authserv_id};\r\n\t" + ";\r\n\t".join(parts)


def strip_forged_results(message: bytes, authserv_id: str) -> bytes:
    """Drop incoming Authentication-Results that claim our authserv-id (RFC 8601 section 5)."""
    head, body = split_head(message)
    fields = header_fields(head)
    claim = re.compile(rb"^authentication-results:\s*" + re.escape(authserv_id.encode()) +
                       rb"\s*(;|$)", re.IGNORECASE)
    kept = [field for field in fields if not claim.match(field)]
    return b"".join(kept) + body if len(kept) != len(fields) else message
