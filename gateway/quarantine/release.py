"""Releasing a held message: the original bytes to the original (real) recipients.

The message goes to the inbound next hop as it arrived (plus the trace headers the listener
adds to delivered mail), never through the rules again. It is marked released only once the
next hop accepted every recipient; anything less leaves it held and says why.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

from gateway.config import Config, load_directory
from gateway.envelope import Relayed
from gateway.inbound import route, with_trace_headers
from gateway.quarantine.store import QuarantineStore
from gateway.relay import deliver


@dataclass(frozen=True)
class ReleaseResult:
    ok: bool
    message: str


async def release(store: QuarantineStore, config: Config, message_id: int, *,
                  reviewer: str) -> ReleaseResult:
    held = await asyncio.to_thread(store.get, message_id)
    if held is None:
        return ReleaseResult(False, f"no quarantined message {message_id}")
    if held.status != "held":
        return ReleaseResult(False, f"message {message_id} is {held.status}, not held")
    if held.direction != "inbound":
        return ReleaseResult(False, f"message {message_id} is an outbound message held for an "
                                    "identity leak; fix it at the helpdesk and send it again")
    raw = await asyncio.to_thread(store.raw, message_id)
    envelope = await asyncio.to_thread(store.envelope, message_id)
    if raw is None or envelope is None:
        return ReleaseResult(False, f"message {message_id} has no content left")
    routed = route(envelope, load_directory(config.directory_path))
    message = with_trace_headers(raw, [
        *([("Authentication-Results", held.auth_results.split(":", 1)[1].strip())]
          if held.auth_results.startswith("Authentication-Results:") else []),
        ("X-Veil-Verdict", f"released by {reviewer}; score={held.score:g}")])
    outcome = await deliver(config.inbound.next_hop, routed, message, tls=config.inbound.tls)
    if isinstance(outcome, Relayed) and not outcome.refused:
        changed = await asyncio.to_thread(store.set_status, message_id, "released")
        await asyncio.to_thread(store.audit, reviewer, "release", "ok" if changed else "raced",
                                message_id=message_id)
        return ReleaseResult(changed, f"released {message_id} to {len(outcome.accepted)} "
                                      "recipient(s)" if changed else
                             f"message {message_id} changed while it was being released")
    if isinstance(outcome, Relayed):
        refused = "; ".join(f"{r}: {c} {t}" for r, (c, t) in outcome.refused.items())
        reason = f"partial delivery, still held: {refused}"
    else:
        reason = f"delivery failed, still held: {outcome.reason}"
    await asyncio.to_thread(store.audit, reviewer, "release", "failed", message_id=message_id,
                            detail=reason)
    return ReleaseResult(False, reason)
