"""Digests to reviewers and notices to agents: content-free, through the inbound next hop."""

from __future__ import annotations

from pathlib import Path

from gateway.config import load_config
from gateway.envelope import Envelope
from gateway.quarantine.digest import send_digest
from gateway.quarantine.store import QuarantineStore

from conftest import start_sink, write_config

SECRET = b"Subject: private words\r\n\r\nsend me a pic of you, the secret phrase is xyzzy\r\n"


async def test_digest_lists_new_holds_without_content_and_notifies_the_agent(
        tmp_path: Path) -> None:
    sink = await start_sink()
    try:
        config = load_config(write_config(
            tmp_path, inbound={"next_hop": sink.url},
            review={"digest_to": ["compliance@corp.example"], "notify_agent": True}))
        store = QuarantineStore.open(config.quarantine.database)
        first = store.hold(SECRET, Envelope("creep@example.net", ("alex.morgan@support.example",)),
                           direction="inbound", verdict="quarantine", score=10,
                           matches=[{"rule": "en-photo-request", "category": "contact-request",
                                     "score": 10, "excerpt": "[[pic of you]]", "where": "body"}],
                           reason="score 10 >= 10")
        newest = await send_digest(store, config, after_id=0)
        assert newest == first
        digest, notice = sink.messages
        assert digest.rcpt_tos == ["compliance@corp.example"]
        assert f"#{first}".encode() in digest.data and b"creep@example.net" in digest.data
        assert b"contact-request" in digest.data
        assert notice.rcpt_tos == ["jane.doe@corp.example"]
        for message in (digest, notice):
            assert b"xyzzy" not in message.data and b"pic of you" not in message.data
        assert b"creep@example.net" not in notice.data
        assert await send_digest(store, config, after_id=newest) == newest
        assert len(sink.messages) == 2  # nothing new, nothing sent
        store.close()
    finally:
        sink.server.close()
