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
from dataclasses import dataclass
from typing import Callable

from gateway.config import Directory
from gateway.identity.patterns import Hit, IdentityPatterns, patterns_for, prepare
from gateway.mime import Part, Tree, decode_body, decode_text, decode_words, header_value, parse

_TEXT_TYPES = ("text/", "application/ics", "application/vcard", "message/delivery-status",
               "message/disposition-notification")


@dataclass(frozen=True)
class Leak:
    where: str   # "header Reply-To", "text/html part 1.2", "envelope MAIL FROM", ...
    kind: str    # "name" | "address" | "phone" | "unreadable"
    alias: str   # the alias of the agent whose identity leaked; never the identity itself


def leaks_in(message: bytes, directory: Directory, mail_from: str = "") -> tuple[Leak, ...]:
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
        if not part.children and part.content_type.startswith(_TEXT_TYPES):
            _check_body(tree, part, patterns, report)
    return tuple(found)


Report = Callable[[str, list[Hit]], None]


def _check_headers(tree: Tree, part: Part, patterns: IdentityPatterns, where: str,
                   report: Report) -> None:
    for name, start, end in part.fields:
        value = header_value(tree.raw, start, end)
        display = tree.raw[start:end].split(b":", 1)[0].decode("ascii", "replace").strip()
        if name == "dkim-signature":
            # Only the identity tags can name a person; b= and bh= are random base64.
            value = " ".join(re.findall(r"\b[id]=[^;]*", value))
        hits = patterns.hits(prepare(value)) + patterns.hits(prepare(decode_words(value)))
        report(f"header {display}{where}", hits)
    filename = part.filename()
    if filename:
        report(f"attachment filename{where or ' of the message'}",
               patterns.hits(prepare(filename)))


def _check_body(tree: Tree, part: Part, patterns: IdentityPatterns, report: Report) -> None:
    data = decode_body(tree.raw, part)
    text, reliable = decode_text(data, part.charset)
    readings = [text]
    if not reliable:
        readings.append(data.decode("latin-1"))
        readings.append(data.decode("utf-8", "replace"))
    where = f"{part.content_type} part {part.index}"
    for reading in readings:
        report(where, patterns.hits(prepare(reading)))
        if part.content_type == "text/html":
            report(f"visible text of {where}", patterns.hits(prepare(visible_text(reading))))


_INLINE_TAGS = re.compile(r"</?(?:b|i|u|em|strong|span|font|a|small|big|sub|sup|mark|abbr|"
                          r"wbr|s|strike|code|tt|bdi|bdo|q|cite|dfn|kbd|samp|var|time|data)"
                          r"\b[^>]*>", re.IGNORECASE)
_ANY_TAG = re.compile(r"<[^>]*>")
_COMMENT = re.compile(r"<!--.*?-->", re.DOTALL)


def visible_text(markup: str) -> str:
    """HTML as a reader sees it: inline tags vanish (so 'Ja<b>ne</b>' reads 'Jane')."""
    text = _COMMENT.sub(" ", markup)
    text = _INLINE_TAGS.sub("", text)
    text = _ANY_TAG.sub(" ", text)
    return html.unescape(text)
