"""Veil's SMTP protocol engine: aiosmtpd's, with the limits a relay exposed to clients needs."""

from __future__ import annotations

import asyncio
import re
from dataclasses import dataclass

from aiosmtpd.smtp import SMTP

TOO_MANY_CONNECTIONS = b"421 4.7.0 too many connections, try again later\r\n"
# A line holding only "." that is delimited by a bare CR or a bare LF on either side: the
# ambiguity SMTP smuggling uses to end one message early and start another (CVE-2023-51766).
# aiosmtpd has already removed the transparency dot at a line start, so "\r\n.\n" arrives as
# "\r\n\n": a line break followed by a bare one is refused as well.
_SMUGGLED_END = re.compile(rb"(?:(?<!\r)\n|\r(?!\n))\.(?:\r\n|\n|\r)"
                           rb"|\r\n\.(?:(?<!\r)\n|\r(?!\n))|\r\n(?:\n|\r(?!\n))")


def smuggling_attempt(data: bytes) -> bool:
    """True when the message holds an end-of-data marker another server could honour."""
    # Every such marker needs a bare CR or a bare LF: when all of them pair up as CRLF (nearly
    # every message), three C-speed counts answer without the regex visiting each line end.
    line_ends = data.count(b"\r\n")
    if data.count(b"\r") == line_ends and data.count(b"\n") == line_ends:
        return False
    return _SMUGGLED_END.search(data) is not None


@dataclass
class ConnectionCount:
    """Open connections of one listener, shared by its protocol instances."""

    limit: int
    open: int = 0


class VeilSMTP(SMTP):
    """aiosmtpd's SMTP server with a cap on concurrent connections."""

    def __init__(self, *args: object, connections: ConnectionCount | None = None,
                 **kwargs: object) -> None:
        super().__init__(*args, **kwargs)  # type: ignore[arg-type]
        self._connections = connections
        self._counted = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        super().connection_made(transport)
        if self._connections is None:
            return
        if self._connections.open >= self._connections.limit:
            assert isinstance(transport, asyncio.WriteTransport)
            transport.write(TOO_MANY_CONNECTIONS)
            transport.close()
            return
        self._connections.open += 1
        self._counted = True

    def connection_lost(self, error: Exception | None) -> None:
        if self._counted and self._connections is not None:
            self._connections.open -= 1
            self._counted = False
        super().connection_lost(error)
