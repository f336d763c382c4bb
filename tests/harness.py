"""A gateway running in the test's event loop: real listeners on loopback port 0, a real
quarantine store in a temp folder, a real DKIM key, a message-id key made as `serve` makes it,
and DNS answered from a dict."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import aiosmtplib
from conftest import write_config

from gateway.auth.dkim import generate_key, load_signer
from gateway.config import Config, load_config, load_directory
from gateway.identity.message_ids import ensure_message_id_key
from gateway.quarantine.store import QuarantineStore
from gateway.rules.engine import load_ruleset
from gateway.server import InboundHandler, OutboundHandler, Services, smtp_factory


def public_key_record(private_key: Path) -> str:
    from gateway.auth.dkim import dns_txt_record
    record = dns_txt_record("support.example", "veil", private_key.read_bytes())
    # The zone-file form splits the value in quoted strings; DNS clients see them joined.
    return "".join(part for part in record.split('"')[1::2])


@dataclass
class RunningGateway:
    config: Config
    services: Services
    outbound_port: int
    inbound_port: int
    servers: list[asyncio.base_events.Server]
    dns: dict[str, str]

    async def send(self, port: int, sender: str, recipients: list[str],
                   message: bytes) -> tuple[int, str]:
        """Send one message; return the final reply (code, text), whatever it is."""
        client = aiosmtplib.SMTP(hostname="127.0.0.1", port=port, start_tls=False, timeout=30)
        await client.connect()
        try:
            await client.ehlo()
            await client.mail(sender)
            for recipient in recipients:
                await client.rcpt(recipient)
            response = await client.data(message)
            return response.code, response.message
        except aiosmtplib.SMTPResponseException as error:
            return error.code, error.message
        except aiosmtplib.SMTPRecipientsRefused as error:
            return error.recipients[0].code, error.recipients[0].message
        finally:
            try:
                await client.quit()
            except aiosmtplib.SMTPException:
                client.close()

    async def send_outbound(self, sender: str, recipients: list[str],
                            message: bytes) -> tuple[int, str]:
        return await self.send(self.outbound_port, sender, recipients, message)

    async def send_inbound(self, sender: str, recipients: list[str],
                           message: bytes) -> tuple[int, str]:
        return await self.send(self.inbound_port, sender, recipients, message)

    async def close(self) -> None:
        for server in self.servers:
            server.close()
            await server.wait_closed()
        self.services.store.close()


async def start_gateway(folder: Path, **sections: dict[str, Any]) -> RunningGateway:
    config = load_config(write_config(folder, **sections))
    if not config.dkim.private_key.exists():  # a gateway restarted in the same folder keeps it
        generate_key(config.dkim.private_key)
    dns = {"veil._domainkey.support.example": public_key_record(config.dkim.private_key)}

    async def lookup(name: str) -> str | None:
        return dns.get(name.rstrip("."))

    services = Services(
        config=config,
        directory=load_directory(config.directory_path),
        store=QuarantineStore.open(config.quarantine.database),
        message_id_key=ensure_message_id_key(config.outbound.message_id_key),
        signer=load_signer(config.dkim),
        ruleset=load_ruleset(config.rules.paths),
        dkim_lookup=lookup,
    )
    return await serve_services(services, dns)


async def serve_services(services: Services, dns: dict[str, str]) -> RunningGateway:
    loop = asyncio.get_running_loop()
    config = services.config
    outbound = await loop.create_server(smtp_factory(OutboundHandler(services), config),
                                        "127.0.0.1", 0)
    inbound = await loop.create_server(smtp_factory(InboundHandler(services), config),
                                       "127.0.0.1", 0)
    return RunningGateway(config, services, outbound.sockets[0].getsockname()[1],
                          inbound.sockets[0].getsockname()[1], [outbound, inbound], dns)


async def send_through(services: Services, dns: dict[str, str], sender: str,
                       recipients: list[str], message: bytes) -> tuple[int, str]:
    """Start listeners for these services, send one outbound message, stop them."""
    running = await serve_services(services, dns)
    try:
        return await running.send_outbound(sender, recipients, message)
    finally:
        for server in running.servers:
            server.close()


def with_policy(gateway: RunningGateway, **outbound: Any) -> Services:
    """The same services with other outbound policy values (for one listener in a test)."""
    config = replace(gateway.config, outbound=replace(gateway.config.outbound, **outbound))
    return replace(gateway.services, config=config)
