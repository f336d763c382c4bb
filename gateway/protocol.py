"""Veil's SMTP protocol engine: aiosmtpd's, with the limits a relay exposed to clients needs."""

from __future__ import annotations

import asyncio
import re
from dataclasses import dataclass
from email._header_value_parser import get_addr_spec, get_angle_addr
from email.errors import HeaderParseError

from aiosmtpd.smtp import MISSING, SMTP, _DataState, syntax

from gateway.lineends import only_crlf

# VeilSMTP replaces aiosmtpd's DATA reader (see smtp_DATA) with one that calls these aiosmtpd
# methods; an upgrade that moves them must fail at start-up, not in the middle of a transaction.
for _method in ("_set_post_data_state", "_call_handler_hook", "check_helo_needed",
                "check_auth_needed", "push", "_getaddr"):
    if not callable(getattr(SMTP, _method, None)):
        raise ImportError(f"aiosmtpd no longer has SMTP.{_method}; update gateway/protocol.py")

TOO_MANY_CONNECTIONS = b"421 4.7.0 too many connections, try again later\r\n"
# A line holding only "." that is delimited by a bare CR or a bare LF on either side: the
# ambiguity SMTP smuggling uses to end one message early and start another (CVE-2023-51766).
# aiosmtpd has already removed the transparency dot at a line start, so "\r\n.\n" arrives as
# "\r\n\n": a line break followed by a bare one is refused as well.
_SMUGGLED_END = re.compile(rb"(?:(?<!\r)\n|\r(?!\n))\.(?:\r\n|\n|\r)"
                           rb"|\r\n\.(?:(?<!\r)\n|\r(?!\n))|\r\n(?:\n|\r(?!\n))")


def smuggling_attempt(data: bytes) -> bool:
    """True when the message holds an end-of-data marker another server could honour."""
    # Every such marker needs a bare CR or a bare LF: with none (nearly every message), the
    # regex need not visit each line end.
    return not only_crlf(data) and _SMUGGLED_END.search(data) is not None


# <local@domain> with dot-atom local part and domain in ASCII: what nearly every MAIL FROM and
# RCPT TO holds, and what email's parser gives back unchanged as the address.
_ATEXT = r"[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+"
_SIMPLE_ANGLE_ADDR = re.compile(rf"<({_ATEXT}(?:\.{_ATEXT})*@{_ATEXT}(?:\.{_ATEXT})*)>")


def address_and_rest(arg: str, local_part_limit: int = 0) -> tuple[str | None, str | None]:
    """aiosmtpd's SMTP._getaddr: the address of a MAIL FROM or RCPT TO argument and the text
    after it (None, None when it does not parse). aiosmtpd's defines a typing.Protocol class on
    every call, two thirds of its cost; a plain <local@domain> is read without email's parser,
    and tests hold the two to the same answers."""
    if not arg:
        return "", ""
    simple = _SIMPLE_ANGLE_ADDR.match(arg)
    if simple is not None:
        rest = arg[simple.end():]
        if rest[:1] in (" ", "\t"):
            rest = rest.lstrip()  # as email's get_fws does
        if not rest.startswith("("):  # a comment: email's parser reads it
            addr = simple.group(1)
            if local_part_limit and len(addr.rpartition("@")[0]) > local_part_limit:
                return None, None
            return addr, rest
    try:
        if arg.lstrip().startswith("<"):
            address, rest = get_angle_addr(arg)
        else:
            address, rest = get_addr_spec(arg)
    except HeaderParseError:
        return None, None
    addr = address.addr_spec
    if local_part_limit and len(addr.rpartition("@")[0]) > local_part_limit:
        return None, None
    return addr, rest


@dataclass
class ConnectionCount:
    """Open connections of one listener, shared by its protocol instances."""

    limit: int
    open: int = 0


class VeilSMTP(SMTP):
    """aiosmtpd's SMTP server with a cap on concurrent connections."""

    def __init__(self, *args: object, connections: ConnectionCount | None = None,
                 **kwargs: object) -> None:
        if kwargs.get("decode_data"):
            raise ValueError("VeilSMTP hands messages on as bytes only")
        super().__init__(*args, **kwargs)  # type: ignore[arg-type]
        self._connections = connections
        self._counted = False

    def _getaddr(self, arg: str) -> tuple[str | None, str | None]:
        return address_and_rest(arg, self.local_part_limit)

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

    @syntax("DATA")
    async def smtp_DATA(self, arg: str) -> None:
        """aiosmtpd's DATA with the message gathered in one buffer.

        aiosmtpd keeps each line as its own bytearray and joins them at the end, close to 4x a
        large message at the peak; one growing buffer, dot-unstuffed line by line, then one
        bytes copy is about 2x. Replies, limits and their order are aiosmtpd's."""
        if await self.check_helo_needed() or await self.check_auth_needed("DATA"):
            return
        assert self.envelope is not None
        if not self.envelope.rcpt_tos:
            await self.push("503 Error: need RCPT command")
            return
        if arg:
            await self.push("501 Syntax: DATA")
            return
        await self.push("354 End data with <CR><LF>.<CR><LF>")
        buffer = bytearray()
        received = 0
        in_line = False  # a line longer than the stream limit arrives in pieces
        state = _DataState.NOMINAL
        while self.transport is not None:
            try:
                line = await self._reader.readuntil(b"\r\n")
            except asyncio.CancelledError:
                self._writer.close()  # the connection went away during DATA
                raise
            except asyncio.LimitOverrunError as error:
                state = _DataState.TOO_LONG if state is _DataState.NOMINAL else state
                buffer = bytearray()  # refused anyway: let the memory go now
                line = await self._reader.read(error.consumed)
            if not in_line and line == b".\r\n":
                break
            received += len(line)
            if state is _DataState.NOMINAL and self.data_size_limit and \
                    received > self.data_size_limit:
                state = _DataState.TOO_MUCH
                buffer = bytearray()
            if state is _DataState.NOMINAL:
                if len(line) > self.line_length_limit:
                    state = _DataState.TOO_LONG
                    buffer = bytearray()
                elif line[:1] == b".":  # RFC 5321 4.5.2: the sender doubled a leading dot
                    buffer += memoryview(line)[1:]
                else:
                    buffer += line
            in_line = not line.endswith(b"\r\n")
        if state is not _DataState.NOMINAL:
            await self.push("500 Line too long (see RFC5321 4.5.3.1.6)"
                            if state is _DataState.TOO_LONG else "552 Error: Too much mail data")
            self._set_post_data_state()
            return
        content = bytes(buffer)
        del buffer
        self.envelope.content = self.envelope.original_content = content
        status = await self._call_handler_hook("DATA")
        self._set_post_data_state()
        await self.push("250 OK" if status is MISSING else status)
