"""Next-hop delivery against real SMTP servers on loopback."""

import asyncio
import contextlib
import json
import socket
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from gateway.envelope import Envelope, Refused, Relayed, Retry
from gateway.relay import deliver, transparent_pieces

from conftest import Sink, SinkHandler, start_sink

MESSAGE = b"From: a@x.example\r\nTo: b@y.example\r\nSubject: hi\r\n\r\nbody\r\n"


async def test_spool_writes_exact_bytes_and_envelope(tmp_path: Path) -> None:
    envelope = Envelope("a@x.example", ("b@y.example",))
    outcome = await deliver(f"spool:{tmp_path / 'out'}", envelope, MESSAGE)
    assert outcome == Relayed(accepted=("b@y.example",))
    [eml] = (tmp_path / "out").glob("*.eml")
    assert eml.read_bytes() == MESSAGE
    sidecar = json.loads(eml.with_name(eml.name.replace(".eml", ".envelope.json")).read_text())
    assert sidecar == {"mail_from": "a@x.example", "rcpt_tos": ["b@y.example"]}


async def test_unwritable_spool_is_a_retry(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    outcome = await deliver(f"spool:{blocker}", Envelope("a@x.example", ("b@y.example",)),
                            MESSAGE)
    assert isinstance(outcome, Retry) and outcome.code == 451


async def test_smtp_relay_delivers_bytes(sink: Sink) -> None:
    outcome = await deliver(sink.url, Envelope("a@x.example", ("b@y.example",)), MESSAGE)
    assert isinstance(outcome, Relayed)
    assert sink.messages[0].data == MESSAGE
    assert sink.messages[0].rcpt_tos == ["b@y.example"]


@pytest.mark.parametrize(("message", "arrives"), [
    (b"Subject: dots\r\n\r\n.\r\n..two\r\n.leading\r\nend\r\n",) * 2,
    (b".starts with a dot\r\n",) * 2,
    (b"Subject: x\r\n\r\nbare\nline\rends\r\n.dot\n", b"Subject: x\r\n\r\nbare\r\nline\r\nends\r\n.dot\r\n"),
    (b"Subject: x\r\n\r\nno final line end", b"Subject: x\r\n\r\nno final line end\r\n"),
])
async def test_data_is_sent_transparently(sink: Sink, message: bytes, arrives: bytes) -> None:
    outcome = await deliver(sink.url, Envelope("a@x.example", ("b@y.example",)), message)
    assert isinstance(outcome, Relayed)
    assert sink.messages[0].data == arrives


def test_transparent_pieces_are_views_of_the_message() -> None:
    message = b"Subject: x\r\n\r\n" + b"a" * 1000 + b"\r\n.b\r\n"
    pieces = list(transparent_pieces(message))
    assert b"".join(pieces) == message.replace(b"\r\n.", b"\r\n..") + b".\r\n"
    *body, end = pieces
    assert end == b".\r\n"
    assert all(isinstance(piece, memoryview) and piece.obj is message
               for piece in body if piece != b".")


async def test_null_sender_is_relayed_as_null(sink: Sink) -> None:
    outcome = await deliver(sink.url, Envelope("", ("b@y.example",)), MESSAGE)
    assert isinstance(outcome, Relayed)
    assert sink.messages[0].mail_from in ("", "<>")


async def test_next_hop_down_is_a_retry() -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    outcome = await deliver(f"smtp://127.0.0.1:{port}", Envelope("a@x.example", ("b@y.example",)),
                            MESSAGE)
    assert isinstance(outcome, Retry) and outcome.code == 451


async def test_data_4xx_is_a_retry_and_5xx_a_refusal() -> None:
    for answer, kind, code in (("452 4.3.1 full", Retry, 452), ("554 5.6.0 no", Refused, 554)):
        sink = await start_sink(SinkHandler(data_answer=answer))
        try:
            outcome = await deliver(sink.url, Envelope("a@x.example", ("b@y.example",)), MESSAGE)
        finally:
            sink.server.close()
        assert isinstance(outcome, kind) and outcome.code == code
        assert outcome.status == answer.split()[1]


@contextlib.asynccontextmanager
async def refusing_data_command(answer: bytes) -> AsyncIterator[int]:
    """A next hop that accepts the envelope and answers the DATA command itself with `answer`;
    yields its port. Its connections are closed on the way out, so none outlives the test."""
    writers: list[asyncio.StreamWriter] = []

    async def session(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writers.append(writer)
        writer.write(b"220 hop ESMTP\r\n")
        while line := await reader.readline():
            verb = line[:4].upper()
            writer.write(answer if verb == b"DATA" else
                         b"221 bye\r\n" if verb == b"QUIT" else b"250 ok\r\n")
            await writer.drain()
        writer.close()

    server = await asyncio.start_server(session, "127.0.0.1", 0)
    try:
        yield server.sockets[0].getsockname()[1]
    finally:
        server.close()
        for writer in writers:
            writer.close()
            with contextlib.suppress(OSError):
                await writer.wait_closed()
        await server.wait_closed()


@pytest.mark.parametrize(("answer", "kind", "code"), [(b"451 4.3.0 busy\r\n", Retry, 451),
                                                      (b"554 5.5.1 no\r\n", Refused, 554)])
async def test_data_command_refused_is_a_retry_or_refusal(answer: bytes, kind: type,
                                                          code: int) -> None:
    async with refusing_data_command(answer) as port:
        outcome = await deliver(f"smtp://127.0.0.1:{port}",
                                Envelope("a@x.example", ("b@y.example",)), MESSAGE)
    assert isinstance(outcome, kind) and outcome.code == code


async def test_recipients_are_answered_one_by_one() -> None:
    sink = await start_sink(SinkHandler(rcpt_answers={"gone@y.example": "550 5.1.1 no such user"}))
    try:
        outcome = await deliver(sink.url, Envelope("a@x.example", ("b@y.example", "gone@y.example")),
                                MESSAGE)
        assert isinstance(outcome, Relayed)
        assert outcome.accepted == ("b@y.example",)
        assert outcome.refused == {"gone@y.example": (550, "5.1.1 no such user")}
        all_gone = await deliver(sink.url, Envelope("a@x.example", ("gone@y.example",)), MESSAGE)
        assert isinstance(all_gone, Refused) and all_gone.code == 550
    finally:
        sink.server.close()


async def test_all_recipients_deferred_is_a_retry() -> None:
    sink = await start_sink(SinkHandler(rcpt_answers={"b@y.example": "450 4.2.1 try later"}))
    try:
        outcome = await deliver(sink.url, Envelope("a@x.example", ("b@y.example",)), MESSAGE)
    finally:
        sink.server.close()
    assert isinstance(outcome, Retry) and outcome.code == 450
