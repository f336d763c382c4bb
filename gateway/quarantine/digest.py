"""Notifications: a digest of newly held messages for reviewers, and a content-free notice
to the agent, both sent through the inbound next hop."""

from __future__ import annotations

import asyncio
import time
import uuid
from email.utils import formatdate

from gateway.config import Config, load_directory
from gateway.envelope import Envelope, Relayed
from gateway.quarantine.store import Held, QuarantineStore
from gateway.relay import deliver


def digest_message(held: list[Held], recipients: tuple[str, ...], domain: str) -> bytes:
    """Ids, senders, categories and scores only: never the content of a held message."""
    lines = [f"#{h.id}  {h.mail_from or '<>'}  {','.join(h.categories) or h.verdict}  "
             f"score {h.score:g}" for h in held]
    body = (f"{len(held)} message(s) newly held for review:\r\n\r\n" + "\r\n".join(lines)
            + "\r\n\r\nReview them on the desk or with `veil quarantine list`.\r\n")
    return (f"From: Veil <veil@{domain}>\r\nTo: {', '.join(recipients)}\r\n"
            f"Subject: Veil: {len(held)} message(s) held for review\r\n"
            f"Date: {formatdate(time.time())}\r\nMessage-ID: <{uuid.uuid4().hex}@{domain}>\r\n"
            f"Auto-Submitted: auto-generated\r\nMIME-Version: 1.0\r\n"
            f"Content-Type: text/plain; charset=utf-8\r\n\r\n{body}").encode("utf-8")


def agent_notice(agent_address: str, count: int, domain: str) -> bytes:
    return (f"From: Veil <veil@{domain}>\r\nTo: <{agent_address}>\r\n"
            f"Subject: A message to you was held for review\r\n"
            f"Date: {formatdate(time.time())}\r\nMessage-ID: <{uuid.uuid4().hex}@{domain}>\r\n"
            f"Auto-Submitted: auto-generated\r\nMIME-Version: 1.0\r\n"
            f"Content-Type: text/plain; charset=utf-8\r\n\r\n"
            f"{count} message(s) addressed to you were held by the compliance team for review. "
            f"You do not need to do anything.\r\n").encode("utf-8")


async def send_digest(store: QuarantineStore, config: Config, after_id: int) -> int:
    """Send what was held after `after_id`; return the newest id covered."""
    held = [h for h in await asyncio.to_thread(store.list, status="held", limit=500)
            if h.id > after_id and h.direction == "inbound"]
    if not held:
        return after_id
    domain = config.dkim.domain
    if config.review.digest_to:
        outcome = await deliver(config.inbound.next_hop,
                                Envelope("", config.review.digest_to),
                                digest_message(held, config.review.digest_to, domain),
                                tls=config.inbound.tls)
        if not isinstance(outcome, Relayed):
            return after_id  # try again next time
    if config.review.notify_agent:
        directory = load_directory(config.directory_path)
        per_agent: dict[str, int] = {}
        for item in held:
            for recipient in item.rcpt_tos:
                agent = directory.agent_for_alias(recipient)
                if agent:
                    per_agent[agent.addresses[0]] = per_agent.get(agent.addresses[0], 0) + 1
        for address, count in per_agent.items():
            await deliver(config.inbound.next_hop, Envelope("", (address,)),
                          agent_notice(address, count, domain), tls=config.inbound.tls)
    return max(h.id for h in held)


async def digest_loop(store: QuarantineStore, config: Config) -> None:
    if not config.review.digest_to and not config.review.notify_agent:
        return
    newest = max((h.id for h in await asyncio.to_thread(store.list, status=None, limit=1)),
                 default=0)
    while True:
        await asyncio.sleep(config.review.digest_interval_minutes * 60)
        try:
            newest = await send_digest(store, config, newest)
        except Exception:  # the store or next hop may be down; the next round retries
            pass
