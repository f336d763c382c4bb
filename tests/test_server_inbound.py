"""Inbound end to end on loopback: customer -> Veil inbound listener -> sink, or quarantine."""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import AsyncIterator

import dkim
import pytest

from conftest import Sink, start_sink
from harness import RunningGateway, start_gateway

CLEAN = (b"From: Customer <customer@example.net>\r\n"
         b"To: Alex Morgan <alex.morgan@support.example>\r\n"
         b"Subject: Re: your order\r\nMessage-ID: <c1@example.net>\r\n"
         b"Date: Tue, 24 Nov 2026 11:00:00 +0000\r\n\r\n"
         b"Thanks Alex, this damn software is garbage but the refund worked.\r\n")
HARASSING = (b"From: Creep <creep@example.net>\r\n"
             b"To: Alex Morgan <alex.morgan@support.example>\r\n"
             b"Subject: Re: your order\r\nMessage-ID: <h1@example.net>\r\n\r\n"
             b"You are so hot babe. Send me a pic of you and give me your private number, "
             b"I found your Instagram and I know where you live.\r\n")


@pytest.fixture
async def sink() -> AsyncIterator[Sink]:
    running = await start_sink()
    yield running
    running.server.close()


async def gateway_with(tmp_path: Path, sink: Sink, **inbound: object) -> RunningGateway:
    return await start_gateway(tmp_path, inbound={"next_hop": sink.url, **inbound},
                               outbound={"next_hop": sink.url})


@pytest.fixture
async def gateway(tmp_path: Path, sink: Sink) -> AsyncIterator[RunningGateway]:
    running = await gateway_with(tmp_path, sink)
    yield running
    await running.close()


async def test_foreign_domain_is_relaying_denied(gateway: RunningGateway, sink: Sink) -> None:
    code, text = await gateway.send_inbound("customer@example.net", ["someone@elsewhere.example"],
                                            CLEAN)
    assert (code, text.split()[0]) == (550, "5.7.1")
    assert "relaying denied" in text
    assert sink.messages == []


async def test_unknown_alias_is_refused(gateway: RunningGateway) -> None:
    code, text = await gateway.send_inbound("customer@example.net", ["nobody@support.example"],
                                            CLEAN)
    assert (code, text.split()[0]) == (550, "5.1.1")


async def test_clean_reply_reaches_the_real_agent_unchanged(gateway: RunningGateway,
                                                            sink: Sink) -> None:
    code, text = await gateway.send_inbound("customer@example.net",
                                            ["alex.morgan@support.example"], CLEAN)
    assert code == 250, text
    [delivered] = sink.messages
    assert delivered.rcpt_tos == ["jane.doe@corp.example"]
    assert delivered.mail_from == "customer@example.net"
    head, _, rest = delivered.data.partition(b"From: Customer")
    assert b"From: Customer" + rest == CLEAN  # the customer's bytes, as written
    assert b"Authentication-Results: veil; dkim=none" in head
    assert b"X-Veil-Verdict: deliver" in head


async def test_lines_starting_with_a_dot_arrive_as_written(gateway: RunningGateway,
                                                           sink: Sink) -> None:
    """Dot-stuffing undone on the way in and redone on the way out (RFC 5321 4.5.2)."""
    dotted = CLEAN + b".\r\n..\r\n.leading dot\r\n...three\r\n"
    code, text = await gateway.send_inbound("customer@example.net",
                                            ["alex.morgan@support.example"], dotted)
    assert code == 250, text
    [delivered] = sink.messages
    assert delivered.data.endswith(dotted)


async def test_harassing_reply_is_quarantined_not_delivered(gateway: RunningGateway,
                                                            sink: Sink) -> None:
    code, text = await gateway.send_inbound("creep@example.net",
                                            ["alex.morgan@support.example"], HARASSING)
    assert code == 250, text
    assert sink.messages == []
    assert gateway.services.store.count_held() == 1


async def test_quarantine_can_answer_550(tmp_path: Path, sink: Sink) -> None:
    running = await gateway_with(tmp_path, sink, on_quarantine="reject")
    try:
        code, text = await running.send_inbound("creep@example.net",
                                                ["alex.morgan@support.example"], HARASSING)
        assert (code, text.split()[0]) == (550, "5.7.1")
        assert running.services.store.count_held() == 1
    finally:
        await running.close()
    assert sink.messages == []


async def test_repeat_offender_has_further_mail_held(tmp_path: Path, sink: Sink) -> None:
    running = await gateway_with(tmp_path, sink, repeat_offender_count=2)
    try:
        for _ in range(2):
            await running.send_inbound("creep@example.net", ["alex.morgan@support.example"],
                                       HARASSING)
        code, _ = await running.send_inbound("creep@example.net",
                                             ["alex.morgan@support.example"],
                                             CLEAN.replace(b"customer@", b"creep@"))
        assert code == 250
        assert sink.messages == []
        assert running.services.store.count_held() == 3
        code, _ = await running.send_inbound("customer@example.net",
                                             ["alex.morgan@support.example"], CLEAN)
        assert len(sink.messages) == 1
    finally:
        await running.close()


async def test_locked_quarantine_answers_451(gateway: RunningGateway, sink: Sink) -> None:
    blocker = sqlite3.connect(gateway.config.quarantine.database, timeout=0)
    blocker.execute("BEGIN EXCLUSIVE")
    try:
        code, text = await gateway.send_inbound("creep@example.net",
                                                ["alex.morgan@support.example"], HARASSING)
    finally:
        blocker.rollback()
        blocker.close()
    assert code == 451, text
    assert sink.messages == []


async def test_dkim_result_is_recorded_and_forged_results_stripped(gateway: RunningGateway,
                                                                   sink: Sink) -> None:
    signed = gateway.services.signer.sign(  # type: ignore[union-attr]
        CLEAN.replace(b"customer@example.net", b"customer@support.example"))
    forged = b"Authentication-Results: veil; dkim=pass header.d=bank.example\r\n" + signed
    code, _ = await gateway.send_inbound("customer@support.example",
                                         ["alex.morgan@support.example"], forged)
    assert code == 250
    data = sink.messages[0].data
    assert b"header.d=bank.example" not in data
    assert b"Authentication-Results: veil;\r\n\tdkim=pass header.d=support.example" in data
    assert b"header.d=support.example" in data
    original = data[data.index(b"DKIM-Signature"):]
    assert dkim.verify(original, dnsfunc=lambda name, timeout=5: gateway.dns.get(
        name.decode().rstrip("."), "").encode())


@pytest.mark.parametrize("hostile", [
    b"",
    b"\r\n\r\n",
    b"Content-Type: multipart/mixed; boundary=x\r\n\r\n--x\r\nContent-Type: text/html\r\n\r\n<p>hot",
    b"Subject: =?x-bogus?B?!!!?=\r\n\r\n\xff\xfe\xfd",
])
async def test_hostile_inbound_is_never_delivered_blind(gateway: RunningGateway, sink: Sink,
                                                        hostile: bytes) -> None:
    code, text = await gateway.send_inbound("x@example.net", ["alex.morgan@support.example"],
                                            hostile)
    assert code in (250, 550, 554), text
    assert len(sink.messages) + gateway.services.store.count_held() <= 1
    code, _ = await gateway.send_inbound("customer@example.net",
                                         ["alex.morgan@support.example"], CLEAN)
    assert code == 250
