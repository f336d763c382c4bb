"""Value types every stage shares: the envelope, and the typed outcomes the server turns into replies."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class Envelope:
    """The SMTP envelope. An empty mail_from is the null sender of bounces (MAIL FROM:<>)."""

    mail_from: str
    rcpt_tos: tuple[str, ...]
    mail_options: tuple[str, ...] = ()
    client_address: str = ""
    helo: str = ""


@dataclass(frozen=True)
class Relayed:
    """The next hop accepted the message for these recipients; others were refused there."""

    accepted: tuple[str, ...]
    refused: dict[str, tuple[int, str]] = field(default_factory=dict)


@dataclass(frozen=True)
class Retry:
    """A temporary failure: the client keeps the message and tries again (4xx)."""

    reason: str
    code: int = 451
    status: str = "4.3.0"


@dataclass(frozen=True)
class Refused:
    """A permanent refusal (5xx): the client must not try again with the same message."""

    reason: str
    code: int = 550
    status: str = "5.7.0"


@dataclass(frozen=True)
class Quarantined:
    """Durably stored in the quarantine under this id."""

    quarantine_id: int
    reason: str = ""


Outcome = Relayed | Retry | Refused | Quarantined
