"""Held HTML made safe to look at: an allowlist of tags and attributes, nothing that runs,
submits or fetches. The result is still shown in a sandboxed iframe under a CSP that forbids
scripts and every remote load, so one missed case in here is not enough to hurt a reviewer."""

from __future__ import annotations

from lxml import etree

from gateway.htmlparse import parse_html

ALLOWED_TAGS = frozenset("""
a abbr b blockquote br caption code col colgroup dd del div dl dt em font h1 h2 h3 h4 h5 h6 hr i
img ins kbd li ol p pre q s small span strike strong sub sup table tbody td tfoot th thead tr tt u
ul center
""".split())
# Removed with everything inside them.
DROPPED_TAGS = frozenset("""
script style iframe frame frameset object embed applet form input button select textarea option
link meta base svg math template noscript audio video source track canvas head title portal
""".split())
ALLOWED_ATTRIBUTES = frozenset({"alt", "title", "colspan", "rowspan", "align", "valign",
                                "width", "height", "dir", "lang"})


def sanitise_html(markup: str) -> str:
    """Markup with only inert formatting left; links and remote images are neutralised."""
    if not markup.strip():
        return ""
    try:
        root = parse_html(markup)
    except (etree.ParserError, ValueError):  # unreadable or too deep: shown as text
        return _escape(markup)
    body = root.find("body")
    container = body if body is not None else root
    for element in list(container.iter()):
        if not isinstance(element.tag, str):  # comments and processing instructions
            if element.getparent() is not None:
                element.drop_tree()
            continue
        tag = element.tag.lower()
        if tag in DROPPED_TAGS:
            if element.getparent() is not None:
                element.drop_tree()
            continue
        if tag not in ALLOWED_TAGS and element is not container:
            element.drop_tag()
            continue
        for name in list(element.attrib):
            if name.lower() not in ALLOWED_ATTRIBUTES:
                del element.attrib[name]
        if tag == "a":
            # Shown, never followed: the target is visible as text for the reviewer.
            element.attrib.pop("href", None)
        if tag == "img":
            alt = element.get("alt") or "image"
            element.tag = "span"
            element.attrib.clear()
            element.text = f"[{alt} not loaded]"
    pieces = [etree.tostring(child, encoding="unicode", method="html")
              for child in container]
    text = (container.text or "") if container.tag == "body" else ""
    return _escape(text) + "".join(pieces)


def _escape(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
