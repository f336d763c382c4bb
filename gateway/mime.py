"""A MIME tree over the original bytes: parts know their byte spans, so a rewrite replaces
only what changed and every untouched header and part passes through byte for byte.

Parsing never raises: malformed structure degrades to opaque leaves, and anything the parser
had to guess about is recorded in `defects` so callers can treat the message with suspicion.
"""

from __future__ import annotations

import base64
import binascii
import codecs
import quopri
import re
from dataclasses import dataclass, field
from functools import cached_property, lru_cache
from email import policy as email_policy
from email.errors import MessageError
from email.header import decode_header, make_header
from email.message import Message
from email.parser import BytesHeaderParser

MAX_DEPTH = 128
MAX_PARTS = 2000
_HEADER_PARSER = BytesHeaderParser(policy=email_policy.compat32)


@dataclass
class Part:
    """One MIME entity: raw[start:body_start] is its header block, raw[body_start:end] its body."""

    start: int
    body_start: int
    end: int
    fields: list[tuple[str, int, int]]  # (lower-case name, start, end) of each header field
    header_items: list[tuple[str, str]]  # (name, value) of each field as email's compat32 reads it
    depth: int
    children: list[Part] = field(default_factory=list)
    index: str = "1"
    # What email's Message methods say of these headers, filled in by __post_init__ (every
    # part needs them, and a cached_property costs more than the look-up it saves).
    content_type: str = field(init=False)
    charset: str | None = field(init=False)
    boundary: str | tuple[str, str, str] | None = field(init=False)
    transfer_encoding: str = field(init=False)

    def __post_init__(self) -> None:
        self.content_type, self.charset, self.boundary = _content_type_facts(
            self._first("content-type"))
        self.transfer_encoding = _transfer_encoding(self._first("content-transfer-encoding"))

    @cached_property
    def headers(self) -> Message:
        """The header block as email's compat32 parser gives it (built only when asked)."""
        message = Message()
        for name, value in self.header_items:
            message.set_raw(name, value)
        return message

    def _first(self, name: str) -> str | None:
        for field_name, value in self.header_items:
            if field_name.lower() == name:
                return value
        return None

    @property
    def is_multipart(self) -> bool:
        return self.content_type.startswith("multipart/")

    def filename(self) -> str | None:
        return _filename(self._first("content-disposition"), self._first("content-type"))


# What the parts need from their header values, computed by email's own Message methods on a
# message holding just that field (they read only the first such field), once per value.

def _holding(name: str, value: str | None) -> Message:
    message = Message()
    if value is not None:
        message.set_raw(name, value)
    return message


@lru_cache(maxsize=2048)
def _content_type_facts(value: str | None
                        ) -> tuple[str, str | None, str | tuple[str, str, str] | None]:
    """(media type, charset, boundary parameter) of a Content-Type value, as email reads them."""
    message = _holding("Content-Type", value)
    charset = message.get_content_charset()
    boundary = message.get_param("boundary")
    return (message.get_content_type(), str(charset) if charset else None,
            boundary if isinstance(boundary, (str, tuple)) else None)


@lru_cache(maxsize=256)
def _transfer_encoding(value: str | None) -> str:
    return str(_holding("Content-Transfer-Encoding", value).get(
        "content-transfer-encoding", "7bit")).strip().lower()


@lru_cache(maxsize=1024)
def _filename(disposition: str | None, content_type: str | None) -> str | None:
    message = _holding("Content-Disposition", disposition)
    if content_type is not None:
        message.set_raw("Content-Type", content_type)
    try:
        name = message.get_filename()
    except (LookupError, ValueError, TypeError):
        return None
    return decode_words(name) if name else None


@dataclass
class Tree:
    raw: bytes
    root: Part
    defects: list[str]

    def walk(self) -> list[Part]:
        parts: list[Part] = []
        stack = [self.root]
        while stack:
            part = stack.pop()
            parts.append(part)
            stack.extend(reversed(part.children))
        return parts


_NEWLINE = re.compile(rb"\r?\n")


def _header_end(raw: bytes, start: int, end: int) -> tuple[int, int]:
    """(end of header block, start of body) within raw[start:end]: at the first blank line
    (a line end, CRLF or LF, right after another), or the whole of it when there is none."""
    if raw.startswith((b"\r\n", b"\n"), start):
        return start, start + (2 if raw.startswith(b"\r\n", start) else 1)
    # bytes.find is many times quicker than the regular expression, which tries every byte.
    # The first blank line's first LF is the first "\n\r\n" or "\n\n"; the usual CRLF block
    # has a "\n\r\n" at its end, so the search for "\n\n" stops there.
    crlf_blank = raw.find(b"\n\r\n", start, end)
    lf_blank = raw.find(b"\n\n", start, end if crlf_blank == -1 else crlf_blank + 1)
    if lf_blank != -1:
        first_lf, body_start = lf_blank, lf_blank + 2
    elif crlf_blank != -1:
        first_lf, body_start = crlf_blank, crlf_blank + 3
    else:
        return end, end
    return first_lf + 1, body_start


_FIELD_NAME = re.compile(rb"[!-9;-~]+")


def _fields(raw: bytes, start: int, end: int) -> list[tuple[str, int, int]]:
    fields: list[tuple[str, int, int]] = []
    position = start
    for line in raw[start:end].splitlines(keepends=True):
        line_end = position + len(line)
        if fields and line[:1] in (b" ", b"\t"):
            name, field_start, _ = fields[-1]
            fields[-1] = (name, field_start, line_end)
        else:
            raw_name = line.split(b":", 1)[0].strip() if b":" in line else b""
            # Not a field name ("a line: with a colon", 8-bit bytes): a stray line, name "".
            name = raw_name.lower().decode("ascii") if _FIELD_NAME.fullmatch(raw_name) else ""
            fields.append((name, position, line_end))
        position = line_end
    return fields


def parse(raw: bytes) -> Tree:
    defects: list[str] = []
    counter = [0]
    root = _parse_part(raw, 0, len(raw), 0, "1", defects, counter)
    return Tree(raw, root, defects)


def _parse_part(raw: bytes, start: int, end: int, depth: int, index: str,
                defects: list[str], counter: list[int]) -> Part:
    counter[0] += 1
    header_end, body_start = _header_end(raw, start, end)
    fields, items = _header_fields(raw, start, header_end)
    if items is None:
        headers = _HEADER_PARSER.parsebytes(raw[start:header_end] + b"\r\n")
        if headers.defects:
            defects.append(f"part {index}: malformed headers")
        items = list(headers.raw_items())
    part = Part(start, body_start, end, fields, items, depth, index=index)
    if depth >= MAX_DEPTH or counter[0] >= MAX_PARTS:
        if part.is_multipart or part.content_type == "message/rfc822":
            defects.append(f"part {index}: nested too deeply")
        return part
    if part.is_multipart:
        boundary = part.boundary
        if not isinstance(boundary, str) or not boundary:
            defects.append(f"part {index}: multipart without boundary")
            return part
        part.children = _split_multipart(raw, part, boundary.strip('"'), depth, index, defects,
                                         counter)
    elif part.content_type == "message/rfc822" and part.transfer_encoding in ("7bit", "8bit",
                                                                              "binary"):
        part.children = [_parse_part(raw, body_start, end, depth + 1, f"{index}.1", defects,
                                     counter)]
    return part


_PLAIN_FIELD_START = re.compile(rb"[!-9;-~]+:")
# Characters str.splitlines (which email's parser uses) breaks lines at and bytes.splitlines
# does not: a block holding one is left to email's parser.
_OTHER_LINE_BREAKS = tuple(bytes([code]) for code in (0x0B, 0x0C, 0x1C, 0x1D, 0x1E))


def _plain_header_items(raw: bytes, fields: list[tuple[str, int, int]], start: int,
                        end: int) -> list[tuple[str, str]] | None:
    """(name, value) of each field exactly as email's compat32 parser reads them, for a block
    that parser reads without any defect: every line a field or a continuation of one (8-bit
    bytes read as surrogate escapes, as that parser reads them). None for any other block,
    which email's parser then reads (and reports on)."""
    block = raw[start:end]
    if any(char in block for char in _OTHER_LINE_BREAKS):
        return None
    items: list[tuple[str, str]] = []
    for _, field_start, field_end in fields:
        name = _PLAIN_FIELD_START.match(raw, field_start, field_end)
        if name is None:
            return None  # a stray line, a name with spaces, a "From " line: not plain
        text = raw[field_start:field_end].decode("ascii", "surrogateescape")
        colon = name.end() - field_start - 1
        # As compat32's header_source_parse: the value after the colon, left-stripped, with
        # its continuation lines, without the final line end.
        items.append((text[:colon], text[colon + 1:].lstrip(" \t").rstrip("\r\n")))
    return items


def header_fields_in_python(raw: bytes, start: int, end: int
                            ) -> tuple[list[tuple[str, int, int]], list[tuple[str, str]] | None]:
    fields = _fields(raw, start, end)
    return fields, _plain_header_items(raw, fields, start, end)


try:
    # Both readings in one compiled pass (gateway/_wire.c): Python's loop over the lines and
    # fields of each part's header block cost a third of parsing a message.
    from gateway._wire import header_fields as _header_fields
except ImportError:  # no C compiler at install time
    _header_fields = header_fields_in_python


def _delimiters(raw: bytes, boundary: bytes, start: int, end: int) -> list[tuple[int, int, bool]]:
    """(line start, end of line, is closing) of each delimiter line in raw[start:end]."""
    marker = b"--" + boundary
    found: list[tuple[int, int, bool]] = []
    position = raw.find(marker, start, end)
    while position != -1:
        if position == start or raw[position - 1:position] == b"\n":
            after = position + len(marker)
            closing = raw[after:after + 2] == b"--"
            line_end = raw.find(b"\n", after, end)
            line_end = end if line_end == -1 else line_end + 1
            rest = raw[after + (2 if closing else 0):line_end].strip()
            if not rest:
                found.append((position, line_end, closing))
                if closing:
                    break
        position = raw.find(marker, position + len(marker), end)
    return found


def _split_multipart(raw: bytes, part: Part, boundary: str, depth: int, index: str,
                     defects: list[str], counter: list[int]) -> list[Part]:
    children: list[Part] = []
    previous_body: int | None = None
    closed = False
    for line_start, line_end, closing in _delimiters(raw, boundary.encode("utf-8", "replace"),
                                                     part.body_start, part.end):
        if previous_body is not None:
            child_end = line_start
            # The line break before a delimiter belongs to the delimiter (RFC 2046).
            if raw[child_end - 2:child_end] == b"\r\n":
                child_end -= 2
            elif raw[child_end - 1:child_end] == b"\n":
                child_end -= 1
            child_end = max(child_end, previous_body)
            children.append(_parse_part(raw, previous_body, child_end, depth + 1,
                                        f"{index}.{len(children) + 1}", defects, counter))
        if closing:
            closed = True
            break
        previous_body = line_end
    if not closed:
        defects.append(f"part {index}: multipart not closed")
        if previous_body is not None:
            children.append(_parse_part(raw, previous_body, part.end, depth + 1,
                                        f"{index}.{len(children) + 1}", defects, counter))
    if not children:
        defects.append(f"part {index}: multipart without parts")
    return children


# --- decoding ------------------------------------------------------------------------------

def decode_body(raw: bytes, part: Part) -> bytes:
    body = raw[part.body_start:part.end]
    encoding = part.transfer_encoding
    if encoding == "base64":
        cleaned = re.sub(rb"[^A-Za-z0-9+/=]", b"", body)
        cleaned = cleaned.split(b"=")[0]
        cleaned += b"=" * (-len(cleaned) % 4)
        try:
            return base64.b64decode(cleaned)
        except (binascii.Error, ValueError):
            return body
    if encoding == "quoted-printable":
        return quopri.decodestring(body)
    return body


def known_charset(name: str | None) -> str | None:
    if not name:
        return None
    try:
        return codecs.lookup(name).name
    except (LookupError, ValueError):  # unknown, or a NUL inside the name
        return None


def decode_text(data: bytes, charset: str | None) -> tuple[str, bool]:
    """(text, reliable). An unknown or wrong charset falls back to UTF-8, then Latin-1."""
    codec = known_charset(charset)
    if codec:
        try:
            return data.decode(codec), True
        except (UnicodeDecodeError, LookupError):
            pass
    try:
        return data.decode("utf-8"), codec is not None or charset is None
    except UnicodeDecodeError:
        return data.decode("latin-1"), False


def decode_words(value: str) -> str:
    """An RFC 2047 header value as text; never raises. An unknown or wrong charset in an
    encoded word is read as UTF-8, then Latin-1, so the words inside are still seen."""
    if "=?" not in value:
        return value  # no encoded word: email gives the value back as it is
    try:
        return str(make_header(decode_header(value)))
    except (LookupError, ValueError, UnicodeError, binascii.Error, AssertionError,
            MessageError):
        pass
    try:
        chunks = decode_header(value)
    except (ValueError, UnicodeError, binascii.Error, AssertionError, MessageError):
        return value
    pieces: list[str] = []
    for chunk, charset in chunks:
        if isinstance(chunk, str):
            pieces.append(chunk)
        else:
            pieces.append(decode_text(chunk, charset)[0])
    return "".join(pieces)


def encode_qp(text: str, charset: str) -> bytes:
    """Quoted-printable with CRLF line breaks: safe through any 8bit-to-7bit conversion."""
    return _qp_crlf(text.encode(charset))


def qp_crlf_in_python(data: bytes) -> bytes:
    """binascii's quoted-printable (quopri.encodestring) of `data` with its CRLFs read as LF,
    every LF written as CRLF."""
    data = data.replace(b"\r\n", b"\n")
    plain = _plain_qp(data)
    if plain is not None:
        return plain
    return quopri.encodestring(data).replace(b"\n", b"\r\n")


try:
    # The same in one compiled pass (gateway/_wire.c): the Python loop over long lines cost
    # about 0.1 ms a rewritten part, binascii's own encoder more.
    from gateway._wire import encode_qp_crlf as _qp_crlf
except ImportError:  # no C compiler at install time
    _qp_crlf = qp_crlf_in_python


_QP_LITERAL = bytes(code for code in range(0x20, 0x7F) if code != ord("=")) + b"\n"
_QP_LINE = 76  # binascii's MAXLINESIZE


def _plain_qp(data: bytes) -> bytes | None:
    """What quopri.encodestring(data) gives (with CRLF), for text that needs no escape but a
    space before a line end: printable ASCII without "=", no line that is a lone dot, no
    space at the very end. Long lines get soft breaks exactly where binascii puts them: after
    75 characters, the last piece of a line up to 76; a space before a line end becomes =20
    as binascii writes it, after wrapping. None for other text (binascii's loop, which costs
    several times more, encodes it)."""
    if data.translate(None, _QP_LITERAL) or data.endswith(b" "):
        return None
    step = _QP_LINE - 1
    wrapped: list[bytes] = []
    for line in data.split(b"\n"):
        if line == b".":
            return None
        if len(line) > _QP_LINE:
            breaks = (len(line) - 2) // step  # pieces of 75 until at most 76 are left
            line = b"=\r\n".join([line[index:index + step]
                                   for index in range(0, breaks * step, step)] +
                                  [line[breaks * step:]])
        if line.endswith(b" "):
            line = line[:-1] + b"=20"
        wrapped.append(line)
    return b"\r\n".join(wrapped)


def text_charset_for(text: str, original: str | None) -> str:
    codec = known_charset(original)
    if codec:
        try:
            text.encode(codec)
            return original or codec
        except UnicodeEncodeError:
            pass
    return "us-ascii" if text.isascii() else "utf-8"


def header_value(raw: bytes, start: int, end: int) -> str:
    """The unfolded value of the field raw[start:end], as text (8-bit bytes read as UTF-8)."""
    line = raw[start:end]
    _, _, value = line.partition(b":")
    value = _NEWLINE.sub(b"", value).strip()
    try:
        return value.decode("utf-8")
    except UnicodeDecodeError:
        return value.decode("latin-1")



def header_readings(raw: bytes, start: int, end: int) -> list[str]:
    """Every plausible reading of a field's value: one when it is ASCII or valid UTF-8; for
    other 8-bit bytes both Latin-1 and UTF-8 with replacement, as readers differ."""
    line = raw[start:end]
    _, _, value = line.partition(b":")
    value = _NEWLINE.sub(b"", value).strip()
    try:
        return [value.decode("utf-8")]
    except UnicodeDecodeError:
        return [value.decode("latin-1"), value.decode("utf-8", "replace")]


def gaps(part: Part) -> list[tuple[int, int]]:
    """The spans of a multipart body outside its children: preamble, delimiter lines and
    epilogue. Readers that do not understand MIME show them."""
    spans: list[tuple[int, int]] = []
    position = part.body_start
    for child in part.children:
        if child.start > position:
            spans.append((position, child.start))
        position = max(position, child.end)
    if part.end > position:
        spans.append((position, part.end))
    return spans


_MEDIA_TYPE = re.compile(r"[a-z0-9][a-z0-9!#$&^_.+-]*/[a-z0-9][a-z0-9!#$&^_.+-]*")
_BINARY_MAJORS = ("image/", "audio/", "video/", "font/", "model/", "application/")
_TEXTUAL_APPLICATIONS = frozenset({
    "application/ics", "application/vcard", "application/x-vcard", "application/json",
    "application/xml", "application/xhtml+xml", "application/rtf", "application/x-rtf",
    "application/javascript", "application/csv", "application/x-sh"})


def shown_as_text(content_type: str) -> bool:
    """Whether a reader may show a leaf part as text. Binary media types are not; text/*,
    textual application types and any type that is malformed or unknown are (fail closed:
    'text /html' or 'muldtipart/mixed' is still shown by some reader)."""
    if content_type.startswith(("multipart/", "message/rfc822", "message/global")) and \
            _MEDIA_TYPE.fullmatch(content_type):
        return False
    if content_type in _TEXTUAL_APPLICATIONS:
        return True
    return not (_MEDIA_TYPE.fullmatch(content_type) and
                content_type.startswith(_BINARY_MAJORS))


CONTENT_LINE_TYPES = frozenset({"text/calendar", "text/vcard", "text/x-vcard", "text/directory",
                                "application/ics", "application/vcard", "application/x-vcard"})
_FOLD = re.compile(r"\r?\n[ \t]")


def unfold_content_lines(text: str) -> str:
    """vCard/iCalendar lines as an application reads them: folds (break + one space) removed,
    so 'ORGANIZER;CN=Jane\\r\\n  Doe' and addresses split at 75 octets read whole."""
    return _FOLD.sub("", text)
