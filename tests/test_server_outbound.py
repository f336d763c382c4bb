"""Outbound end to end on loopback: SMTP client -> Veil outbound listener -> SMTP sink."""

from __future__ import annotations

import email
import re
import socket
import sqlite3
from dataclasses import replace
from email import policy
from pathlib import Path
from typing import AsyncIterator

import dkim
import pytest
from conftest import Sink, SinkHandler, start_sink
from harness import RunningGateway, send_through, start_gateway, with_policy

from gateway.identity.leaks import leaks_in
from gateway.identity.message_ids import MessageIdKey
from gateway.quarantine.store import StoreUnavailable
from gateway.server import Services

CORPUS = Path(__file__).resolve().parent / "corpus" / "outbound"
AGENT_MAIL = (
    b'From: "Jane Doe via Acme Support" <jane.doe@corp.example>\r\n'
    b"To: Customer <customer@example.net>\r\n"
    b"Subject: Re: your order, from Jane Doe\r\n"
    b"Message-ID: <1234.5678@helpdesk.corp.example>\r\n"
    b"X-Mailer: Helpdesk 5.2\r\n"
    b"X-Originating-IP: [10.1.2.3]\r\n"
    b"Received: from jane-laptop.corp.example (jane-laptop.corp.example [10.1.2.3])\r\n"
    b"\tby mail.corp.example with ESMTP id 42; Tue, 24 Nov 2026 10:00:00 +0000\r\n"
    b"Date: Tue, 24 Nov 2026 10:00:00 +0000\r\n"
    b"MIME-Version: 1.0\r\n"
    b"Content-Type: text/plain; charset=utf-8\r\n"
    b"\r\n"
    b"Hi,\r\n\r\nYour refund is on its way. Call me at +1 555 010 7788 if not.\r\n\r\n"
    b"-- \r\nJane Doe\r\nSenior Support, Acme\r\njane.doe@corp.example\r\n"
)
IDENTITY = [b"Jane", b"jane.doe", b"555 010 7788", b"5550107788", b"jane-laptop", b"10.1.2.3",
            b"helpdesk.corp.example"]


@pytest.fixture
async def relay_sink() -> AsyncIterator[Sink]:
    sink = await start_sink()
    yield sink
    sink.server.close()


@pytest.fixture
async def gateway(tmp_path: Path, relay_sink: Sink) -> AsyncIterator[RunningGateway]:
    running = await start_gateway(tmp_path, outbound={"next_hop": relay_sink.url},
                                  inbound={"next_hop": relay_sink.url})
    yield running
    await running.close()


def dkim_verifies(message: bytes, gateway: RunningGateway) -> bool:
    def dnsfunc(name: bytes, timeout: int = 5) -> bytes:
        return gateway.dns.get(name.decode().rstrip("."), "").encode()
    return bool(dkim.verify(message, dnsfunc=dnsfunc))


async def test_agent_mail_leaves_rewritten_and_signed(gateway: RunningGateway,
                                                      relay_sink: Sink) -> None:
    code, text = await gateway.send_outbound("jane.doe@corp.example", ["customer@example.net"],
                                             AGENT_MAIL)
    assert code == 250, text
    [received] = relay_sink.messages
    assert received.mail_from == "alex.morgan@support.example"
    assert received.rcpt_tos == ["customer@example.net"]
    for trace in IDENTITY:
        assert trace.lower() not in received.data.lower(), trace
    parsed = email.message_from_bytes(received.data, policy=policy.default)
    assert parsed["From"].addresses[0].addr_spec == "alex.morgan@support.example"
    assert "Alex Morgan" in str(parsed["From"])
    assert "Alex Morgan" in parsed.get_body(("plain",)).get_content()
    assert parsed["X-Mailer"] is None and parsed["X-Originating-IP"] is None
    assert received.data.startswith(b"DKIM-Signature:")
    assert dkim_verifies(received.data, gateway)
    assert leaks_in(received.data, gateway.services.directory) == ()


async def test_replaced_message_id_threads_the_customer_reply(gateway: RunningGateway,
                                                              relay_sink: Sink) -> None:
    await gateway.send_outbound("jane.doe@corp.example", ["customer@example.net"], AGENT_MAIL)
    sent = email.message_from_bytes(relay_sink.messages[0].data, policy=policy.default)
    new_id = sent["Message-ID"]
    assert new_id != "<1234.5678@helpdesk.corp.example>"
    reply = (f"From: Customer <customer@example.net>\r\nTo: Alex Morgan <alex.morgan@support.example>\r\n"
             f"Subject: Re: your order\r\nIn-Reply-To: {new_id}\r\nReferences: {new_id}\r\n"
             f"Message-ID: <reply1@example.net>\r\n\r\nThanks, that worked.\r\n").encode()
    code, text = await gateway.send_inbound("customer@example.net",
                                            ["alex.morgan@support.example"], reply)
    assert code == 250, text
    delivered = relay_sink.messages[1]
    assert delivered.rcpt_tos == ["jane.doe@corp.example"]
    assert b"In-Reply-To: <1234.5678@helpdesk.corp.example>" in delivered.data
    assert b"References: <1234.5678@helpdesk.corp.example>" in delivered.data


async def test_follow_up_references_the_ids_the_customer_saw(gateway: RunningGateway,
                                                              relay_sink: Sink) -> None:
    """The helpdesk's next message in the thread refers to its own internal ids; they leave
    as the same replacements the first message got, so the customer's client threads them."""
    await gateway.send_outbound("jane.doe@corp.example", ["customer@example.net"], AGENT_MAIL)
    first_id = email.message_from_bytes(relay_sink.messages[0].data)["Message-ID"]
    follow_up = AGENT_MAIL.replace(
        b"Message-ID: <1234.5678@helpdesk.corp.example>\r\n",
        b"Message-ID: <1234.9999@helpdesk.corp.example>\r\n"
        b"In-Reply-To: <1234.5678@helpdesk.corp.example>\r\n"
        b"References: <c0@example.net>\r\n <1234.5678@helpdesk.corp.example>\r\n")
    code, text = await gateway.send_outbound("jane.doe@corp.example", ["customer@example.net"],
                                             follow_up)
    assert code == 250, text
    second = email.message_from_bytes(relay_sink.messages[1].data)
    assert second["In-Reply-To"] == first_id
    assert second["References"].split() == ["<c0@example.net>", first_id]
    assert second["Message-ID"] not in (first_id, "<1234.9999@helpdesk.corp.example>")
    assert b"helpdesk.corp.example" not in relay_sink.messages[1].data


UNDECODABLE = (
    b"From: Jane Doe <jane.doe@corp.example>\r\nTo: customer@example.net\r\nSubject: hi\r\n"
    b"MIME-Version: 1.0\r\nContent-Type: text/plain; charset=x-no-such-charset\r\n"
    b"Content-Transfer-Encoding: base64\r\n\r\n"
    b"SmFuZSBEb2UgKzEgNTU1IDAxMCA3Nzg4\r\n"
)


async def test_message_that_would_still_leak_is_refused(gateway: RunningGateway,
                                                        relay_sink: Sink) -> None:
    """Whatever rewrite does with a part it cannot read, that part must not leave."""
    code, text = await gateway.send_outbound("jane.doe@corp.example", ["customer@example.net"],
                                             UNDECODABLE)
    if code == 250:
        [received] = relay_sink.messages
        assert b"SmFuZSBEb2Ug" not in received.data
        assert leaks_in(received.data, gateway.services.directory) == ()
    else:
        assert code == 550 and text.startswith("5.7.0"), text
        assert "Jane" not in text and "jane.doe" not in text
        assert relay_sink.messages == []


async def test_leak_policy_hold_keeps_it_for_review(gateway: RunningGateway,
                                                    relay_sink: Sink) -> None:
    # Prose in In-Reply-To is left as it stands (only a plain list of ids is rewritten), so
    # this one cannot leave.
    leaking = (CORPUS / "refused" / "thread_header_prose_naming_agent.eml").read_bytes()
    code, text = await send_through(with_policy(gateway, on_leak="hold"), gateway.dns,
                                    "support@corp.example", ["peter@customer.example"], leaking)
    assert code == 250, text
    assert relay_sink.messages == []
    assert gateway.services.store.count_held() == 1
    [item] = gateway.services.store.list(status="held")
    assert item.direction == "outbound" and item.verdict == "leak"
    code, text = await gateway.send_outbound("support@corp.example", ["peter@customer.example"],
                                             leaking)
    assert code == 550 and "In-Reply-To" in text


async def test_unknown_sender_rejected_when_policy_says_so(gateway: RunningGateway,
                                                           relay_sink: Sink) -> None:
    message = AGENT_MAIL.replace(b'"Jane Doe via Acme Support" <jane.doe@corp.example>',
                                 b"Robot <robot@corp.example>")
    code, text = await send_through(with_policy(gateway, unknown_sender="reject"), gateway.dns,
                                    "robot@corp.example", ["customer@example.net"], message)
    assert (code, text.split()[0]) == (550, "5.7.1")
    assert relay_sink.messages == []


async def test_unknown_sender_passes_rewritten_by_default(gateway: RunningGateway,
                                                          relay_sink: Sink) -> None:
    message = (b"From: Robot <robot@corp.example>\r\nTo: customer@example.net\r\n"
               b"Subject: ticket update\r\n\r\nJane Doe will call you back.\r\n")
    code, _ = await gateway.send_outbound("robot@corp.example", ["customer@example.net"], message)
    assert code == 250
    [received] = relay_sink.messages
    assert b"Jane" not in received.data and b"Alex Morgan" in received.data
    assert dkim_verifies(received.data, gateway)


async def send_agent_mail(services: Services, gateway: RunningGateway,
                          recipients: tuple[str, ...] = ("customer@example.net",)
                          ) -> tuple[int, str]:
    return await send_through(services, gateway.dns, "jane.doe@corp.example", list(recipients),
                              AGENT_MAIL)


async def test_client_outside_allowed_networks_is_refused(gateway: RunningGateway) -> None:
    code, text = await send_agent_mail(with_policy(gateway, allow_from=("192.0.2.0/24",)),
                                       gateway)
    assert (code, text.split()[0]) == (550, "5.7.1")


def _closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


async def test_next_hop_down_answers_451(gateway: RunningGateway) -> None:
    down = with_policy(gateway, next_hop=f"smtp://127.0.0.1:{_closed_port()}")
    code, _ = await send_agent_mail(down, gateway)
    assert code == 451


@pytest.mark.parametrize("answer, expected", [("452 4.3.1 queue full", 452),
                                              ("554 5.7.1 spam", 554)])
async def test_next_hop_answers_pass_through(gateway: RunningGateway, answer: str,
                                             expected: int) -> None:
    refusing = await start_sink(SinkHandler(data_answer=answer))
    try:
        code, text = await send_agent_mail(with_policy(gateway, next_hop=refusing.url), gateway)
    finally:
        refusing.server.close()
    assert code == expected
    assert text.startswith(answer.split()[1])


async def test_partial_refusal_bounces_the_refused_recipient(gateway: RunningGateway) -> None:
    partial = await start_sink(SinkHandler(rcpt_answers={"gone@example.net":
                                                         "550 5.1.1 no such user"}))
    try:
        code, _ = await send_agent_mail(with_policy(gateway, next_hop=partial.url), gateway,
                                        ("customer@example.net", "gone@example.net"))
    finally:
        partial.server.close()
    assert code == 250
    message, bounce = partial.messages
    assert message.rcpt_tos == ["customer@example.net"]
    assert bounce.mail_from in ("", "<>")
    assert bounce.rcpt_tos == ["alex.morgan@support.example"]
    assert b"gone@example.net" in bounce.data and b"5.1.1" in bounce.data


async def test_partial_deferral_makes_the_client_retry(gateway: RunningGateway) -> None:
    partial = await start_sink(SinkHandler(rcpt_answers={"later@example.net":
                                                         "450 4.2.1 mailbox busy"}))
    try:
        code, _ = await send_agent_mail(with_policy(gateway, next_hop=partial.url), gateway,
                                        ("customer@example.net", "later@example.net"))
    finally:
        partial.server.close()
    assert code == 451


async def test_null_sender_bounce_is_relayed(gateway: RunningGateway, relay_sink: Sink) -> None:
    bounce = (b"From: MAILER-DAEMON@corp.example\r\nTo: customer@example.net\r\n"
              b"Subject: Undelivered\r\n\r\nJane Doe could not be reached.\r\n")
    code, _ = await gateway.send_outbound("", ["customer@example.net"], bounce)
    assert code == 250
    assert relay_sink.messages[0].mail_from in ("", "<>")
    assert b"Jane" not in relay_sink.messages[0].data


class BrokenSigner:
    def sign(self, message: bytes) -> bytes:
        raise RuntimeError("signing bug")


async def test_our_own_bug_answers_451_not_a_bounce(gateway: RunningGateway,
                                                    relay_sink: Sink) -> None:
    code, _ = await send_agent_mail(replace(gateway.services, signer=BrokenSigner()), gateway)
    assert code == 451
    assert relay_sink.messages == []


def stored_mappings(gateway: RunningGateway) -> int:
    with sqlite3.connect(gateway.config.quarantine.database) as database:
        return int(database.execute("SELECT count(*) FROM message_ids").fetchone()[0])


async def test_the_replacement_id_is_the_original_sealed_and_nothing_is_stored(
        gateway: RunningGateway, relay_sink: Sink) -> None:
    code, _ = await gateway.send_outbound("jane.doe@corp.example", ["customer@example.net"],
                                          AGENT_MAIL)
    assert code == 250
    sent = email.message_from_bytes(relay_sink.messages[0].data, policy=policy.default)
    new = sent["Message-ID"].strip()
    assert re.fullmatch(r"<[a-z2-7]+@support\.example>", new), new
    assert gateway.services.message_id_key.original_id(new, "support.example") == \
        "<1234.5678@helpdesk.corp.example>"
    assert stored_mappings(gateway) == 0


class UnwritableStore:
    def __init__(self, store: object) -> None:
        self.store = store

    def hold(self, *args: object, **kwargs: object) -> None:
        raise StoreUnavailable("database is locked")

    def __getattr__(self, name: str) -> object:
        return getattr(self.store, name)


async def test_outbound_mail_does_not_wait_on_the_store(gateway: RunningGateway,
                                                        relay_sink: Sink) -> None:
    services = replace(gateway.services, store=UnwritableStore(gateway.services.store))
    code, _ = await send_agent_mail(services, gateway)  # type: ignore[arg-type]
    assert code == 250
    assert len(relay_sink.messages) == 1


def reply_to(sent: bytes, in_reply_to: str, references: str) -> bytes:
    subject = email.message_from_bytes(sent)["Subject"]
    return (f"From: Customer <customer@example.net>\r\n"
            f"To: Alex Morgan <alex.morgan@support.example>\r\nSubject: Re: {subject}\r\n"
            f"In-Reply-To: {in_reply_to}\r\nReferences: {references}\r\n"
            f"Message-ID: <reply-{len(references)}@example.net>\r\n\r\n"
            f"Thanks, that worked.\r\n").encode()


async def test_a_tampered_token_is_left_as_it_came(gateway: RunningGateway,
                                                   relay_sink: Sink) -> None:
    await gateway.send_outbound("jane.doe@corp.example", ["customer@example.net"], AGENT_MAIL)
    sent = relay_sink.messages[0].data
    new = email.message_from_bytes(sent)["Message-ID"].strip()
    token = new[1:new.index("@")]
    tampered = f"<{token[:20]}{'b' if token[20] == 'a' else 'a'}{token[21:]}@support.example>"
    forged = f"<{MessageIdKey.random().public_id('<9@helpdesk.corp.example>', 'x')[1:-3]}" \
             f"@support.example>"
    code, text = await gateway.send_inbound(
        "customer@example.net", ["alex.morgan@support.example"],
        reply_to(sent, tampered, f"<c0@example.net> {forged} {new}"))
    assert code == 250, text
    delivered = relay_sink.messages[1].data
    assert f"In-Reply-To: {tampered}".encode() in delivered
    assert f"References: <c0@example.net> {forged} <1234.5678@helpdesk.corp.example>".encode() \
        in delivered


async def test_a_mapping_stored_before_sealed_ids_still_threads(gateway: RunningGateway,
                                                                relay_sink: Sink) -> None:
    old = "<8c1f0d2e9b7a46c3a5e2f1d0c9b8a7e6@support.example>"  # an earlier keyed hash
    with sqlite3.connect(gateway.config.quarantine.database) as database:
        database.execute("INSERT INTO message_ids VALUES (?, ?, ?)",
                         (old, "<41.old@helpdesk.corp.example>", 1.7e9))
    await gateway.send_outbound("jane.doe@corp.example", ["customer@example.net"], AGENT_MAIL)
    sent = relay_sink.messages[0].data
    new = email.message_from_bytes(sent)["Message-ID"].strip()
    code, text = await gateway.send_inbound("customer@example.net",
                                            ["alex.morgan@support.example"],
                                            reply_to(sent, new, f"{old}\r\n {new}"))
    assert code == 250, text
    delivered = relay_sink.messages[1].data
    assert b"In-Reply-To: <1234.5678@helpdesk.corp.example>\r\n" in delivered
    assert b"References: <41.old@helpdesk.corp.example>\r\n <1234.5678@helpdesk.corp.example>" \
        in delivered


async def test_a_reply_with_8bit_ids_is_delivered(gateway: RunningGateway,
                                                  relay_sink: Sink) -> None:
    await gateway.send_outbound("jane.doe@corp.example", ["customer@example.net"], AGENT_MAIL)
    sent = relay_sink.messages[0].data
    new = email.message_from_bytes(sent)["Message-ID"].strip()
    reply = reply_to(sent, new, f"<caf\xe9@example.net> {new}").replace(
        "café".encode(), b"caf\xe9")
    code, text = await gateway.send_inbound("customer@example.net",
                                            ["alex.morgan@support.example"], reply)
    assert code == 250, text
    assert b"References: <caf\xe9@example.net> <1234.5678@helpdesk.corp.example>" in \
        relay_sink.messages[1].data


async def test_replacements_outlive_a_restart_and_a_new_dkim_key(tmp_path: Path,
                                                                  relay_sink: Sink) -> None:
    ids = []
    for _ in range(2):
        (tmp_path / "dkim.key").unlink(missing_ok=True)  # DKIM keys rotate; ids stay
        running = await start_gateway(tmp_path, outbound={"next_hop": relay_sink.url})
        try:
            code, _ = await running.send_outbound("jane.doe@corp.example",
                                                  ["customer@example.net"], AGENT_MAIL)
            assert code == 250
        finally:
            await running.close()
        ids.append(email.message_from_bytes(relay_sink.messages[-1].data)["Message-ID"])
    assert ids[0] == ids[1]


LONG_ID = "<" + "x" * 500 + "@helpdesk.corp.example>"  # seals to 889 characters
TOO_LONG_ID = "<" + "y" * 700 + "@helpdesk.corp.example>"


async def test_long_references_keep_every_line_under_998_and_thread(
        gateway: RunningGateway, relay_sink: Sink) -> None:
    internal = [f"<{n}.{'t' * 300}@helpdesk.corp.example>" for n in range(30)]
    references = "\r\n ".join(["<c0@example.net>", *internal, LONG_ID, TOO_LONG_ID])
    follow_up = AGENT_MAIL.replace(
        b"Message-ID: <1234.5678@helpdesk.corp.example>\r\n",
        f"Message-ID: {LONG_ID}\r\nIn-Reply-To: {TOO_LONG_ID}\r\n"
        f"References: {references}\r\n".encode())
    code, text = await gateway.send_outbound("jane.doe@corp.example", ["customer@example.net"],
                                             follow_up)
    assert code == 250, text
    sent = relay_sink.messages[0].data
    head = sent.split(b"\r\n\r\n", 1)[0]
    assert max(len(line) for line in head.split(b"\r\n")) < 998
    assert b"helpdesk.corp.example" not in sent
    parsed = email.message_from_bytes(sent)
    public = parsed["References"].split()
    assert len(public) == 33 and public[0] == "<c0@example.net>"
    assert parsed["Message-ID"] == public[-2] and parsed["In-Reply-To"] == public[-1]
    assert dkim_verifies(sent, gateway)
    # The customer's reply: every sealed id comes back; the one too long to seal stays public.
    reply = reply_to(sent, parsed["Message-ID"], "\r\n ".join(public))
    code, text = await gateway.send_inbound("customer@example.net",
                                            ["alex.morgan@support.example"], reply)
    assert code == 250, text
    delivered = email.message_from_bytes(relay_sink.messages[1].data)
    assert delivered["In-Reply-To"] == LONG_ID
    assert delivered["References"].split() == ["<c0@example.net>", *internal, LONG_ID,
                                               public[-1]]
    assert stored_mappings(gateway) == 0


HOSTILE = {
    "empty": b"",
    "no headers": b"\r\njust a body from Jane Doe\r\n",
    "no From": b"To: customer@example.net\r\nSubject: x\r\n\r\nJane Doe here\r\n",
    "two From": (b"From: Jane Doe <jane.doe@corp.example>\r\nFrom: Other <o@corp.example>\r\n"
                 b"To: c@example.net\r\n\r\nhello\r\n"),
    "8-bit header": "From: José Álvarez <jose.alvarez@corp.example>\r\nSubject: ¿qué?\r\n\r\n"
                    "hola\r\n".encode("utf-8"),
    "unknown charset": (b"From: Jane Doe <jane.doe@corp.example>\r\n"
                        b"Content-Type: text/plain; charset=klingon\r\n\r\nJane Doe\r\n"),
    "broken multipart": (b"From: Jane Doe <jane.doe@corp.example>\r\nMIME-Version: 1.0\r\n"
                         b'Content-Type: multipart/mixed; boundary="b"\r\n\r\n--b\r\n'
                         b"Content-Type: text/plain\r\n\r\nJane Doe +1 555 010 7788\r\n"),
    "deep nesting": (b"From: Jane Doe <jane.doe@corp.example>\r\nMIME-Version: 1.0\r\n"
                     + b"".join(f'Content-Type: multipart/mixed; boundary="b{i}"\r\n\r\n--b{i}\r\n'
                                .encode() for i in range(100))
                     + b"Content-Type: text/plain\r\n\r\nJane Doe\r\n"),
}


@pytest.mark.parametrize("name", sorted(HOSTILE))
async def test_hostile_input_is_rewritten_safely_or_refused(name: str, gateway: RunningGateway,
                                                            relay_sink: Sink) -> None:
    code, text = await gateway.send_outbound("jane.doe@corp.example", ["customer@example.net"],
                                             HOSTILE[name])
    assert code == 250 or 550 <= code < 560, (code, text)
    for received in relay_sink.messages:
        assert leaks_in(received.data, gateway.services.directory,
                        received.mail_from) == ()
        assert b"jane.doe@corp.example" not in received.data.lower()
    # The listener is still there for the next client.
    code, _ = await gateway.send_outbound("jane.doe@corp.example", ["customer@example.net"],
                                          AGENT_MAIL)
    assert code == 250


async def test_spool_next_hop_writes_what_would_be_sent(tmp_path: Path) -> None:
    running = await start_gateway(tmp_path)
    try:
        code, _ = await running.send_outbound("jane.doe@corp.example", ["customer@example.net"],
                                              AGENT_MAIL)
    finally:
        await running.close()
    assert code == 250
    [eml] = (tmp_path / "outbox").glob("*.eml")
    assert b"Jane" not in eml.read_bytes()
    assert eml.with_name(eml.name.replace(".eml", ".envelope.json")).exists()


async def test_processing_over_the_time_limit_answers_451(tmp_path: Path) -> None:
    slow = await start_sink(SinkHandler(data_delay=3.0))
    running = await start_gateway(tmp_path, outbound={"next_hop": slow.url},
                                  limits={"data_timeout_seconds": 1})
    try:
        code, text = await running.send_outbound("jane.doe@corp.example",
                                                 ["customer@example.net"], AGENT_MAIL)
    finally:
        await running.close()
        slow.server.close()
    assert code == 451
    assert "too long" in text
