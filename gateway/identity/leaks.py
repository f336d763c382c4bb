"""The fail-closed gate: does any agent's real identity remain in the final bytes?

Decodes everything a recipient could see once more, independently of the rewrite: every header
(encoded words and RFC 2231 file names included), every text part in any transfer encoding and
charset (an unknown charset is read as UTF-8 and as Latin-1, both checked), HTML markup and its
visible text, vCard and iCalendar parts, and the envelope sender. A part it cannot read
(nested too deeply, or beyond the part limit) counts as a leak. Binary attachments other than
text are not scanned.
"""

from __future__ import annotations

import html
import re
from collections.abc import Callable
from dataclasses import dataclass
from urllib.parse import unquote

from gateway.config import Directory
from gateway.identity.markup import tags_as_read
from gateway.identity.patterns import Hit, IdentityPatterns, patterns_for, prepare
from gateway.mime import (
    CONTENT_LINE_TYPES,
    Part,
    Tree,
    decode_body,
    decode_text,
    decode_words,
    gaps,
    header_readings,
    parse,
    shown_as_text,
    unfold_content_lines,
)


@dataclass(frozen=True)
class Leak:
    where: str   # "header Reply-To", "text/html part 1.2", "envelope MAIL FROM", ...
    kind: str    # "name" | "address" | "phone" | "unreadable"
    alias: str   # the alias of the agent whose identity leaked; never the identity itself


_ENCLOSED_MESSAGES = ("message/rfc822", "message/global", "message/partial",
                      "message/external-body", "text/rfc822-headers")
_MAX_ENCLOSED = 8


def leaks_in(message: bytes, directory: Directory, mail_from: str = "") -> tuple[Leak, ...]:
    """Every place in the final bytes (and envelope sender) where an agent's identity remains.

    Never raises; an empty tuple is the only answer that lets a message leave."""
    return _leaks(message, directory, mail_from, 0)


def _leaks(message: bytes, directory: Directory, mail_from: str,
           depth: int) -> tuple[Leak, ...]:
    patterns = patterns_for(directory)
    tree = parse(message)
    found: list[Leak] = []

    def report(where: str, hits: list[Hit]) -> None:
        for hit in hits:
            leak = Leak(where, hit.kind, hit.agent.alias_name)
            if leak not in found:
                found.append(leak)

    if mail_from:
        report("envelope MAIL FROM", patterns.hits(prepare(mail_from)))
    for defect in tree.defects:
        if "nested too deeply" in defect:
            found.append(Leak(defect.split(":")[0], "unreadable", ""))
    for part in tree.walk():
        where = "" if part is tree.root else f" of part {part.index}"
        _check_headers(tree, part, patterns, where, report)
        if part.children:
            for start, end in gaps(part):
                for reading in (tree.raw[start:end].decode("latin-1"),
                                tree.raw[start:end].decode("utf-8", "replace")):
                    report(f"preamble or epilogue of part {part.index}",
                           patterns.hits(prepare(reading)))
            continue
        shown = shown_as_text(part.content_type) or part.is_multipart
        if shown:
            # A multipart the parser could not split is shown as text by some readers.
            _check_body(tree, part, patterns, report, found)
        if not shown or part.transfer_encoding == "base64":
            # The encoded bytes are also read as they stand: a name written into a base64 or
            # binary body (or under a base64 label that does not decode) is visible to anyone
            # who looks at the source. Lines that are valid base64 are skipped: random base64
            # spells short names by chance (a 50 MB attachment holds "Doe" between "/" and "+"
            # about once); a written name does not fit the alphabet.
            if part.transfer_encoding == "base64":
                raw_body = b"\n".join(_NOT_BASE64_LINE.findall(
                    tree.raw, part.body_start, part.end)).decode("latin-1")
            else:
                raw_body = tree.raw[part.body_start:part.end].decode("latin-1")
            report(f"encoded body of {part.content_type} part {part.index}",
                   patterns.hits(raw_body))
        if not shown_as_text(part.content_type) and part.content_type in _ENCLOSED_MESSAGES:
            # A forwarded message the tree did not open (e.g. base64-encoded): check it whole.
            enclosed = decode_body(tree.raw, part)
            _check_body(tree, part, patterns, report, found)
            if depth < _MAX_ENCLOSED:
                for leak in _leaks(enclosed, directory, "", depth + 1):
                    inner = Leak(f"{leak.where} in message part {part.index}", leak.kind,
                                 leak.alias)
                    if inner not in found:
                        found.append(inner)
            else:
                found.append(Leak(f"message part {part.index} nested too deeply",
                                  "unreadable", ""))
    return tuple(found)


Report = Callable[[str, list[Hit]], None]
_NOT_BASE64_LINE = re.compile(rb"^.*[^A-Za-z0-9+/=\r\n].*$", re.MULTILINE)


def _check_headers(tree: Tree, part: Part, patterns: IdentityPatterns, where: str,
                   report: Report) -> None:
    for name, start, end in part.fields:
        display = tree.raw[start:end].split(b":", 1)[0].decode("ascii", "replace").strip()
        for value in header_readings(tree.raw, start, end):
            if not name:
                value = tree.raw[start:end].decode("latin-1")  # a line that is no field
            if name == "dkim-signature":
                # Only the identity tags can name a person; b= and bh= are random base64.
                value = " ".join(re.findall(r"\b[id]=[^;]*", value))
            hits = patterns.hits(prepare(value)) + patterns.hits(prepare(decode_words(value)))
            report(f"header {display}{where}", hits)
    filename = part.filename()
    if filename:
        report(f"attachment filename{where or ' of the message'}",
               patterns.filename_hits(prepare(filename)))


def _check_body(tree: Tree, part: Part, patterns: IdentityPatterns, report: Report,
                found: list[Leak]) -> None:
    data = decode_body(tree.raw, part)
    text, reliable = decode_text(data, part.charset)
    readings = [text]
    where = f"{part.content_type} part {part.index}"
    if not reliable:
        readings.append(data.decode("latin-1"))
        readings.append(data.decode("utf-8", "replace"))
        if b"\x00" in data:
            # UTF-16/32 or a binary body under a charset we cannot read: fail closed.
            found.append(Leak(f"undecodable {where}", "unreadable", ""))
    if part.content_type in CONTENT_LINE_TYPES:
        readings += [unfold_content_lines(reading) for reading in readings]
    if any("%" in reading for reading in readings):
        # Percent-encoded text in links (mailto:?subject=Hello%20from%20Jane%20Doe).
        readings += [unquote(reading) for reading in readings if "%" in reading]
    for reading in readings:
        report(where, patterns.hits(prepare(reading)))
        if part.content_type == "text/html":
            report(f"visible text of {where}", patterns.hits(prepare(visible_text(reading))))


def _without_comments(markup: str) -> str:
    """Comments read as a space; linear even when a comment is never closed."""
    pieces: list[str] = []
    position = 0
    while True:
        start = markup.find("<!--", position)
        if start == -1:
            pieces.append(markup[position:])
            return " ".join(pieces)
        pieces.append(markup[position:start])
        close = markup.find("-->", start + 4)
        if close == -1:
            return " ".join(pieces)
        position = close + 3


def visible_text(markup: str) -> str:
    """HTML as a reader sees it: inline tags vanish (so 'Ja<b>ne</b>' reads 'Jane')."""
    return html.unescape(tags_as_read(_without_comments(markup)))
