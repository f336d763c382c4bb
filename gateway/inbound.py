"""The inbound pipeline's pure steps: route aliases to agents, restore threading, add trace headers.

The customer's bytes stay as written; Veil only prepends trace headers and puts back the
Message-IDs that the outbound side replaced, so replies thread in the helpdesk.
"""

from __future__ import annotations

import re
from dataclasses import replace

from gateway.config import Directory
from gateway.envelope import Envelope

_THREAD_HEADER = re.compile(rb"^(in-reply-to|references):", re.IGNORECASE)
# Up to a whole line's worth: sealed replacement ids run to 900 characters (message_ids.py).
_MESSAGE_ID = re.compile(rb"<[^<>\s]{1,996}>")


def route(envelope: Envelope, directory: Directory) -> Envelope:
    """Alias recipients become the agent's real address; other recipients stay as they are."""
    routed: list[str] = []
    for recipient in envelope.rcpt_tos:
        agent = directory.agent_for_alias(recipient)
        address = agent.addresses[0] if agent else recipient
        if address not in routed:
            routed.append(address)
    return replace(envelope, rcpt_tos=tuple(routed))


def split_head(message: bytes) -> tuple[bytes, bytes]:
    """Header block (with its final line break) and the rest, for either line-ending style."""
    for separator in (b"\r\n\r\n", b"\n\n"):
        index = message.find(separator)
        if index != -1:
            cut = index + len(separator) // 2
            return message[:cut], message[cut:]
    return message, b""


def header_fields(head: bytes) -> list[bytes]:
    """Header fields with their continuation lines kept together, bytes unchanged."""
    fields: list[bytes] = []
    for line in head.splitlines(keepends=True):
        if fields and line[:1] in (b" ", b"\t"):
            fields[-1] += line
        else:
            fields.append(line)
    return fields


def _text(message_id: bytes) -> str:
    # surrogateescape: an 8-bit id keeps its bytes through the look-up and back.
    return message_id.decode("utf-8", "surrogateescape")


def thread_ids(message: bytes) -> tuple[str, ...]:
    """Message-IDs named in In-Reply-To and References."""
    head, _ = split_head(message)
    found: list[str] = []
    for field in header_fields(head):
        if _THREAD_HEADER.match(field):
            found.extend(_text(m) for m in _MESSAGE_ID.findall(field))
    return tuple(dict.fromkeys(found))


def restore_threading(message: bytes, originals: dict[str, str]) -> bytes:
    """Put back the original Message-IDs in In-Reply-To and References; every other id stays
    byte for byte."""
    if not originals:
        return message

    def original(match: re.Match[bytes]) -> bytes:
        found = originals.get(_text(match.group()))
        return match.group() if found is None else found.encode("utf-8", "surrogateescape")

    head, body = split_head(message)
    fields = header_fields(head)
    for index, field in enumerate(fields):
        if _THREAD_HEADER.match(field):
            fields[index] = _MESSAGE_ID.sub(original, field)
    return b"".join(fields) + body


def with_trace_headers(message: bytes, headers: list[tuple[str, str]]) -> bytes:
    """Prepend trace headers, using the message's own line ending."""
    newline = b"\r\n" if b"\r\n" in message[:4096] or not message else b"\n"
    block = b"".join(f"{name}: {value}".encode("utf-8") + newline for name, value in headers)
    return block + message
