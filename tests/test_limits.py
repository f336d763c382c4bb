"""Listener limits and abuse, spoken to with raw sockets: every refusal has its standard code."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import AsyncIterator

import pytest

from conftest import Sink, start_sink
from harness import RunningGateway, start_gateway

from gateway.protocol import smuggling_attempt

MESSAGE = (b"From: Jane Doe <jane.doe@corp.example>\r\nTo: c@example.net\r\nSubject: hi\r\n\r\n"
           b"Hello from Jane.\r\n")


class Client:
    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader, self.writer = reader, writer

    @classmethod
    async def connect(cls, port: int) -> "Client":
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        return cls(reader, writer)

    async def reply(self) -> str:
        lines = []
        while True:
            line = (await asyncio.wait_for(self.reader.readline(), 10)).decode()
            if not line:
                return "".join(lines) or "(closed)"
            lines.append(line)
            if line[3:4] != "-":
                return "".join(lines)

    async def send(self, data: bytes) -> str:
        self.writer.write(data)
        await self.writer.drain()
        return await self.reply()

    async def start(self) -> None:
        assert (await self.reply()).startswith("220")
        assert (await self.send(b"EHLO client.example\r\n")).startswith("250")

    def close(self) -> None:
        self.writer.close()


@pytest.fixture
async def sink() -> AsyncIterator[Sink]:
    running = await start_sink()
    yield running
    running.server.close()


async def gateway_with(tmp_path: Path, sink: Sink, **limits: int) -> RunningGateway:
    return await start_gateway(tmp_path, outbound={"next_hop": sink.url},
                               inbound={"next_hop": sink.url}, limits=limits)


async def test_message_over_the_size_limit_gets_552(tmp_path: Path, sink: Sink) -> None:
    gateway = await gateway_with(tmp_path, sink, max_message_size=10_000)
    try:
        client = await Client.connect(gateway.outbound_port)
        await client.start()
        assert "SIZE 10000" in await client.send(b"EHLO again.example\r\n")
        assert (await client.send(b"MAIL FROM:<jane.doe@corp.example> SIZE=20000\r\n"))\
            .startswith("552")
        await client.send(b"MAIL FROM:<jane.doe@corp.example>\r\n")
        await client.send(b"RCPT TO:<c@example.net>\r\n")
        assert (await client.send(b"DATA\r\n")).startswith("354")
        reply = await client.send(MESSAGE + b"x" * 200 + (b"\r\n" + b"y" * 500) * 40 + b"\r\n.\r\n")
        assert reply.startswith("552"), reply
        client.close()
    finally:
        await gateway.close()
    assert sink.messages == []


async def test_too_many_recipients_gets_452(tmp_path: Path, sink: Sink) -> None:
    gateway = await gateway_with(tmp_path, sink, max_recipients=3)
    try:
        client = await Client.connect(gateway.outbound_port)
        await client.start()
        await client.send(b"MAIL FROM:<jane.doe@corp.example>\r\n")
        replies = [await client.send(f"RCPT TO:<c{i}@example.net>\r\n".encode())
                   for i in range(4)]
        assert [r[:3] for r in replies] == ["250", "250", "250", "452"]
        assert "4.5.3" in replies[3]
        client.close()
    finally:
        await gateway.close()


async def test_connections_beyond_the_limit_get_421(tmp_path: Path, sink: Sink) -> None:
    gateway = await gateway_with(tmp_path, sink, max_connections=2)
    try:
        first, second = await Client.connect(gateway.inbound_port), \
            await Client.connect(gateway.inbound_port)
        await first.start()
        await second.start()
        third = await Client.connect(gateway.inbound_port)
        assert (await third.reply()).startswith("421 4.7.0")
        first.close()
        await asyncio.sleep(0.2)
        fourth = await Client.connect(gateway.inbound_port)
        await fourth.start()
        for client in (second, third, fourth):
            client.close()
    finally:
        await gateway.close()


async def test_idle_client_is_cut_off(tmp_path: Path, sink: Sink) -> None:
    gateway = await gateway_with(tmp_path, sink, command_timeout_seconds=1)
    try:
        client = await Client.connect(gateway.outbound_port)
        await client.start()
        reply = await client.reply()
        assert reply.startswith("421") or reply == "(closed)"
        client.close()
    finally:
        await gateway.close()


@pytest.mark.parametrize("payload", [
    b"first\n.\r\nMAIL FROM:<evil@example.net>\r\nRCPT TO:<x@example.net>\r\nDATA\r\nsmuggled\r\n",
    b"first\r.\r\nMAIL FROM:<evil@example.net>\r\n",
    b"first\r\n.\nMAIL FROM:<evil@example.net>\r\n",
    b"first\r\n.\rMAIL FROM:<evil@example.net>\r\n",
])
async def test_smuggling_is_refused_and_nothing_is_relayed(tmp_path: Path, sink: Sink,
                                                           payload: bytes) -> None:
    gateway = await gateway_with(tmp_path, sink)
    try:
        client = await Client.connect(gateway.outbound_port)
        await client.start()
        await client.send(b"MAIL FROM:<jane.doe@corp.example>\r\n")
        await client.send(b"RCPT TO:<c@example.net>\r\n")
        await client.send(b"DATA\r\n")
        reply = await client.send(MESSAGE + payload + b".\r\n")
        assert reply.startswith("550 5.5.2"), reply
        client.close()
    finally:
        await gateway.close()
    assert sink.messages == []


@pytest.mark.parametrize(("data", "smuggled"), [
    (b"a\r\nb\r\n\r\nc\r\n", False),
    (b"bare\nline ends\nbut no dot\n", False),
    (b"a\r\n\nMAIL FROM:<x@example.net>\r\n", True),   # "\r\n.\n" after dot-unstuffing
    (b"a\n.\r\nb\r\n", True),
    (b"a\r.\r\nb\r\n", True),
    (b"a\r\n.\rb\r\n", True),
    (b"a\r\r\nb\r\n", False),
])
def test_smuggling_attempt(data: bytes, smuggled: bool) -> None:
    assert smuggling_attempt(data) is smuggled


async def test_overlong_line_is_refused(tmp_path: Path, sink: Sink) -> None:
    gateway = await gateway_with(tmp_path, sink)
    try:
        client = await Client.connect(gateway.outbound_port)
        await client.start()
        await client.send(b"MAIL FROM:<jane.doe@corp.example>\r\n")
        await client.send(b"RCPT TO:<c@example.net>\r\n")
        await client.send(b"DATA\r\n")
        reply = await client.send(MESSAGE + b"a" * 1_000_000 + b"\r\n.\r\n")
        assert reply.startswith("5"), reply
        assert (await client.send(b"NOOP\r\n")).startswith("250")
        client.close()
    finally:
        await gateway.close()
    assert sink.messages == []


async def test_inbound_is_never_an_open_relay(tmp_path: Path, sink: Sink) -> None:
    gateway = await gateway_with(tmp_path, sink)
    try:
        client = await Client.connect(gateway.inbound_port)
        await client.start()
        await client.send(b"MAIL FROM:<spammer@example.net>\r\n")
        for target in (b"victim@gmail.example", b"alex.morgan@support.example.evil.example",
                       b"\"alex.morgan@support.example\"@evil.example",
                       b"alex.morgan%evil.example@support.example"):
            reply = await client.send(b"RCPT TO:<" + target + b">\r\n")
            assert reply.startswith("550"), (target, reply)
        client.close()
    finally:
        await gateway.close()
