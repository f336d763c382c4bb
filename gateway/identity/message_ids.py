"""Replacement Message-IDs that carry their original, sealed, so threading needs no store.

`public_id` encrypts an internal Message-ID with AES-256-SIV (deterministic authenticated
encryption) and writes the result as the local part of `<token@id_domain>`; `original_id`
opens such a token again. Both are pure. The key lives in a file of 64 random bytes that every
instance relaying for the same domain must share (`load_message_id_key`,
`ensure_message_id_key`); see gateway/identity/rewrite.py for the design.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import os
import re
import tempfile
from pathlib import Path

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESSIV

from gateway.config import ConfigError

KEY_BYTES = 64  # AES-256-SIV: one 256-bit key for the MAC, one for the cipher
CONFIG_KEY = "outbound.message_id_key"
# Changing it (or the padding, or the encoding) orphans every token already sent: a new
# scheme takes a new label, and the old one stays readable beside it.
_ASSOCIATED_DATA = [b"veil message-id v1"]
_BLOCK = 16  # lengths leak only to the nearest 16 bytes
_TAG_BYTES = 16
# A whole replacement `<token@id_domain>` stays at most this long, so "In-Reply-To: " or
# "References: " and one id per line stay well under the 998 octets a line may have.
MAX_PUBLIC_ID = 900
_HASH_BYTES = 20  # 32 base32 characters; no multiple of 16, so never taken for a sealed token
_TOKEN = re.compile(r"[a-z2-7]+")


def _base32(data: bytes) -> str:
    """Lowercase RFC 4648 base32 without '=': letters and digits only, a valid dot-atom."""
    return base64.b32encode(data).decode("ascii").rstrip("=").lower()


def _pad(data: bytes) -> bytes:
    """ISO/IEC 7816-4: 0x80, then zeros up to a whole block (always at least the 0x80)."""
    return data + b"\x80" + b"\0" * (-(len(data) + 1) % _BLOCK)


def _unpad(padded: bytes) -> bytes | None:
    data = padded.rstrip(b"\0")
    if not data.endswith(b"\x80") or len(padded) - len(data) >= _BLOCK:
        return None
    return data[:-1]


class MessageIdKey:
    """The secret that seals internal Message-IDs into public ones and opens them again."""

    __slots__ = ("_hash_key", "_siv")

    def __init__(self, secret: bytes) -> None:
        if len(secret) != KEY_BYTES:
            raise ValueError(f"a message-id key is {KEY_BYTES} bytes, not {len(secret)}")
        self._siv = AESSIV(secret)
        # Its own key for the keyed hash of over-long ids: one secret, never two uses.
        self._hash_key = hmac.new(secret, b"veil long message-id v1", hashlib.sha256).digest()

    def __repr__(self) -> str:
        return "MessageIdKey(<secret>)"

    @classmethod
    def random(cls) -> MessageIdKey:
        """A throwaway key (for a preview, or a test): its ids open nowhere else."""
        return cls(os.urandom(KEY_BYTES))

    def public_id(self, original: str, id_domain: str) -> str:
        """`<token@id_domain>`: the same original gives the same id every time (threads hold);
        without the key it can be neither read nor forged."""
        data = original.encode("utf-8", "surrogateescape")
        public = f"<{_base32(self._siv.encrypt(_pad(data), _ASSOCIATED_DATA))}@{id_domain}>"
        if len(public) <= MAX_PUBLIC_ID:
            return public
        # An original of more than ~530 bytes (real ones are under 100) cannot travel sealed
        # within the line limit. It gets a keyed hash: still the same every time and
        # unreadable, but a reply to it reaches the helpdesk unthreaded. A stored mapping
        # would keep its threading, at the price of a write on the outbound path (and a 451
        # when the store is down) that holds on one instance only, where the sealed ids hold
        # on every instance sharing the key; and leaving the id in place would name the
        # internal host. Threading of such a message is all it costs, never the message.
        digest = hmac.new(self._hash_key, data, hashlib.sha256).digest()[:_HASH_BYTES]
        return f"<{_base32(digest)}@{id_domain}>"

    def original_id(self, public: str, id_domain: str) -> str | None:
        """The original sealed in `public`, or None: an id of another domain, a token this
        key did not make (another key, an earlier keyed hash), or one altered on the way."""
        text = public.strip()
        if not (text.startswith("<") and text.endswith(">")):
            return None
        token, at, domain = text[1:-1].rpartition("@")
        if not at or domain.lower().rstrip(".") != id_domain.lower().rstrip("."):
            return None
        token = token.lower()  # base32 has one letter per value whatever the case
        if not _TOKEN.fullmatch(token) or len(token) > MAX_PUBLIC_ID:
            return None
        try:
            sealed = base64.b32decode(token.upper() + "=" * (-len(token) % 8))
        except (binascii.Error, ValueError):
            return None
        # Spare bits in the last character would let several spellings name one token.
        if len(sealed) < _TAG_BYTES + _BLOCK or len(sealed) % _BLOCK or _base32(sealed) != token:
            return None
        try:
            padded = self._siv.decrypt(sealed, _ASSOCIATED_DATA)
        except InvalidTag:
            return None
        data = _unpad(padded)
        return None if data is None else data.decode("utf-8", "surrogateescape")


# --- the key file ---------------------------------------------------------------------------

_KEEP_IT = ("every instance relaying for this domain must use the same file; losing it costs "
            "replies to earlier mail their threading, never a message")


def load_message_id_key(path: Path) -> MessageIdKey:
    """The key in `path`; raises ConfigError naming the file, the key and the fix."""
    try:
        secret = path.read_bytes()
    except FileNotFoundError:
        raise ConfigError(path, CONFIG_KEY, "message-id key file not found",
                          "start `veil serve`, which creates it, or restore the file you kept "
                          f"({_KEEP_IT})") from None
    except OSError as error:
        raise ConfigError(path, CONFIG_KEY, f"cannot read the key ({error.strerror})",
                          "make the file readable by the user running veil") from error
    if len(secret) != KEY_BYTES:
        raise ConfigError(path, CONFIG_KEY,
                          f"holds {len(secret)} bytes where a message-id key is {KEY_BYTES}",
                          "restore the file you kept, or remove it so that a new key is made "
                          f"at start-up ({_KEEP_IT})")
    return MessageIdKey(secret)


def ensure_message_id_key(path: Path) -> MessageIdKey:
    """The key in `path`, made first (64 random bytes, mode 0600) if there is none yet.

    Called once at start-up, before workers fork, so they all hold the one key."""
    if not path.exists():
        try:
            _create_key_file(path)
        except OSError as error:
            raise ConfigError(path, CONFIG_KEY,
                              f"cannot create the message-id key ({error.strerror})",
                              "point message_id_key at a writable folder (with systemd, under "
                              "/var/lib/veil) or create the file there: 64 random bytes, mode "
                              "0600") from error
    return load_message_id_key(path)


def _create_key_file(path: Path) -> None:
    """Written in full under a temporary name, then linked into place: a reader never sees
    half a key, and of two processes starting at once the first key stays (a rename would
    replace it under the first one's feet)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    descriptor, temporary = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)  # 0600
    try:
        with os.fdopen(descriptor, "wb") as handle:
            handle.write(os.urandom(KEY_BYTES))
            handle.flush()
            os.fsync(handle.fileno())
        try:
            os.link(temporary, path)
        except FileExistsError:
            return
        folder = os.open(path.parent, os.O_RDONLY)
        try:
            os.fsync(folder)  # the name too survives a power cut
        finally:
            os.close(folder)
    finally:
        os.unlink(temporary)
