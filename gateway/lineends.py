"""Line ends: SMTP's is CRLF, and mail arrives with bare LF or CR more often than it should.

Counting is C-speed; nearly every message is all CRLF and passes through uncopied.
"""

from __future__ import annotations


def only_crlf(data: bytes) -> bool:
    """True when every CR and every LF in `data` is part of a CRLF."""
    line_ends = data.count(b"\r\n")
    return data.count(b"\r") == line_ends and data.count(b"\n") == line_ends


def crlf(message: bytes) -> bytes:
    """Every LF not after a CR becomes CRLF (a lone CR is left alone); already-CRLF input is
    returned as it is, not copied."""
    if message.count(b"\n") == message.count(b"\r\n"):
        return message
    return message.replace(b"\r\n", b"\n").replace(b"\n", b"\r\n")
