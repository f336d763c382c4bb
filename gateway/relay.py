"""Next-hop delivery: `spool:DIR` writes .eml files, `smtp://host:port` relays with aiosmtplib.

The answer of the next hop becomes a typed outcome (Relayed, Retry, Refused); the server maps
outcomes to SMTP replies. Nothing here answers 250 on its own: a spool file counts as accepted
only after it is fsynced and renamed into place.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import ssl
import time
import uuid

from collections.abc import Iterator
from pathlib import Path

import aiosmtplib

from gateway.envelope import Envelope, Refused, Relayed, Retry
from gateway.lineends import only_crlf

NEXT_HOP_TIMEOUT = 60.0
_PASSED_OPTIONS = ("BODY=", "SMTPUTF8")


async def deliver(next_hop: str, envelope: Envelope, message: bytes, *,
                  tls: str = "none") -> Relayed | Retry | Refused:
    """Hand the message to the next hop and report what it said, per recipient."""
    if next_hop.startswith("spool:"):
        try:
            await asyncio.to_thread(write_spool, Path(next_hop[len("spool:"):]), envelope, message)
        except OSError as error:
            return Retry(f"spool not writable: {error.strerror or error}", 451, "4.3.0")
        return Relayed(accepted=envelope.rcpt_tos)
    host, _, port = next_hop[len("smtp://"):].rpartition(":")
    return await _deliver_smtp(host.strip("[]"), int(port), envelope, message, tls)


def write_spool(folder: Path, envelope: Envelope, message: bytes) -> Path:
    """Write the message as an .eml file (the exact bytes) and its envelope beside it, durably."""
    folder.mkdir(parents=True, exist_ok=True)
    name = f"{time.strftime('%Y%m%dT%H%M%S')}-{uuid.uuid4().hex[:12]}"
    sidecar = {"mail_from": envelope.mail_from, "rcpt_tos": list(envelope.rcpt_tos)}
    envelope_file = folder / f"{name}.envelope.json"
    _write_durably(envelope_file, json.dumps(sidecar).encode())
    target = folder / f"{name}.eml"
    try:
        _write_durably(target, message)
    except OSError:
        envelope_file.unlink(missing_ok=True)  # no envelope without its message
        raise
    directory_fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(directory_fd)
    finally:
        os.close(directory_fd)
    return target


def _write_durably(path: Path, data: bytes) -> None:
    temporary = path.with_name(f".{path.name}.tmp")
    try:
        with open(temporary, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temporary, path)
    except OSError:
        temporary.unlink(missing_ok=True)  # a full disk leaves no partial file behind
        raise


def _tls_context() -> ssl.SSLContext:
    return ssl.create_default_context()


async def _deliver_smtp(host: str, port: int, envelope: Envelope, message: bytes,
                        tls: str) -> Relayed | Retry | Refused:
    client = aiosmtplib.SMTP(hostname=host, port=port, timeout=NEXT_HOP_TIMEOUT,
                             start_tls=False, local_hostname="veil")
    try:
        await client.connect()
        await client.ehlo()
        if tls != "none":
            if client.supports_extension("starttls"):
                context = _tls_context()
                if tls == "opportunistic":  # encrypt whatever the certificate says
                    context.check_hostname = False
                    context.verify_mode = ssl.CERT_NONE
                await client.starttls(tls_context=context)
                await client.ehlo()
            elif tls == "required":
                return Retry("next hop does not offer STARTTLS and tls is required", 451, "4.7.0")
        options = [o for o in envelope.mail_options if o.upper().startswith(_PASSED_OPTIONS)]
        if not client.supports_extension("8bitmime"):
            options = [o for o in options if not o.upper().startswith("BODY=")]
        if not client.supports_extension("smtputf8"):
            options = [o for o in options if o.upper() != "SMTPUTF8"]
        await client.mail(envelope.mail_from, options=options)
        accepted: list[str] = []
        refused: dict[str, tuple[int, str]] = {}
        for recipient in envelope.rcpt_tos:
            try:
                await client.rcpt(recipient)
                accepted.append(recipient)
            except aiosmtplib.SMTPRecipientRefused as error:
                refused[recipient] = (error.code, error.message)
        if not accepted:
            await _quit_quietly(client)
            return _all_refused(refused)
        await _send_data(client, message)
        await _quit_quietly(client)
        return Relayed(accepted=tuple(accepted), refused=refused)
    except aiosmtplib.SMTPResponseException as error:
        return _from_reply(error.code, error.message)
    except (aiosmtplib.SMTPException, OSError, asyncio.TimeoutError) as error:
        return Retry(f"next hop unavailable: {type(error).__name__}: {error}", 451, "4.4.1")
    finally:
        client.close()


async def _send_data(client: aiosmtplib.SMTP, message: bytes) -> None:
    """DATA, the message written in dot-stuffed pieces of itself, and the final reply.

    aiosmtplib's own data() builds three whole new copies of the message (line endings,
    dot-stuffing, end marker): for a 50 MB message, most of the gateway's memory."""
    response = await client.execute_command(b"DATA")
    if response.code != 354:
        raise aiosmtplib.SMTPDataError(response.code, response.message)
    protocol = client.protocol
    if protocol is None:
        raise aiosmtplib.SMTPServerDisconnected("connection lost")
    for piece in transparent_pieces(message):
        protocol.write(piece)
    response = await protocol.read_response(timeout=NEXT_HOP_TIMEOUT)
    if response.code != 250:
        raise aiosmtplib.SMTPDataError(response.code, response.message)


_ANY_LINE_END = re.compile(rb"\r\n|\n|\r")


def transparent_pieces(message: bytes) -> Iterator[bytes | memoryview]:
    """The message as SMTP DATA sends it (RFC 5321 4.5.2): CRLF line ends, a dot doubled at
    the start of a line, the final ".". Views into the message, not copies of it."""
    if not only_crlf(message):
        message = _ANY_LINE_END.sub(b"\r\n", message)  # bare CR or LF: rare, so copying is fine
    view = memoryview(message)
    start = 0
    if message.startswith(b"."):
        yield b"."
    dot = message.find(b"\r\n.")
    while dot >= 0:
        yield view[start:dot + 2]
        yield b"."
        start = dot + 2
        dot = message.find(b"\r\n.", start)
    yield view[start:]
    yield b".\r\n" if message.endswith(b"\r\n") or not message else b"\r\n.\r\n"


async def _quit_quietly(client: aiosmtplib.SMTP) -> None:
    try:
        await client.quit()
    except (aiosmtplib.SMTPException, OSError, asyncio.TimeoutError):
        pass


def _from_reply(code: int, text: str) -> Retry | Refused:
    if 500 <= code < 600:
        return Refused(f"next hop refused: {code} {text}", code, _status(text, "5.0.0"))
    return Retry(f"next hop deferred: {code} {text}", 451 if code < 400 else code,
                 _status(text, "4.0.0"))


def _all_refused(refused: dict[str, tuple[int, str]]) -> Retry | Refused:
    """Every recipient refused: permanent only when every refusal was permanent."""
    if all(500 <= code < 600 for code, _ in refused.values()):
        code, text = next(iter(refused.values()))
        return Refused(f"next hop refused every recipient: {code} {text}", code,
                       _status(text, "5.1.1"))
    code, text = next((c, t) for c, t in refused.values() if c < 500)
    return Retry(f"next hop deferred recipients: {code} {text}", code, _status(text, "4.0.0"))


def _status(text: str, default: str) -> str:
    """The enhanced status code at the start of a reply text, if any (RFC 3463)."""
    first = text.split(" ", 1)[0]
    parts = first.split(".")
    if len(parts) == 3 and all(p.isdigit() for p in parts) and first[0] in "245":
        return first
    return default
