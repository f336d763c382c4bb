"""What a person sees in a message: the Subject, headers, and every text part decoded
(any charset, base64, quoted-printable), HTML reduced to its visible text."""

from __future__ import annotations

import html
import re
from dataclasses import dataclass

from lxml import etree

from gateway.htmlparse import parse_html
from gateway.mime import Tree, decode_body, decode_text, decode_words, header_value, parse

MAX_TEXT = 512 * 1024  # per message: rules look at the first 512 KB of visible text
_HIDDEN_STYLE = re.compile(r"display\s*:\s*none|visibility\s*:\s*hidden|font-size\s*:\s*0"
                           r"(?![.\d])|opacity\s*:\s*0(?![.\d])|max-height\s*:\s*0(?![.\d])",
                           re.IGNORECASE)
# Never shown. <noscript> is (mail clients run no scripts), so are <svg> text and the fallback
# inside <object> (clients load no objects): what they hold is read.
_DROPPED_TAGS = {"script", "style", "head", "title", "template"}
_BLOCK_TAGS = {"p", "div", "br", "li", "tr", "td", "th", "h1", "h2", "h3", "h4", "h5", "h6",
               "table", "ul", "ol", "blockquote", "pre", "section", "article", "hr"}


@dataclass(frozen=True)
class Segment:
    where: str   # "subject" | "body" | "header X"
    text: str


@dataclass(frozen=True)
class MessageText:
    segments: tuple[Segment, ...]
    defects: tuple[str, ...]


def visible_html_text(markup: str) -> str:
    """HTML as rendered: hidden elements, comments, scripts and styles dropped. Lines inside
    a <blockquote> start with "> ", as in plain text: that is the quoted earlier message
    (a reply quotes the agent's own mail there), shown as such by every mail client."""
    if not markup.strip():
        return ""
    try:
        root = parse_html(markup, read_only=True)
    except (etree.ParserError, ValueError):  # unreadable or too deep: every word counts
        return html.unescape(re.sub(r"<[^>]*>", " ", markup))
    pieces: list[str] = []
    quoted = ""  # the "> " marks of the blockquotes the walk is inside
    hidden = None  # the element whose subtree the walk skips
    # iterwalk: depth first in C, without recursion (nesting has no limit now).
    walk = etree.iterwalk(root, events=("start", "end", "comment", "pi"))
    for event, element in walk:
        if event == "start":
            tag = element.tag.lower()
            if tag in _DROPPED_TAGS or element.get("hidden") is not None \
                    or element.get("aria-hidden") == "true" \
                    or _HIDDEN_STYLE.search(element.get("style") or ""):
                walk.skip_subtree()  # its "end" still comes, at once
                hidden = element
                continue
            if tag == "blockquote":
                quoted += "> "
            opened = "\n" if tag in _BLOCK_TAGS else ""
            if tag == "img" and element.get("alt"):  # shown where images are not loaded
                opened += f" {element.get('alt')} "
            if element.text:
                opened += element.text
            if opened:
                pieces.append(opened.replace("\n", "\n" + quoted) if quoted else opened)
            continue
        closed = ""
        if event == "end" and element is not hidden:
            tag = element.tag.lower()
            if tag == "blockquote":
                quoted = quoted[:-2]
            if tag in _BLOCK_TAGS:
                closed = "\n"
        if element.tail:  # the tail is outside the element: visible even if it is hidden
            closed += element.tail
        if closed:
            pieces.append(closed.replace("\n", "\n" + quoted) if quoted else closed)
    return "".join(pieces)


def message_text(raw: bytes) -> MessageText:
    tree: Tree = parse(raw)
    segments: list[Segment] = []
    for name, start, end in tree.root.fields:
        value = decode_words(header_value(raw, start, end))
        if name == "subject":
            segments.append(Segment("subject", value))
        elif name in ("from", "reply-to"):
            segments.append(Segment(f"header {name.title()}", value))
    budget = MAX_TEXT
    for part in tree.walk():
        if part.children or budget <= 0:
            continue
        content_type = part.content_type
        is_text = content_type.startswith("text/")
        if not is_text and part is not tree.root:
            continue
        disposition = str(part.headers.get("content-disposition", "")).lower()
        if disposition.startswith("attachment") and content_type not in ("text/plain",
                                                                          "text/html"):
            continue
        text, _ = decode_text(decode_body(raw, part)[:budget * 2], part.charset)
        if content_type == "text/html" or (not is_text and "<html" in text[:2000].lower()):
            text = visible_html_text(text)
        text = text[:budget]
        budget -= len(text)
        segments.append(Segment("body", text))
    return MessageText(tuple(segments), tuple(tree.defects))
