"""Line ends: SMTP's is CRLF, and mail arrives with bare LF or CR more often than it should.

Nearly every message is all CRLF and passes through uncopied. The checks run four times on
every outbound message (smuggling check, rewrite, signing, next hop), so they are compiled
(gateway/_wire.c, one memchr walk); the definitions below run where it was not compiled.
"""

from __future__ import annotations


def only_crlf_in_python(data: bytes) -> bool:
    """True when every CR and every LF in `data` is part of a CRLF."""
    line_ends = data.count(b"\r\n")
    return data.count(b"\r") == line_ends and data.count(b"\n") == line_ends


def lf_after_cr_in_python(data: bytes) -> bool:
    """True when every LF in `data` comes after a CR."""
    return data.count(b"\n") == data.count(b"\r\n")


try:
    from gateway._wire import lf_after_cr, only_crlf
except ImportError:  # no C compiler at install time
    only_crlf, lf_after_cr = only_crlf_in_python, lf_after_cr_in_python


def crlf(message: bytes) -> bytes:
    """Every LF not after a CR becomes CRLF (a lone CR is left alone); already-CRLF input is
    returned as it is, not copied."""
    if lf_after_cr(message):
        return message
    return message.replace(b"\r\n", b"\n").replace(b"\n", b"\r\n")
