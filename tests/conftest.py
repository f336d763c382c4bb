"""Shared fixtures: a real SMTP sink on loopback, and a configured gateway in a temp folder."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, AsyncIterator

import pytest
from aiosmtpd.smtp import SMTP, Envelope as SmtpEnvelope, Session

ROOT = Path(__file__).resolve().parent.parent


@dataclass
class Received:
    mail_from: str
    rcpt_tos: list[str]
    data: bytes


@dataclass
class SinkHandler:
    """Records every message; `answers` makes chosen recipients or DATA fail on purpose."""

    messages: list[Received] = field(default_factory=list)
    rcpt_answers: dict[str, str] = field(default_factory=dict)
    data_answer: str | None = None
    data_delay: float = 0.0

    async def handle_RCPT(self, server: SMTP, session: Session, envelope: SmtpEnvelope,
                          address: str, options: list[str]) -> str:
        if address in self.rcpt_answers:
            return self.rcpt_answers[address]
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: SMTP, session: Session, envelope: SmtpEnvelope) -> str:
        if self.data_delay:
            await asyncio.sleep(self.data_delay)
        if self.data_answer:
            return self.data_answer
        self.messages.append(Received(envelope.mail_from, list(envelope.rcpt_tos),
                                      envelope.original_content or b""))
        return "250 2.0.0 queued"


@dataclass
class Sink:
    handler: SinkHandler
    server: asyncio.base_events.Server
    port: int

    @property
    def messages(self) -> list[Received]:
        return self.handler.messages

    @property
    def url(self) -> str:
        return f"smtp://127.0.0.1:{self.port}"


async def start_sink(handler: SinkHandler | None = None) -> Sink:
    handler = handler or SinkHandler()
    loop = asyncio.get_running_loop()
    server = await loop.create_server(
        lambda: SMTP(handler, decode_data=False, enable_SMTPUTF8=True), "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    return Sink(handler, server, port)


@pytest.fixture
async def sink() -> AsyncIterator[Sink]:
    running = await start_sink()
    yield running
    running.server.close()
    await running.server.wait_closed()


def write_config(folder: Path, **sections: dict[str, Any]) -> Path:
    """A config.toml in `folder` with the example directory; sections override keys."""
    import tomllib  # noqa: F401  (the file must stay valid TOML; load_config checks it)

    base: dict[str, dict[str, Any]] = {
        "outbound": {"listen": "127.0.0.1:0", "next_hop": "spool:outbox",
                     "internal_domains": ["corp.example"]},
        "inbound": {"listen": "127.0.0.1:0", "next_hop": "spool:inbox",
                    "domains": ["support.example"]},
        "directory": {"path": str(ROOT / "agents.toml")},
        "dkim": {"domain": "support.example", "selector": "veil", "private_key": "dkim.key"},
        "rules": {"paths": [str(ROOT / "rules")], "quarantine_score": 10},
        "quarantine": {"database": "quarantine.sqlite3"},
        "review": {"listen": "127.0.0.1:0"},
    }
    for name, values in sections.items():
        base.setdefault(name, {}).update(values)
    lines: list[str] = []
    for name, values in base.items():
        lines.append(f"[{name}]")
        for key, value in values.items():
            lines.append(f"{key} = {_toml(value)}")
        lines.append("")
    path = folder / "config.toml"
    path.write_text("\n".join(lines))
    return path


def _toml(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return str(value)
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(_toml(v) for v in value) + "]"
    return '"' + str(value).replace("\\", "\\\\").replace('"', '\\"') + '"'
