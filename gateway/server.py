"""aiosmtpd handlers for both listeners. SMTP replies are decided here (through replies.py).

The handlers do the I/O around the pure pipeline stages: they read the envelope, call the
stages, write to the quarantine store and hand mail to the next hop. Every failure path
answers 4xx (the client keeps the message and retries) or 5xx (refused); 250 is given only
after the next hop accepted the message or the quarantine store wrote it durably.
"""

from __future__ import annotations

import asyncio
import ipaddress
import logging
import time
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from typing import Any, Awaitable, Callable

from aiosmtpd.smtp import SMTP, Envelope as SmtpEnvelope, Session

from gateway import inbound, metrics, replies
from gateway.protocol import ConnectionCount, VeilSMTP, smuggling_attempt
from gateway.auth.dkim import DkimResult, DnsTxtLookup, verify_dkim
from gateway.auth.results import authentication_results, strip_forged_results
from gateway.config import Config, Directory
from gateway.dsn import failure_notice
from gateway.envelope import Envelope, Outcome, Quarantined, Refused, Relayed, Retry
from gateway.eventlog import log_message
from gateway.identity.message_ids import MessageIdKey
from gateway.outbound import HoldLeak, MessageSigner, prepare_outbound
from gateway.quarantine.store import QuarantineStore, StoreUnavailable
from gateway.relay import deliver
from gateway.rules.engine import RuleSet, Verdict, judge

log = logging.getLogger("veil.server")

# Parsing and matching are CPU-bound: above this size they run in a worker thread so one large
# message does not stall every other connection on the event loop.
OFF_LOOP_BYTES = 256 * 1024
# Kept below aiosmtpd's idle timeout and Postfix's smtp_data_done_timeout (600 s).
PROCESSING_LIMIT_SECONDS = 240.0
DKIM_DNS_SECONDS = 10.0

Deliver = Callable[[str, Envelope, bytes], Awaitable[Relayed | Retry | Refused]]


@dataclass
class Services:
    """What the listeners share: parsed once at start-up, never re-read."""

    config: Config
    directory: Directory
    store: QuarantineStore
    message_id_key: MessageIdKey  # seals replacement Message-IDs; one key for every worker
    signer: MessageSigner | None = None
    ruleset: RuleSet | None = None
    dkim_lookup: DnsTxtLookup | None = None
    clock: Callable[[], datetime] = field(default=lambda: datetime.now(timezone.utc))


def _sender(address: str) -> str:
    """aiosmtpd reports MAIL FROM:<> as "<>"; the null sender is the empty string."""
    return "" if address in ("<>", "") else address


def _domain(address: str) -> str:
    return address.rpartition("@")[2].lower().rstrip(".")


async def _cpu(function: Callable[..., Any], size: int, *args: Any) -> Any:
    if size > OFF_LOOP_BYTES:
        return await asyncio.to_thread(function, *args)
    return function(*args)


class _Handler:
    direction = ""

    def __init__(self, services: Services) -> None:
        self.services = services
        self.config = services.config

    async def handle_exception(self, error: Exception) -> str:
        # aiosmtpd would answer 500 (a bounce); a bug of ours must make the client retry.
        log.exception("unexpected error in %s listener", self.direction)
        return replies.INTERNAL_ERROR

    async def handle_RCPT(self, server: SMTP, session: Session, envelope: SmtpEnvelope,
                          address: str, rcpt_options: list[str]) -> str:
        if len(envelope.rcpt_tos) >= self.config.limits.max_recipients:
            return replies.TOO_MANY_RECIPIENTS
        refusal = self.refuse_recipient(address)
        if refusal:
            return refusal
        envelope.rcpt_tos.append(address)
        return "250 2.1.5 OK"

    def refuse_recipient(self, address: str) -> str | None:
        return None

    async def handle_DATA(self, server: SMTP, session: Session, envelope: SmtpEnvelope) -> str:
        raw = envelope.original_content or b""
        message_envelope = Envelope(
            mail_from=_sender(envelope.mail_from or ""),
            rcpt_tos=tuple(envelope.rcpt_tos),
            mail_options=tuple(envelope.mail_options),
            client_address=str(session.peer[0]) if session.peer else "",
            helo=session.host_name or "",
        )
        started = time.monotonic()
        if smuggling_attempt(raw):
            answer = replies.reply(550, "5.5.2", "bare CR or LF around '.' refused "
                                   "(SMTP smuggling)")
            log_message(direction=self.direction, reply=answer, seconds=0.0, size=len(raw),
                        verdict="refused")
            return answer
        try:
            # In this task: wait_for would start another task for every message.
            async with asyncio.timeout(min(PROCESSING_LIMIT_SECONDS,
                                           self.config.limits.data_timeout_seconds)):
                outcome, details = await self.process(raw, message_envelope)
        except TimeoutError:
            outcome, details = Retry("processing took too long", 451, "4.3.0"), {}
        except StoreUnavailable as error:
            outcome, details = Retry(f"quarantine store unavailable: {error}", 451, "4.3.0"), {}
        except Exception:
            log.exception("unexpected error processing %s message", self.direction)
            outcome, details = Retry("internal error", 451, "4.3.0"), {}
        answer = replies.for_outcome(outcome)
        elapsed = time.monotonic() - started
        metrics.observe(self.direction, details.get("verdict", _kind(outcome)), elapsed,
                        next_hop_error=isinstance(outcome, Retry) and details.get("relay_failed"))
        log_message(direction=self.direction, reply=answer, seconds=elapsed,
                    size=len(raw), recipients=len(message_envelope.rcpt_tos), **details)
        return answer

    async def process(self, raw: bytes, envelope: Envelope) -> tuple[Outcome, dict[str, Any]]:
        raise NotImplementedError


def _kind(outcome: Outcome) -> str:
    return type(outcome).__name__.lower()


async def finish_partial(outcome: Relayed | Retry | Refused, envelope: Envelope, message: bytes,
                         next_hop: str, tls: str, reporting_host: str) -> Outcome:
    """One DATA reply covers every recipient, so a next hop that took only some needs care.

    Some deferred (4xx): answer 451 so the client retries the whole transaction; recipients
    that already accepted may see a duplicate, never a loss. Some refused for good (5xx): the
    sender gets a bounce for those, and 250 is given only once the bounce itself was accepted.
    """
    if not isinstance(outcome, Relayed) or not outcome.refused:
        return outcome
    if any(code < 500 for code, _ in outcome.refused.values()):
        return Retry("next hop deferred some recipients", 451, "4.3.0")
    if not envelope.mail_from:
        return outcome  # never bounce a bounce
    notice = failure_notice(envelope.mail_from, outcome.refused, message, reporting_host)
    bounced = await deliver(next_hop, Envelope("", (envelope.mail_from,)), notice, tls=tls)
    if isinstance(bounced, Relayed):
        return outcome
    return Retry("next hop refused some recipients and the bounce could not be sent", 451, "4.3.0")


class OutboundHandler(_Handler):
    """Helpdesk -> internet: rewrite, leak check, sign, relay."""

    direction = "outbound"

    def client_allowed(self, session: Session) -> bool:
        if session.authenticated:
            return True
        networks = self.config.outbound.allow_from
        if not session.peer:
            return False
        try:
            address = ipaddress.ip_address(str(session.peer[0]).split("%")[0])
        except ValueError:
            return False
        return any(address in ipaddress.ip_network(net, strict=False) for net in networks)

    async def handle_MAIL(self, server: SMTP, session: Session, envelope: SmtpEnvelope,
                          address: str, mail_options: list[str]) -> str:
        if not self.client_allowed(session):
            return replies.CLIENT_NOT_ALLOWED
        envelope.mail_from = address
        envelope.mail_options.extend(mail_options)
        return "250 2.1.0 OK"

    async def process(self, raw: bytes, envelope: Envelope) -> tuple[Outcome, dict[str, Any]]:
        services = self.services
        if services.signer is None:
            return Retry("no DKIM key loaded", 451, "4.3.0"), {}
        plan = await _cpu(prepare_outbound, len(raw), raw, envelope, services.directory,
                          services.signer, self.config.outbound, self.config.dkim.domain,
                          services.message_id_key)
        if isinstance(plan, Refused):
            return plan, {"verdict": "refused"}
        if isinstance(plan, HoldLeak):
            held = await asyncio.to_thread(
                services.store.hold, raw, envelope, direction="outbound", verdict="leak",
                score=0.0, matches=[{"rule": "identity-leak", "category": "leak", "score": 0.0,
                                     "excerpt": "", "where": leak.where} for leak in plan.leaks],
                reason=plan.reason, agent_alias=plan.agent_alias)
            return Quarantined(held, plan.reason), {"verdict": "held", "agent": plan.agent_alias,
                                                    "quarantine_id": held}
        outcome = await deliver(self.config.outbound.next_hop, plan.envelope, plan.message,
                                tls=self.config.outbound.tls)
        details = {"verdict": "relayed" if isinstance(outcome, Relayed) else _kind(outcome),
                   "agent": plan.agent_alias, "relay_failed": not isinstance(outcome, Relayed),
                   "next_hop": _next_hop_summary(outcome)}
        return await finish_partial(outcome, plan.envelope, plan.message,
                                    self.config.outbound.next_hop, self.config.outbound.tls,
                                    self.config.dkim.domain), details


def _next_hop_summary(outcome: Outcome) -> str:
    if isinstance(outcome, Relayed):
        refused = ", ".join(f"{code}" for code, _ in outcome.refused.values())
        return f"250 ({len(outcome.accepted)} accepted{', refused: ' + refused if refused else ''})"
    return getattr(outcome, "reason", "")


class InboundHandler(_Handler):
    """Internet -> helpdesk: authenticate, judge, quarantine or route to the real agent."""

    direction = "inbound"

    async def handle_MAIL(self, server: SMTP, session: Session, envelope: SmtpEnvelope,
                          address: str, mail_options: list[str]) -> str:
        envelope.mail_from = address
        envelope.mail_options.extend(mail_options)
        return "250 2.1.0 OK"

    def refuse_recipient(self, address: str) -> str | None:
        if _domain(address) not in self.config.inbound.domains:
            return replies.RELAYING_DENIED
        if self.services.directory.agent_for_alias(address) is None:
            return replies.UNKNOWN_RECIPIENT
        return None

    async def authenticate(self, message: bytes) -> tuple[DkimResult, ...]:
        lookup = self.services.dkim_lookup
        if lookup is None:
            return ()
        try:
            return await asyncio.wait_for(verify_dkim(message, lookup), DKIM_DNS_SECONDS)
        except asyncio.TimeoutError:
            return (DkimResult("temperror", "", "", "DNS lookups took too long"),)

    async def process(self, raw: bytes, envelope: Envelope) -> tuple[Outcome, dict[str, Any]]:
        services, policy = self.services, self.config.inbound
        message = strip_forged_results(raw, policy.authserv_id)
        dkim_results = await self.authenticate(message)
        auth_header = authentication_results(policy.authserv_id, dkim_results)
        assert services.ruleset is not None
        verdict: Verdict = await _cpu(judge, len(message), message, services.ruleset,
                                      self.config.rules.quarantine_score)
        sender = envelope.mail_from.lower()
        blocked = bool(sender) and await asyncio.to_thread(services.store.is_blocked, sender)
        if verdict.action == "quarantine" or blocked:
            return await self.quarantine(message, envelope, verdict, auth_header, blocked)
        delivered = inbound.with_trace_headers(
            inbound.restore_threading(message, await self.thread_originals(message)),
            [("Authentication-Results", auth_header.split(":", 1)[1].strip()),
             ("X-Veil-Verdict", f"deliver; score={verdict.score:g}")])
        routed = inbound.route(envelope, services.directory)
        outcome = await deliver(policy.next_hop, routed, delivered, tls=policy.tls)
        outcome = await finish_partial(outcome, routed, delivered, policy.next_hop, policy.tls,
                                       self.config.dkim.domain)
        return outcome, {"verdict": "delivered" if isinstance(outcome, Relayed)
                                   else _kind(outcome), "score": verdict.score,
                                   "relay_failed": not isinstance(outcome, Relayed),
                                   "next_hop": _next_hop_summary(outcome)}

    async def thread_originals(self, message: bytes) -> dict[str, str]:
        """The internal id behind each replacement named in In-Reply-To and References: opened
        from the id itself, else (a mapping written before ids were sealed) from the store."""
        key, id_domain = self.services.message_id_key, self.config.dkim.domain
        originals: dict[str, str] = {}
        for message_id in inbound.thread_ids(message):
            original = key.original_id(message_id, id_domain)
            if original is None:
                original = await asyncio.to_thread(self.services.store.original_message_id,
                                                   message_id)
            if original:
                originals[message_id] = original
        return originals

    async def quarantine(self, message: bytes, envelope: Envelope, verdict: Verdict,
                         auth_header: str, blocked: bool) -> tuple[Outcome, dict[str, Any]]:
        services, policy = self.services, self.config.inbound
        reason = verdict.reason if verdict.action == "quarantine" else ""
        if blocked:
            reason = "; ".join(filter(None, [reason, "sender is blocked"]))
        matches = [{"rule": m.rule, "category": m.category, "score": m.score,
                    "excerpt": m.excerpt, "where": m.where} for m in verdict.matches]
        aliases = sorted({agent.alias_name for r in envelope.rcpt_tos
                          if (agent := services.directory.agent_for_alias(r))})
        held = await asyncio.to_thread(
            services.store.hold, message, envelope, direction="inbound", verdict="quarantine",
            score=verdict.score, matches=matches, reason=reason,
            auth_results=auth_header, agent_alias=", ".join(aliases))
        sender = envelope.mail_from.lower()
        if sender and not blocked:
            since = services.clock() - timedelta(hours=policy.repeat_offender_window_hours)
            count = await asyncio.to_thread(services.store.held_from_since, sender, since)
            if count >= policy.repeat_offender_count:
                await asyncio.to_thread(services.store.mark_repeat_offender, sender)
        details = {"verdict": "quarantined", "score": verdict.score, "quarantine_id": held,
                   "agent": ", ".join(aliases)}
        if policy.on_quarantine == "reject":
            return Refused("message refused by content policy", 550, "5.7.1"), details
        return Quarantined(held, reason), details


def smtp_factory(handler: _Handler, config: Config, **tls: Any) -> Callable[[], SMTP]:
    """A protocol factory for loop.create_server, with Veil's limits applied."""
    connections = ConnectionCount(config.limits.max_connections)

    def build() -> SMTP:
        return VeilSMTP(handler, connections=connections,
                        data_size_limit=config.limits.max_message_size, enable_SMTPUTF8=True,
                        decode_data=False, hostname="veil", ident="Veil ESMTP",
                        timeout=config.limits.command_timeout_seconds, **tls)
    return build
