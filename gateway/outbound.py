"""The outbound pipeline: identify the agent, rewrite, leak check, DKIM sign.

Pure: bytes and an envelope in, a plan (or a refusal) out. The server and `veil rewrite` both
call `prepare_outbound`, so the CLI prints exactly what the listener would send.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Protocol

from gateway.config import Directory, OutboundConfig
from gateway.envelope import Envelope, Refused
from gateway.identity.leaks import Leak, leaks_in
from gateway.identity.message_ids import MessageIdKey
from gateway.identity.rewrite import rewrite


class MessageSigner(Protocol):
    def sign(self, message: bytes) -> bytes: ...


@dataclass(frozen=True)
class Send:
    """Relay these signed bytes with this envelope."""

    message: bytes
    envelope: Envelope
    agent_alias: str


@dataclass(frozen=True)
class HoldLeak:
    """Identity would leak and policy says keep it for review rather than refuse."""

    leaks: tuple[Leak, ...]
    agent_alias: str
    reason: str


def describe_leaks(leaks: tuple[Leak, ...]) -> str:
    places = sorted({f"{leak.kind} in {leak.where}" for leak in leaks})
    return "identity would leak: " + "; ".join(places[:5]) + (" ..." if len(places) > 5 else "")


def prepare_outbound(raw: bytes, envelope: Envelope, directory: Directory,
                     signer: MessageSigner, policy: OutboundConfig, id_domain: str,
                     id_key: MessageIdKey) -> Send | HoldLeak | Refused:
    """Every outbound message goes through here, in this order; DKIM signing is last.
    Internal Message-IDs leave sealed under `id_key` as `<token@id_domain>`: nothing to store."""
    rewritten = rewrite(raw, envelope.mail_from, directory,
                        internal_domains=policy.internal_domains, id_domain=id_domain,
                        id_key=id_key)
    if rewritten.agent is None and policy.unknown_sender == "reject":
        return Refused("sender is not a known agent", 550, "5.7.1")
    alias = rewritten.agent.alias_name if rewritten.agent else ""
    leaks = leaks_in(rewritten.message, directory, rewritten.mail_from)
    if leaks:
        reason = describe_leaks(leaks)
        if policy.on_leak == "hold":
            return HoldLeak(leaks, alias, reason)
        return Refused(reason, 550, "5.7.0")
    signed = signer.sign(rewritten.message)
    return Send(signed, replace(envelope, mail_from=rewritten.mail_from), alias)
