"""Shared helpers for the identity tests: the corpus directory and an independent decoder.

The decoder is the standard library's `email` package with `policy.default`, not our own MIME
code, so a test that finds no identity in its output is not just agreeing with itself.
"""

from __future__ import annotations

import email
import re
import unicodedata
from email import policy
from email.message import EmailMessage
from pathlib import Path

from gateway.config import Directory, load_directory

CORPUS = Path(__file__).resolve().parent / "corpus" / "outbound"


def corpus_directory() -> Directory:
    return load_directory(CORPUS / "agents.toml")


def decoded_view(message: bytes) -> str:
    """Everything a recipient's mail reader could show: decoded headers, every text part in
    its charset, file names, parameters; binary parts are left out."""
    parsed = email.message_from_bytes(message, policy=policy.default)
    assert isinstance(parsed, EmailMessage)
    pieces: list[str] = []
    for part in parsed.walk():
        for name, value in part.items():
            pieces.append(f"{name}: {value}")
        filename = part.get_filename()
        if filename:
            pieces.append(filename)
        if part.is_multipart():
            continue
        if part.get_content_maintype() == "text":
            payload = part.get_payload(decode=True)
            assert isinstance(payload, bytes)
            charset = part.get_content_charset() or "us-ascii"
            try:
                pieces.append(payload.decode(charset, "replace"))
            except LookupError:
                pieces.append(payload.decode("utf-8", "replace"))
    return "\n".join(pieces)


def folded(text: str) -> str:
    decomposed = unicodedata.normalize("NFKD", text)
    return "".join(c for c in decomposed if not unicodedata.combining(c)).casefold()


def contains_word(haystack: str, needle: str) -> bool:
    """Case- and accent-insensitive search for `needle` on word edges, any whitespace between
    its words (text wraps)."""
    words = [re.escape(word) for word in folded(needle).split()]
    return re.search(r"(?<!\w)" + r"\s+".join(words) + r"(?!\w)", folded(haystack)) is not None


def digits(text: str) -> str:
    return "".join(c for c in text if c.isdigit())
