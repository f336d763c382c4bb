"""Delivery status notifications (RFC 3464) for recipients the next hop refused permanently.

SMTP gives one DATA reply for all recipients. When the next hop accepts some recipients and
refuses others for good, Veil answers 250 for the transaction and tells the sender about the
refused ones with a bounce, as any MTA does, so no recipient is dropped silently.
"""

from __future__ import annotations

import time
import uuid
from email.utils import formatdate

from gateway.inbound import split_head


def failure_notice(sender: str, refused: dict[str, tuple[int, str]], original: bytes,
                   reporting_host: str) -> bytes:
    """A multipart/report bounce to `sender` listing `refused` with the original headers."""
    boundary = f"=_veil_dsn_{uuid.uuid4().hex}"
    head, _ = split_head(original)
    lines = [f"{rcpt}: {code} {text}" for rcpt, (code, text) in refused.items()]
    status_blocks = "".join(
        f"\r\nFinal-Recipient: rfc822; {rcpt}\r\nAction: failed\r\n"
        f"Status: {_status(code, text)}\r\nDiagnostic-Code: smtp; {code} {_flat(text)}\r\n"
        for rcpt, (code, text) in refused.items())
    text = (
        f"From: Mail Delivery System <MAILER-DAEMON@{reporting_host}>\r\n"
        f"To: <{sender}>\r\n"
        f"Subject: Undelivered Mail Returned to Sender\r\n"
        f"Date: {formatdate(time.time())}\r\n"
        f"Message-ID: <{uuid.uuid4().hex}@{reporting_host}>\r\n"
        f"Auto-Submitted: auto-replied\r\n"
        f"MIME-Version: 1.0\r\n"
        f'Content-Type: multipart/report; report-type=delivery-status; boundary="{boundary}"\r\n'
        f"\r\n--{boundary}\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n"
        f"Your message could not be delivered to these recipients:\r\n\r\n"
        + "\r\n".join(_flat(line) for line in lines) +
        f"\r\n\r\n--{boundary}\r\nContent-Type: message/delivery-status\r\n\r\n"
        f"Reporting-MTA: dns; {reporting_host}\r\n{status_blocks}"
        f"\r\n--{boundary}\r\nContent-Type: text/rfc822-headers\r\n\r\n"
    ).encode("utf-8")
    return text + head.replace(b"\r\n", b"\n").replace(b"\n", b"\r\n") + \
        f"\r\n--{boundary}--\r\n".encode()


def _flat(text: str) -> str:
    return " ".join(text.split())


def _status(code: int, text: str) -> str:
    first = text.split(" ", 1)[0]
    if first.count(".") == 2 and first[0] == "5":
        return first
    return "5.0.0" if code >= 500 else "4.0.0"
