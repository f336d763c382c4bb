"""Veil's SMTP engine reads addresses exactly as aiosmtpd does."""

from __future__ import annotations

import asyncio
import tracemalloc
from typing import Any

from aiosmtpd.smtp import SMTP, _DataState
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gateway import protocol
from gateway.protocol import address_and_rest, read_data

ADDRESS_PIECES = st.sampled_from([
    "<", ">", "@", ".", "..", "jane", "Jane.Doe", "corp", "example", "a+b", "x_y", "o'neil",
    "{|}~", "=", "?", "#", "-", " ", "  ", "\t", "(comment)", "(", ")", '"', '"q x"', "[1.2.3.4]",
    "\\", ",", ":", ";", "@r:", "é", "\u3000", "SIZE=100", "BODY=8BITMIME", "<>", "x" * 70])


class _Engine:
    def __init__(self, local_part_limit: int) -> None:
        self.local_part_limit = local_part_limit


def aiosmtpd_reading(arg: str, local_part_limit: int) -> object:
    try:
        return SMTP._getaddr(_Engine(local_part_limit), arg)  # type: ignore[arg-type]
    except Exception as error:  # email's parser fails on some input ("<"): so must Veil's
        return type(error)


def veil_reading(arg: str, local_part_limit: int) -> object:
    try:
        return address_and_rest(arg, local_part_limit)
    except Exception as error:
        return type(error)


@settings(max_examples=4000, derandomize=True, deadline=None)
@given(st.lists(ADDRESS_PIECES, max_size=12).map("".join), st.sampled_from([0, 8, 64]))
def test_addresses_read_as_aiosmtpd_reads_them(arg: str, limit: int) -> None:
    assert veil_reading(arg, limit) == aiosmtpd_reading(arg, limit)


def test_common_addresses() -> None:
    for arg in ("<jane.doe@corp.example>", "<a@b> SIZE=10 BODY=8BITMIME", "<a@b>  (c) X", "<>",
                "<a@b>\t\u3000SMTPUTF8", " <a@b>", "a@b", "<@route:a@b>", "<a@[1.2.3.4]>"):
        for limit in (0, 1, 64):
            assert veil_reading(arg, limit) == aiosmtpd_reading(arg, limit)


# --- DATA ----------------------------------------------------------------------------------

async def read_by_line(reader: asyncio.StreamReader, line_length_limit: int,
                       data_size_limit: int) -> tuple[_DataState, bytes]:
    """aiosmtpd's own DATA loop (line by line), the reference for read_data."""
    buffer = bytearray()
    received = 0
    in_line = False
    state = _DataState.NOMINAL
    while True:
        try:
            line = await reader.readuntil(b"\r\n")
        except asyncio.LimitOverrunError as error:
            state = _DataState.TOO_LONG if state is _DataState.NOMINAL else state
            buffer = bytearray()
            line = await reader.read(error.consumed)
        if not in_line and line == b".\r\n":
            break
        received += len(line)
        if state is _DataState.NOMINAL and data_size_limit and received > data_size_limit:
            state = _DataState.TOO_MUCH
            buffer = bytearray()
        if state is _DataState.NOMINAL:
            if len(line) > line_length_limit:
                state = _DataState.TOO_LONG
                buffer = bytearray()
            elif line[:1] == b".":
                buffer += memoryview(line)[1:]
            else:
                buffer += line
        in_line = not line.endswith(b"\r\n")
    return state, bytes(buffer) if state is _DataState.NOMINAL else b""


async def _outcome(read: Any, stream: bytes, cuts: list[int], limit: int,
                   size_limit: int) -> tuple[object, bytes]:
    reader = asyncio.StreamReader(limit=limit)

    async def feed() -> None:
        position = 0
        for cut in sorted(cuts) + [len(stream)]:
            reader.feed_data(stream[position:cut])
            position = max(position, cut)
            await asyncio.sleep(0)
        reader.feed_eof()

    feeding = asyncio.create_task(feed())
    try:
        result: object = await read(reader, limit, size_limit)
    except asyncio.IncompleteReadError:
        result = "closed"
    await feeding
    return result, await reader.read()


DATA_PIECES = st.sampled_from([
    b"\r\n", b"\r\n", b"\r\n", b".", b"..", b".\r\n", b"\r\n.\r\n", b"\r", b"\n", b"x", b"text ",
    b"x" * 7, b"y" * 12, b"z" * 18, b"Subject: hi\r\n", b"\r\n..\r\n", b"\r\n.x", b"QUIT\r\n"])


@settings(max_examples=3000, derandomize=True, deadline=None)
@given(st.lists(DATA_PIECES, max_size=30).map(b"".join),
       st.lists(st.integers(min_value=0, max_value=200), max_size=6),
       st.sampled_from([16, 20, 40]), st.sampled_from([0, 30, 60, 500]),
       st.booleans())
async def test_data_is_read_as_aiosmtpd_reads_it(stream: bytes, cuts: list[int], limit: int,
                                                size_limit: int, ended: bool) -> None:
    if ended:
        stream += b"\r\n.\r\n" + b"QUIT\r\n"
    expected = await _outcome(read_by_line, stream, cuts, limit, size_limit)
    for count_every in (protocol._COUNT_EVERY, 1, 7):  # the limits applied on the way too
        with pytest.MonkeyPatch.context() as patch:
            patch.setattr(protocol, "_COUNT_EVERY", count_every)
            assert await _outcome(read_data, stream, cuts, limit, size_limit) == expected


async def test_data_read_in_pieces_of_real_size() -> None:
    message = b"".join(b"line %d " % i + b"x" * (i * 7 % 990) + b"\r\n" + b"." * (i % 3)
                       for i in range(300)) + b"\r\n.\r\n"
    for limit, size_limit in ((1001, 0), (1001, 100_000), (1001, 33_554_432), (500, 0)):
        for cuts in ([], [1, 2, 3, 1000, 1001, 1002, 5000], list(range(0, len(message), 777))):
            expected = await _outcome(read_by_line, message, cuts, limit, size_limit)
            assert await _outcome(read_data, message, cuts, limit, size_limit) == expected


async def test_data_over_the_limits_is_let_go_while_it_arrives() -> None:
    reader = asyncio.StreamReader(limit=1001)

    async def feed() -> None:
        for _ in range(4000):  # 4 MB of short lines, far over a 64 KB size limit
            reader.feed_data(b"x" * 998 + b"\r\n")
            await asyncio.sleep(0)
        reader.feed_data(b".\r\n")

    feeding = asyncio.create_task(feed())
    tracemalloc.start()
    try:
        assert await read_data(reader, 1001, 65536) == (_DataState.TOO_MUCH, b"")
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    await feeding
    assert peak < 1_000_000


async def test_data_cut_off_by_a_closed_connection_is_not_handed_on() -> None:
    reader = asyncio.StreamReader(limit=1001)
    reader.feed_data(b"Subject: half a message\r\n")
    assert await read_data(reader, 1001, 0, connected=lambda: False) is None


@settings(max_examples=2000, derandomize=True, deadline=None)
@given(st.lists(st.sampled_from([b"a", b"\r", b"\n", b"\r\n", b"xyz"]), max_size=20).map(b"".join))
def test_compiled_line_lengths_match_their_definition(data: bytes) -> None:
    wire = pytest.importorskip("gateway._wire", reason="gateway._wire was not compiled")
    from gateway.protocol import line_lengths_in_python
    assert wire.line_lengths(data) == line_lengths_in_python(data)
