"""Every SMTP reply Veil gives, decided here from typed outcomes and nowhere else."""

from __future__ import annotations

from enum import IntEnum

from gateway.envelope import Outcome, Quarantined, Refused, Relayed, Retry


class Code(IntEnum):
    OK = 250
    TEMPORARY = 451
    TOO_MANY_RECIPIENTS = 452
    REFUSED = 550
    TOO_BIG = 552
    TRANSACTION_FAILED = 554


def reply(code: int, status: str, text: str) -> str:
    """One reply line; CR and LF in the text are flattened so a reason cannot inject lines."""
    flat = " ".join(text.replace("\r", " ").replace("\n", " ").split())
    return f"{code} {status} {flat}"[:510]


OK = reply(Code.OK, "2.0.0", "OK")
RELAYING_DENIED = reply(Code.REFUSED, "5.7.1", "relaying denied")
CLIENT_NOT_ALLOWED = reply(Code.REFUSED, "5.7.1", "client not allowed to send through this gateway")
UNKNOWN_RECIPIENT = reply(Code.REFUSED, "5.1.1", "no such alias here")
TOO_MANY_RECIPIENTS = reply(Code.TOO_MANY_RECIPIENTS, "4.5.3", "too many recipients")
INTERNAL_ERROR = reply(Code.TEMPORARY, "4.3.0", "internal error, try again later")
BAD_ADDRESS = reply(501, "5.1.7", "bad address syntax")


def for_outcome(outcome: Outcome) -> str:
    """The DATA reply for a pipeline outcome."""
    match outcome:
        case Relayed(accepted=accepted):
            return reply(Code.OK, "2.0.0", f"relayed to {len(accepted)} recipient(s)")
        case Quarantined(quarantine_id=quarantine_id):
            return reply(Code.OK, "2.0.0", f"accepted as {quarantine_id}")
        case Retry(reason=reason, code=code, status=status):
            return reply(code if 400 <= code < 500 else Code.TEMPORARY, status, reason)
        case Refused(reason=reason, code=code, status=status):
            return reply(code if 500 <= code < 600 else Code.REFUSED, status, reason)
    raise TypeError(f"not an outcome: {outcome!r}")
