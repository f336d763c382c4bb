"""HTML parsed to the depth a mail client shows it."""

from __future__ import annotations

from lxml import etree
from lxml import html as lxml_html


def parse_html(markup: str) -> etree._Element:
    """lxml.html's document without its silent depth limit: libxml2 drops what lies deeper
    than 256 levels (2,048 with huge_tree), which a mail client still shows. Past that it
    raises ValueError, like markup lxml cannot read (which raises etree.ParserError)."""
    parser = lxml_html.HTMLParser(huge_tree=True)  # one per call: its error log is this parse's
    root = lxml_html.document_fromstring(markup, parser=parser)
    if any(error.type_name == "ERR_RESOURCE_LIMIT" for error in parser.error_log):
        raise ValueError("HTML nested too deeply to parse")
    return root
