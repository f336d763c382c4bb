"""Veil's SMTP protocol engine: aiosmtpd's, with the limits a relay exposed to clients needs."""

from __future__ import annotations

import asyncio
import re
from collections.abc import Callable
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
        self.on_connection_lost: Callable[[], None] | None = None  # set by SharedAcceptor

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
        try:
            super().connection_lost(error)
        finally:
            if self.on_connection_lost is not None:
                self.on_connection_lost()

    @syntax("DATA")
    async def smtp_DATA(self, arg: str) -> None:
        """aiosmtpd's DATA with the message gathered in one buffer, read in pieces.

        aiosmtpd reads one line per call and keeps each as its own bytearray, joined at the
        end: close to 4x a large message at the peak, and most of the cost of receiving it.
        Veil reads up to each ".\r\n" (or a stream limit's worth) at a time into one buffer
        and undoes the dot-stuffing once: about 2x at the peak. Replies, limits, the end of
        data and their order are aiosmtpd's (see read_data)."""
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
        try:
            read = await read_data(self._reader, self.line_length_limit, self.data_size_limit,
                                   lambda: self.transport is not None)
        except asyncio.CancelledError:
            self._writer.close()  # the connection went away during DATA
            raise
        if read is None:
            return  # the connection closed before the end of data: nothing was accepted
        state, content = read
        if state is not _DataState.NOMINAL:
            await self.push("500 Line too long (see RFC5321 4.5.3.1.6)"
                            if state is _DataState.TOO_LONG else "552 Error: Too much mail data")
            self._set_post_data_state()
            return
        self.envelope.content = self.envelope.original_content = content
        status = await self._call_handler_hook("DATA")
        self._set_post_data_state()
        await self.push("250 OK" if status is MISSING else status)


def line_lengths_in_python(data: bytes) -> tuple[int, int, int, int]:
    """(length of the first, longest of those between, length of the last, count) of the
    lines of data.split(b"\\r\\n")."""
    lines = data.split(b"\r\n")
    return len(lines[0]), max(map(len, lines[1:-1]), default=0), len(lines[-1]), len(lines)


try:
    from gateway._wire import line_lengths  # one memchr walk, no list of lines
except ImportError:  # no C compiler at install time
    line_lengths = line_lengths_in_python


class _Lines:
    """aiosmtpd's DATA limits, applied to the stuffed lines as they arrive (RFC 5321 4.5.3.1).

    aiosmtpd reads line by line from a stream whose limit is the line length limit: a line
    longer than that overruns the stream and is refused before its size is counted; any other
    line is counted first, then checked against the size and the length limits. The first
    limit broken decides the reply."""

    def __init__(self, line_length_limit: int, data_size_limit: int) -> None:
        self.line_length_limit = line_length_limit
        self.data_size_limit = data_size_limit
        self.state = _DataState.NOMINAL
        self.received = 0
        self.partial = 0  # length of the line under way (no CRLF yet)
        self.carry = b""  # a CR at the end of a piece: the next may start with its LF

    def add(self, piece: bytes) -> None:
        if self.state is not _DataState.NOMINAL:
            return
        if self.carry:
            piece, self.carry = self.carry + piece, b""
        if piece.endswith(b"\r"):
            piece, self.carry = piece[:-1], b"\r"
        first, longest_between, last, count = line_lengths(piece)
        limit = self.line_length_limit
        if count == 1:
            if self.partial + last <= limit:
                self.partial += last
                return
        else:
            complete = self.partial + len(piece) - last  # bytes of the lines ended here
            # Nearly always: no line is long and the size stays within its limit.
            if self.partial + first + 2 <= limit and last <= limit and \
                    longest_between + 2 <= limit and \
                    not (self.data_size_limit and
                         self.received + complete > self.data_size_limit):
                self.received += complete
                self.partial = last
                return
        lines = piece.split(b"\r\n")
        for index, line in enumerate(lines):
            length = self.partial + len(line)
            if index == len(lines) - 1:  # no CRLF yet
                self.partial = length
                if length > limit:  # it will overrun the stream
                    self.state = _DataState.TOO_LONG
                return
            self.partial = 0
            if length > limit:  # it overran the stream: refused before being counted
                self.state = _DataState.TOO_LONG
                return
            self.received += length + 2
            if self.data_size_limit and self.received > self.data_size_limit:
                self.state = _DataState.TOO_MUCH
                return
            if length + 2 > limit:
                self.state = _DataState.TOO_LONG
                return


_COUNT_EVERY = 64 * 1024  # bytes read between two passes of the limits over what came in


async def read_data(reader: asyncio.StreamReader, line_length_limit: int, data_size_limit: int,
                    connected: Callable[[], bool] = lambda: True
                    ) -> tuple[_DataState, bytes] | None:
    """The message after DATA, up to the line that holds only ".", dot-stuffing undone, and
    whether a limit was broken; None when the connection closes first.

    The end of data is a ".\r\n" at the start of a line, and a read up to the first ".\r\n"
    always ends on one when there is one: the two bytes before it say whether it starts a
    line. The stream gives at most its limit's worth without a ".\r\n", and keeps the last
    two bytes of what it searched for the next read, so no ".\r\n" is split between reads.
    The limits are applied every _COUNT_EVERY bytes (so memory stays bounded when they are
    broken) and at the end."""
    buffer = bytearray()
    lines = _Lines(line_length_limit, data_size_limit)
    counted = 0  # buffer[:counted] has been through the limits
    dropped = 0  # bytes let go once a limit was broken (the reply is decided by then)
    while connected():
        try:
            piece = await reader.readuntil(b".\r\n")
        except asyncio.LimitOverrunError as error:
            buffer += await reader.read(error.consumed)
        else:
            dot = len(buffer) + len(piece) - 3
            buffer += piece
            if dot + dropped == 0 or (dot >= 2 and buffer[dot - 2:dot] == b"\r\n"):
                lines.add(bytes(buffer[counted:dot]))
                del buffer[dot:]
                break
        if len(buffer) - counted >= _COUNT_EVERY:
            lines.add(bytes(buffer[counted:]))
            counted = len(buffer)
            if lines.state is not _DataState.NOMINAL:
                dropped += len(buffer) - 2
                del buffer[:-2]  # refused anyway: keep only what finds the end of data
                counted = len(buffer)
    else:
        return None
    if lines.state is not _DataState.NOMINAL:
        return lines.state, b""
    if buffer.startswith(b"."):  # RFC 5321 4.5.2: the sender doubled a leading dot
        del buffer[:1]
    if b"\r\n." in buffer:
        buffer = buffer.replace(b"\r\n.", b"\r\n")
    return _DataState.NOMINAL, bytes(buffer)
