"""Outbound rewriting: every trace of every agent's real identity becomes that agent's alias.

Pure: bytes in, bytes out (no I/O, no clock; a new Message-ID seals the old one under a key,
random without a key). Work happens on the original bytes through the MIME tree in
gateway/mime.py; only header fields and parts that change are re-encoded (rewritten text parts
as quoted-printable in their own charset when it can hold the alias, else UTF-8), everything
else passes through byte for byte. The output has CRLF line endings whatever the input had.

`rewrite` never raises, on any input (there is no Unrewritable exception): what it cannot
rewrite is left in place for the leak check (gateway/identity/leaks.py), which decodes the final
bytes again and refuses the message. The leak check is the gate; rewriting is best effort.

What replaces what (gateway/identity/patterns.py matches case- and accent-insensitively, on
word edges, Müller/Mueller alike):
- full name, "Surname, Given" and multi-word nicknames -> alias_name; a one-word nickname or
  the first name alone -> the alias's first name; the surname alone -> the alias's surname.
  First or last names that are ordinary words (Mark, Young, Grace) count only capitalised.
- a real address -> alias_address (wherever it stands); its local part alone -> the alias's.
- a phone number in any format (matched on its last nine digits) -> "[number withheld]".
- the signature after "-- ", or a sign-off block ("Kind regards," then the agent's name) ->
  alias_signature; an HTML block whose class or id says signature -> alias_signature.
- inline images named or described as a photo, avatar, headshot or profile, or named after
  the agent, are dropped with the <img> that shows them.
- X-Originating-IP, X-Mailer, User-Agent, Authentication-Results, ARC and DKIM signatures and
  similar client traces are dropped; Received lines naming an internal host or a private
  address become `from internal (internal [127.0.0.1]) by <id_domain>` with the original date;
  a Message-ID from an internal domain becomes `<token@id_domain>`, reported in message_ids;
  the same internal ids in In-Reply-To and References become the same replacements, so a
  follow-up names the ids the customer saw (and threads) rather than internal hosts.

Replacement Message-IDs (gateway/identity/message_ids.py) are stateless: the token is the
internal id itself, encrypted with AES-256-SIV under the message-id key ([outbound]
message_id_key, 64 bytes generated at first start-up, shared by every worker and every instance
relaying for the domain), with fixed associated data, padded to a multiple of 16 bytes
(ISO/IEC 7816-4) and written in lowercase base32. SIV is deterministic, so the same internal id
gets the same token in every message and follow-ups thread for the customer (all a token shows
is that equality and the id's length to 16 bytes); it is authenticated, so a token can be
neither read nor forged, and the inbound side opens the customer's In-Reply-To and References
and puts the internal ids back without a store: nothing is written per message, no table
grows, and any instance with the key can restore any reply. Tokens made before (a keyed hash
whose mapping the store kept) still thread through the store's read-only look-up. An internal
id too long to travel sealed within the line limit gets a keyed hash and loses only the
threading of replies to it. Losing the key costs replies to earlier mail their threading, never
a message; DKIM keys rotate without touching it.
"""

from __future__ import annotations

import html
import ipaddress
import re
import uuid
from dataclasses import dataclass
from functools import lru_cache
from email.header import Header
from email.message import Message
from email.utils import formataddr, getaddresses, parseaddr
from urllib.parse import quote, unquote

from gateway.config import Agent, Directory
from gateway.identity.markup import INLINE_TAG_NAMES, tags_as_read
from gateway.identity.message_ids import MessageIdKey
from gateway.identity.patterns import IdentityPatterns, patterns_for, prepare
from gateway.lineends import crlf
from gateway.mime import (
    CONTENT_LINE_TYPES,
    Part,
    Tree,
    decode_body,
    decode_text,
    decode_words,
    encode_qp,
    gaps,
    header_readings,
    header_value,
    parse,
    shown_as_text,
    text_charset_for,
    unfold_content_lines,
)


@dataclass(frozen=True)
class Rewritten:
    message: bytes
    mail_from: str
    agent: Agent | None
    message_ids: tuple[tuple[str, str], ...]


# Headers that identify the agent's machine, client or session: dropped outright.
DROPPED_HEADERS = frozenset({
    "x-originating-ip", "x-mailer", "user-agent", "x-originating-email", "x-sender",
    "x-authenticated-user", "x-authenticated-sender", "x-ms-exchange-organization-authas",
    "x-ms-exchange-organization-authsource", "x-ms-exchange-organization-authmechanism",
    "x-ms-exchange-organization-originalclientipaddress", "x-client-ip", "x-source-ip",
    "x-get-message-sender-via", "x-authenticated-sender-id", "authentication-results",
    "arc-seal", "arc-message-signature", "arc-authentication-results", "dkim-signature",
    "x-google-dkim-signature", "x-originatororg", "x-ms-exchange-crosstenant-originalarrivaltime",
    "x-ms-exchange-crosstenant-fromentityheader", "x-ms-exchange-crosstenant-id",
    "x-ms-exchange-crosstenant-mailboxtype", "x-ms-exchange-crosstenant-userprincipalname",
    "x-ms-exchange-transport-crosstenantheadersstamped", "x-ms-exchange-messagesentrepresentingtype",
    "thread-index", "x-ms-has-attach", "x-ms-tnef-correlator", "x-ms-publictraffictype",
    "x-forefront-antispam-report", "x-microsoft-antispam", "x-microsoft-antispam-message-info",
    "x-ms-office365-filtering-correlation-id", "x-ms-traffictypediagnostic",
})
ADDRESS_HEADERS = frozenset({
    "from", "sender", "reply-to", "to", "cc", "bcc", "disposition-notification-to",
    "return-receipt-to", "return-path", "errors-to", "resent-from", "resent-sender",
    "resent-to", "resent-cc", "resent-reply-to", "mail-followup-to", "mail-reply-to",
})
# Structure headers whose text is not prose; handled specially or left alone.
# In-Reply-To and References (of the message itself) are handled apart: only internal ids
# change. A Content-ID that names an agent is rewritten like text, and so is its cid: reference.
STRUCTURE_HEADERS = frozenset({"content-transfer-encoding", "mime-version", "date",
                               "in-reply-to", "references"})
THREAD_HEADERS = frozenset({"in-reply-to", "references"})
AVATAR_WORDS = re.compile(r"avatar|headshot|photo|portrait|profile|selfie|picture|foto|"
                          r"gravatar|mugshot|agent[-_ ]?image", re.IGNORECASE)
QUOTE_START = re.compile(r"^(?:>|On .{0,300} wrote:|Le .{0,300} a écrit|El .{0,300} escribió|"
                         r"Am .{0,300} schrieb|-{2,}\s*Original Message|From: )", re.MULTILINE)


def identify_agent(message: bytes, mail_from: str, directory: Directory) -> Agent | None:
    """The sending agent: by envelope sender, From address, or From display name."""
    return _identify(parse(message), mail_from, directory)


def _identify(tree: Tree, mail_from: str, directory: Directory) -> Agent | None:
    if mail_from:
        agent = directory.agent_for_address(mail_from)
        if agent:
            return agent
    for name, start, end in tree.root.fields:
        if name in ("from", "sender"):
            display, address = parseaddr(decode_words(header_value(tree.raw, start, end)))
            agent = directory.agent_for_address(address) or (
                directory.agent_for_display_name(display) if display else None)
            if agent:
                return agent
    return None


def rewrite(message: bytes, mail_from: str, directory: Directory, *,
            internal_domains: tuple[str, ...] = (), id_domain: str = "",
            id_key: MessageIdKey | None = None) -> Rewritten:
    """The message as it may leave: identities replaced, machine traces removed. `id_key`
    seals each internal Message-ID into its replacement (the same every time, and opened
    again on the way in); without it replacements are random."""
    patterns = patterns_for(directory)
    tree = parse(crlf(message))
    agent = _identify(tree, mail_from, directory)
    internal = _internal_domains(directory, internal_domains)
    context = _Context(patterns, agent, internal, id_domain or "veil.invalid", id_key)
    edits: list[tuple[int, int, bytes]] = []
    removed: list[Part] = _avatar_parts(tree, agent)
    removed_ids = {_content_id(part) for part in removed} - {""}
    # The HTML is rewritten before its <img> tags are matched: know the ids in both spellings.
    removed_ids |= {patterns.replace(content_id)[0] for content_id in removed_ids}
    for parent in tree.walk():
        for child in parent.children:
            if child in removed:
                edits.append(_removal_span(tree.raw, parent, child))
    skip = {id(part) for removed_part in removed for part in _subtree(removed_part)}
    for part in tree.walk():
        if id(part) in skip:
            continue
        body_change = None
        if not part.children and shown_as_text(part.content_type):
            body_change = _rewrite_body(tree.raw, part, context, removed_ids)
        header_block = _rewrite_headers(tree.raw, part, context, is_root=part is tree.root,
                                        body_change=body_change)
        if header_block is not None:
            edits.append((part.start, part.body_start, header_block))
        if body_change is not None:
            edits.append((part.body_start, part.end, body_change[0]))
    edits.extend(_rewrite_gaps(tree, context, edits))
    rewritten = _apply(tree.raw, edits)
    new_mail_from = _rewrite_envelope_sender(mail_from, directory)
    return Rewritten(rewritten, new_mail_from, agent, tuple(context.message_ids))


@dataclass
class _Context:
    patterns: IdentityPatterns
    agent: Agent | None
    internal_domains: frozenset[str]
    id_domain: str
    id_key: MessageIdKey | None = None

    def __post_init__(self) -> None:
        self.message_ids: list[tuple[str, str]] = []


def _internal_domains(directory: Directory, configured: tuple[str, ...]) -> frozenset[str]:
    domains = {d.lower() for d in configured}
    for agent in directory.agents:
        domains.update(a.rsplit("@", 1)[1].lower() for a in agent.addresses)
    return frozenset(domains)


def _rewrite_envelope_sender(mail_from: str, directory: Directory) -> str:
    agent = directory.agent_for_address(mail_from) if mail_from else None
    return agent.alias_address if agent else mail_from


def _rewrite_gaps(tree: Tree, context: _Context,
                  edits: list[tuple[int, int, bytes]]) -> list[tuple[int, int, bytes]]:
    """Names in a multipart's preamble or epilogue (shown by readers that do not know MIME)."""
    found: list[tuple[int, int, bytes]] = []
    for part in tree.walk():
        for start, end in gaps(part) if part.children else ():
            data = tree.raw[start:end]
            try:
                text, charset = data.decode("utf-8"), "utf-8"
            except UnicodeDecodeError:
                text, charset = data.decode("latin-1"), "latin-1"
            new_text, hits = context.patterns.replace(text)
            if hits and not any(s < end and start < e for s, e, _ in edits):
                found.append((start, end, new_text.encode(charset, "replace")))
    return found


def _apply(raw: bytes, edits: list[tuple[int, int, bytes]]) -> bytes:
    if not edits:
        return raw
    view = memoryview(raw)  # untouched spans are joined from views: one copy, not two
    pieces: list[bytes | memoryview] = []
    position = 0
    for start, end, replacement in sorted(edits, key=lambda edit: edit[0]):
        if start < position:
            continue  # inside a span already replaced (a removed part)
        pieces.append(view[position:start])
        pieces.append(replacement)
        position = end
    pieces.append(view[position:])
    return b"".join(pieces)


def _subtree(part: Part) -> list[Part]:
    parts = [part]
    for child in part.children:
        parts.extend(_subtree(child))
    return parts


# --- headers -------------------------------------------------------------------------------

def _newline(raw: bytes, part: Part) -> bytes:
    return b"\r\n" if b"\r\n" in raw[part.start:part.body_start + 2] or part.start == \
        part.body_start else b"\n"


def _rewrite_headers(raw: bytes, part: Part, context: _Context, *, is_root: bool,
                     body_change: tuple[bytes, str] | None) -> bytes | None:
    """The part's new header block, or None when nothing changes."""
    newline = _newline(raw, part)
    lines: list[bytes] = []
    changed = False
    saw_cte = False
    for name, start, end in part.fields:
        original = raw[start:end]
        new = _rewrite_field(raw, name, start, end, context, is_root)
        if body_change is not None and name == "content-transfer-encoding":
            new = b"Content-Transfer-Encoding: quoted-printable"
            saw_cte = True
        if body_change is not None and name == "content-type":
            new = _with_charset(new if new is not None else original, body_change[1])
        if new is None:
            lines.append(original)
            continue
        changed = True
        if new:
            lines.append(new.rstrip(b"\r\n") + newline)
    if body_change is not None:
        changed = True
        if not saw_cte:
            lines.append(b"Content-Transfer-Encoding: quoted-printable" + newline)
        if not any(name == "content-type" for name, _, _ in part.fields):
            lines.append(b"Content-Type: text/plain; charset=\"" + body_change[1].encode() +
                         b"\"" + newline)
    if not changed:
        return None
    block = b"".join(line if line.endswith(b"\n") else line + newline for line in lines)
    return block + newline


@lru_cache(maxsize=256)
def _with_charset(field: bytes, charset: str) -> bytes:
    message = Message()
    _, _, value = field.partition(b":")
    message["Content-Type"] = re.sub(r"\s+", " ", value.decode("utf-8", "replace")).strip()
    message.set_param("charset", charset)
    return b"Content-Type: " + str(message["Content-Type"]).encode("utf-8")


def _rewrite_field(raw: bytes, name: str, start: int, end: int, context: _Context,
                   is_root: bool) -> bytes | None:
    """New bytes for one header field; b"" drops it; None keeps it byte for byte."""
    if not name:
        # A line in the header block that is no header field: readers show it somewhere.
        line = raw[start:end].decode("utf-8", "replace")
        return b"" if context.patterns.hits(prepare(decode_words(line))) else None
    if is_root and name in DROPPED_HEADERS:
        return b""
    if is_root and name in THREAD_HEADERS:
        return _replaced_thread_ids(raw[start:end], context)
    if name in STRUCTURE_HEADERS:
        return None
    readings = header_readings(raw, start, end)
    # Of two readings of 8-bit bytes, rewrite the one in which more identity shows.
    value = readings[0] if len(readings) == 1 else \
        max(readings, key=lambda reading: len(context.patterns.hits(prepare(reading))))
    display = raw[start:end].split(b":", 1)[0].decode("ascii", "replace").strip()
    if is_root and name == "received":
        return _anonymised_received(value, context)
    if is_root and name == "message-id":
        return _replaced_message_id(value, context)
    if name in ADDRESS_HEADERS:
        return _rewritten_address_field(context.patterns, display, value)
    if name in ("content-type", "content-disposition"):
        return _rewrite_params(display, value, context)
    text = decode_words(value)
    new_text, hits = context.patterns.replace(text)
    if not hits:
        return None
    return _encode_unstructured(display, new_text)


def _encode_unstructured(display: str, text: str) -> bytes:
    if text.isascii():
        return f"{display}: {text}".encode("ascii", "replace")
    encoded = Header(text, "utf-8", header_name=display).encode(linesep="\r\n")
    return f"{display}: {encoded}".encode("ascii", "replace")


@lru_cache(maxsize=1024)
def _rewritten_address_field(patterns: IdentityPatterns, display: str,
                             value: str) -> bytes | None:
    """_rewrite_addresses, once per field value: an agent's From line is the same in every
    message the agent sends, and parsing addresses costs more than the rest of the field."""
    return _rewrite_addresses(display, value, patterns)


def _rewrite_addresses(display: str, value: str, patterns: IdentityPatterns) -> bytes | None:
    decoded = decode_words(value)
    pairs = getaddresses([decoded])
    changed = False
    rewritten: list[str] = []
    for name, address in pairs:
        agent = patterns.directory.agent_for_address(address) if address else None
        new_address = agent.alias_address if agent else address
        new_name, hits = patterns.replace(name) if name else (name, [])
        if agent and not name:
            new_name = agent.alias_name
        if new_address != address or hits or (agent and not name):
            changed = True
        if not new_address and not new_name:
            continue
        rewritten.append(_format_address(new_name, new_address) if new_address else new_name)
    if not changed:
        # Addresses the parser could not see (garbage) still get the plain text treatment.
        new_text, hits = patterns.replace(decoded)
        return _encode_unstructured(display, new_text) if hits else None
    return _fold_list(display, rewritten)


def _format_address(name: str, address: str) -> str:
    try:
        return formataddr((name, address), charset="utf-8")
    except UnicodeError:
        # An address that is not ASCII (SMTPUTF8, or garbage): keep it, encode only the name.
        if not name:
            return f"<{address}>"
        encoded = name if name.isascii() else Header(name, "utf-8").encode()
        return f"{encoded} <{address}>"


def _fold_list(display: str, items: list[str]) -> bytes:
    line = f"{display}: "
    out: list[str] = []
    for index, item in enumerate(items):
        piece = item + ("," if index < len(items) - 1 else "")
        if len(line) + len(piece) > 76 and line.strip() != f"{display}:":
            out.append(line.rstrip())
            line = " "
        line += piece + " "
    out.append(line.rstrip())
    return "\r\n".join(out).encode("utf-8")


def _rewrite_params(display: str, value: str, context: _Context) -> bytes | None:
    """File names (RFC 2231 or encoded words) in Content-Type / Content-Disposition."""
    if "name" not in value.lower():
        return None  # neither a name nor a filename parameter (nor name*0*=...)
    message = Message()
    message[display] = re.sub(r"\s+", " ", value).strip()
    changed = False
    for param in ("name", "filename"):
        try:
            current = message.get_param(param, header=display)
        except (ValueError, TypeError, LookupError):
            continue
        if current is None:
            continue
        from email.utils import collapse_rfc2231_value
        text = decode_words(collapse_rfc2231_value(current)) if not isinstance(current, str) \
            else decode_words(current)
        new_text, hits = context.patterns.replace(text, filename=True)
        if hits:
            changed = True
            message.set_param(param, new_text if new_text.isascii() else
                              ("utf-8", "", new_text), header=display)  # type: ignore[arg-type]
    if not changed:
        return None
    return f"{display}: {message[display]}".encode()


def _is_private_address(token: str) -> bool:
    try:
        address = ipaddress.ip_address(token.strip("[]").removeprefix("IPv6:"))
    except ValueError:
        return False
    return address.is_private or address.is_loopback or address.is_link_local


def _anonymised_received(value: str, context: _Context) -> bytes | None:
    """A Received line naming internal hosts keeps its date but loses every name and address."""
    lowered = value.lower()
    names_internal = any(domain in lowered for domain in context.internal_domains)
    addresses = re.findall(r"\[?(?:\d{1,3}\.){3}\d{1,3}\]?|\[IPv6:[0-9a-fA-F:.]+\]", value)
    if not names_internal and not any(_is_private_address(a) for a in addresses) \
            and not context.patterns.hits(prepare(decode_words(value))):
        return None
    date = value.rsplit(";", 1)[1].strip() if ";" in value else ""
    line = f"Received: from internal (internal [127.0.0.1]) by {context.id_domain}"
    return (line + (f";\r\n\t{date}" if date else "")).encode("ascii", "replace")


def _needs_new_id(message_id: str, context: _Context) -> bool:
    """An id from an internal host, or one that names an agent."""
    domain = message_id.strip().strip("<>").rpartition("@")[2].lower()
    return any(domain == d or domain.endswith("." + d) for d in context.internal_domains) \
        or bool(context.patterns.hits(prepare(message_id)))


def _public_id(original: str, context: _Context) -> str:
    """The id the world sees for an internal one: the internal id sealed under the key, so the
    same internal id gets the same replacement in every message (threads hold together) and
    only the key opens it."""
    if context.id_key is not None:
        new = context.id_key.public_id(original, context.id_domain)
    else:
        new = f"<{uuid.uuid4().hex}@{context.id_domain}>"
    if (new, original) not in context.message_ids:
        context.message_ids.append((new, original))
    return new


def _replaced_message_id(value: str, context: _Context) -> bytes | None:
    original = value.strip()
    if not _needs_new_id(original, context):
        return None
    return f"Message-ID: {_public_id(original, context)}".encode("ascii")


_MESSAGE_ID = re.compile(r"<[^<>\s]*>")


def _replaced_thread_ids(field: bytes, context: _Context) -> bytes | None:
    """In-Reply-To or References with each internal id replaced as its Message-ID was."""
    text = field.decode("utf-8", "surrogateescape")
    display, _, value = text.partition(":")
    ids = _MESSAGE_ID.findall(value)
    internal = [_needs_new_id(message_id, context) for message_id in ids]
    if not any(internal) or _MESSAGE_ID.sub("", value).strip():
        return None  # nothing internal, or not a plain list of ids (left to the leak check)
    new_ids = [_public_id(message_id, context) if replace_it else message_id
               for message_id, replace_it in zip(ids, internal)]
    folded = "\r\n ".join(new_ids)  # one id per line: long References stay under 998
    return f"{display.strip()}: {folded}".encode("utf-8", "surrogateescape")


# --- bodies --------------------------------------------------------------------------------

def _rewrite_body(raw: bytes, part: Part, context: _Context,
                  removed_ids: set[str]) -> tuple[bytes, str] | None:
    """(new encoded body, charset) for a text part that changes, else None."""
    data = decode_body(raw, part)
    text, _ = decode_text(data, part.charset)
    content_type = part.content_type
    if content_type == "text/html":
        new_text, changed = _rewrite_html(text, context, removed_ids)
    elif content_type in CONTENT_LINE_TYPES:
        unfolded = unfold_content_lines(text)
        # A contact card's PHOTO is a face: it never leaves.
        new_text = _VCARD_PHOTO.sub("", unfolded)
        new_text, hits = context.patterns.replace(new_text)
        new_text = _replace_percent_encoded(new_text, context.patterns)
        changed = bool(hits) or new_text != unfolded
    else:
        new_text, hits = context.patterns.replace(text)
        replaced = _replace_percent_encoded(new_text, context.patterns)
        changed = bool(hits) or replaced != new_text
        new_text = replaced
        if content_type == "text/plain" and context.agent is not None:
            signed = _replace_plain_signature(new_text, context.agent)
            changed = changed or signed != new_text
            new_text = signed
    if not changed:
        return None
    charset = text_charset_for(new_text, part.charset)
    return encode_qp(new_text, _codec(charset)), charset


_VCARD_PHOTO = re.compile(r"^PHOTO[;:][^\r\n]*(?:\r?\n|$)", re.IGNORECASE | re.MULTILINE)
_PERCENT_ESCAPE = re.compile(r"%[0-9A-Fa-f]{2}")
_URL_SEPARATORS = re.compile(r"([\s\"'<>&=?#/:;,]+)")


def _replace_percent_encoded(text: str, patterns: IdentityPatterns) -> str:
    """Identity inside percent-encoded link text (mailto:?subject=Hi%20from%20Jane%20Doe):
    each encoded component is decoded, rewritten and encoded again."""
    if not _PERCENT_ESCAPE.search(text):
        return text
    if len(patterns.hits(prepare(unquote(text)))) <= len(patterns.hits(prepare(text))):
        return text  # the common case: "100%" in a style, nothing hidden behind escapes
    pieces = _URL_SEPARATORS.split(text)
    for index in range(0, len(pieces), 2):
        piece = pieces[index]
        if "%" not in piece:
            continue
        decoded = unquote(piece)
        new, hits = patterns.replace(decoded)
        if hits:
            pieces[index] = quote(new, safe="@.+-_~!*'()")
    return "".join(pieces)


def _codec(charset: str) -> str:
    import codecs
    try:
        return codecs.lookup(charset).name
    except LookupError:
        return "utf-8"


_SIGNATURE_DELIMITER = re.compile(r"^-- ?\r?$", re.MULTILINE)
# Where QUOTE_START and _SIGNATURE_DELIMITER can match: after a line break, before how their
# lines begin (re scans for a literal line break quickly, and tries "^" at every position).
_QUOTE_LINE = re.compile(r"\n(?=>|On |Le |El |Am |--|From: )")
_DELIMITER_LINE = re.compile(r"\n(?=--)")


def _first_line_match(pattern: re.Pattern[str], lines: re.Pattern[str], text: str,
                      end: int) -> re.Match[str] | None:
    """pattern.search(text, 0, end) for a pattern that matches only at the start of the text
    or of a line that `lines` finds: only those places are tried."""
    match = pattern.match(text, 0, end)
    if match:
        return match
    for line in lines.finditer(text, 0, end):
        match = pattern.match(text, line.end(), end)
        if match:
            return match
    return None


def _replace_plain_signature(text: str, agent: Agent) -> str:
    """The block after the first '-- ' line (outside quoted text) becomes the alias signature."""
    quote = _first_line_match(QUOTE_START, _QUOTE_LINE, text, len(text))
    limit = quote.start() if quote else len(text)
    match = _first_line_match(_SIGNATURE_DELIMITER, _DELIMITER_LINE, text, limit)
    if match is None:
        return _replace_sign_off_block(text, agent, limit)
    newline = "\r\n" if "\r\n" in text else "\n"
    signature = agent.alias_signature.replace("\r\n", "\n").replace("\n", newline)
    tail = text[limit:]
    return text[:match.start()] + f"-- {newline}{signature}{newline}" + \
        (newline + tail if tail else "")


_SIGN_OFF = re.compile(
    r"^[ \t]*(?:(?:best|kind|warm|warmest|many|with|all the)[ \t]+)?(?:regards|wishes|thanks|"
    r"thank you|cheers|sincerely|best|greetings|saludos|un saludo|grüße|gruß|cordialement|"
    r"bien à vous|merci)\b[^\r\n]{0,30}\r?\n", re.IGNORECASE | re.MULTILINE)
_BLANK_LINE = re.compile(r"\r?\n[ \t]*\r?\n")


_SIGN_OFF_TAIL_LINES = 32  # lines tried one by one from the end before re scans the rest


def _last_sign_off(text: str, limit: int) -> re.Match[str] | None:
    """The last _SIGN_OFF match in text[:limit]. A match is one whole line, so the lines are
    tried from the end, where a sign-off stands; re scans the text before them only when
    the last lines hold none."""
    line_start = limit
    for _ in range(_SIGN_OFF_TAIL_LINES):
        if line_start == 0:
            return None
        line_start = text.rfind("\n", 0, line_start - 1) + 1
        match = _SIGN_OFF.match(text, line_start, limit)
        if match:
            return match
    earlier = list(_SIGN_OFF.finditer(text, 0, line_start))
    return earlier[-1] if earlier else None


def _replace_sign_off_block(text: str, agent: Agent, limit: int) -> str:
    """'Kind regards,' then a line with the (already rewritten) name: from the name to the end
    of that block (title, phone, links) becomes the alias signature."""
    sign_off = _last_sign_off(text, limit)
    if sign_off is None:
        return text
    start = sign_off.end()
    line_end = text.find("\n", start, limit)
    name_line = text[start:line_end if line_end != -1 else limit].strip().rstrip(",")
    alias_first = agent.alias_name.split()[0]
    if name_line.casefold() not in (agent.alias_name.casefold(), alias_first.casefold()):
        return text
    blank = _BLANK_LINE.search(text, start, limit)
    end = blank.start() if blank else limit
    while end > start and text[end - 1] in "\r\n" and end == limit:
        end -= 1
    newline = "\r\n" if "\r\n" in text else "\n"
    signature = agent.alias_signature.replace("\r\n", "\n").replace("\n", newline)
    return text[:start] + signature + text[end:]


_LETTER_ENTITY = re.compile(r"&(#\d{2,6}|#x[0-9a-fA-F]{2,5}|[A-Za-z][A-Za-z0-9]{1,8});")


def _unescape_letters(markup: str) -> str:
    """Entities that stand for letters become the letters, so names are seen and replaced."""
    def letter(match: re.Match[str]) -> str:
        char = html.unescape(match.group())
        return char if len(char) == 1 and char.isalpha() else match.group()
    return _LETTER_ENTITY.sub(letter, markup)


_BLOCK_OPEN = re.compile(r"<(div|table|td|p|span|section)\b[^<>]*>", re.IGNORECASE)
_SIGNATURE_ATTRIBUTE = re.compile(r"\b(?:class|id)\s*=\s*[\"']?[^\"'<>]*signature",
                                  re.IGNORECASE)
_IMG = re.compile(r"<img\b[^<>]*>", re.IGNORECASE)


def _rewrite_html(markup: str, context: _Context, removed_ids: set[str]) -> tuple[str, bool]:
    original = markup
    markup = _unescape_letters(markup)
    markup, _ = context.patterns.replace(markup, style="html")
    markup = _replace_split_names(markup, context.patterns)
    markup = _replace_percent_encoded(markup, context.patterns)
    if context.agent is not None:
        markup = _replace_html_signature(markup, context.agent)

    def keep_image(match: re.Match[str]) -> str:
        tag = match.group()
        source = re.search(r"src\s*=\s*[\"']?cid:([^\"'\s>]+)", tag, re.IGNORECASE)
        if source and source.group(1).strip("<>") in removed_ids:
            return ""
        return "" if AVATAR_WORDS.search(tag) else tag

    if not markup.isascii() or "<img" in markup.lower():  # (re's case rules beyond ASCII)
        markup = _IMG.sub(keep_image, markup)
    return markup, markup != original


_TAG_NAME = re.compile(r"</?([A-Za-z][A-Za-z0-9]*)")


def _visible_map(markup: str) -> tuple[str, list[tuple[int, int]]]:
    """HTML as a reader sees it, each visible character with its span in the markup.

    Inline tags vanish ('Ja<b>ne</b>' reads 'Jane'), other tags and comments read as a space,
    entities as the character they stand for. Linear in the size of the markup."""
    chars: list[str] = []
    spans: list[tuple[int, int]] = []
    position, size = 0, len(markup)
    while position < size:
        if markup[position] == "<":
            if markup.startswith("<!--", position):
                close = markup.find("-->", position + 4)
                end = size if close == -1 else close + 3
            else:
                close = markup.find(">", position + 1)
                if close == -1:
                    break
                end = close + 1
            name = _TAG_NAME.match(markup, position)
            if name is None or name.group(1).lower() not in INLINE_TAG_NAMES:
                chars.append(" ")
                spans.append((position, position))
            position = end
        elif markup[position] == "&":
            semicolon = markup.find(";", position + 1, position + 12)
            entity = html.unescape(markup[position:semicolon + 1]) if semicolon != -1 else ""
            if len(entity) == 1:
                chars.append(entity)
                spans.append((position, semicolon + 1))
                position = semicolon + 1
            else:
                chars.append("&")
                spans.append((position, position + 1))
                position += 1
        else:
            chars.append(markup[position])
            spans.append((position, position + 1))
            position += 1
    return "".join(chars), spans


def _cheap_visible_text(markup: str) -> str:
    return html.unescape(tags_as_read(markup))


def _replace_split_names(markup: str, patterns: IdentityPatterns) -> str:
    """Names a reader sees although tags split them ('<b>Ja</b>ne Doe'): the replacement goes
    where the name starts, the rest of its letters are removed, the tags stay."""
    if not patterns.hits(prepare(_cheap_visible_text(markup))):
        return markup  # the common case: no name hides behind tags
    visible, spans = _visible_map(markup)
    hits = patterns.hits(prepare(visible)) if len(prepare(visible)) == len(visible) else \
        patterns.hits(visible)
    if not hits:
        return markup
    edits: list[tuple[int, int, str]] = []
    for hit in hits:
        replacement = html.escape(hit.replacement, quote=False)
        if visible[hit.start:hit.end].isupper() and hit.kind == "name":
            replacement = replacement.upper()
        first = True
        for start, end in spans[hit.start:hit.end]:
            if start == end:
                continue
            edits.append((start, end, replacement if first else ""))
            first = False
    pieces: list[str] = []
    position = 0
    for start, end, text in sorted(edits):
        pieces.append(markup[position:start])
        pieces.append(text)
        position = end
    pieces.append(markup[position:])
    return "".join(pieces)


def _replace_html_signature(markup: str, agent: Agent) -> str:
    if markup.isascii() and "signature" not in markup.lower():
        return markup  # no class or id can say signature (beyond ASCII, re's case rules differ)
    match = next((tag for tag in _BLOCK_OPEN.finditer(markup)
                  if _SIGNATURE_ATTRIBUTE.search(tag.group())), None)
    if match is None:
        return markup
    tag = match.group(1).lower()
    depth, position = 1, match.end()
    token = re.compile(rf"<(/?){tag}\b[^<>]*>", re.IGNORECASE)
    while depth:
        found = token.search(markup, position)
        if found is None:
            return markup
        depth += -1 if found.group(1) else 1
        position = found.end()
        close_start = found.start()
    signature = "<br>".join(html.escape(line) for line in agent.alias_signature.splitlines())
    return markup[:match.end()] + signature + markup[close_start:]


# --- avatars -------------------------------------------------------------------------------

def _content_id(part: Part) -> str:
    return str(part.headers.get("content-id", "")).strip().strip("<>")


def _avatar_parts(tree: Tree, agent: Agent | None) -> list[Part]:
    """Images that show a person: named or described as a photo, or named after an agent."""
    found: list[Part] = []
    patterns = None
    for part in tree.walk():
        if part is tree.root or not part.content_type.startswith("image/"):
            continue
        described = " ".join(filter(None, [part.filename() or "",
                                           str(part.headers.get("content-description", "")),
                                           str(part.headers.get("content-location", "")),
                                           _content_id(part)]))
        if AVATAR_WORDS.search(described):
            found.append(part)
            continue
        if agent is not None:
            patterns = patterns or patterns_for(Directory((agent,)))
            if patterns.hits(prepare(re.sub(r"[-_.]", " ", described))):
                found.append(part)
    return found


def _removal_span(raw: bytes, parent: Part, child: Part) -> tuple[int, int, bytes]:
    """From the delimiter line before `child` to the end of its body."""
    boundary = str(parent.boundary or "").strip('"').encode()
    delimiter = raw.rfind(b"--" + boundary, parent.body_start, child.start)
    start = delimiter if delimiter != -1 else child.start
    if raw[start - 2:start] == b"\r\n":
        start -= 2
    elif raw[start - 1:start] == b"\n":
        start -= 1
    return start, child.end, b""
