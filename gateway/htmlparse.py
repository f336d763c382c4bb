"""HTML parsed to the depth a mail client shows it."""

from __future__ import annotations

from lxml import etree
from lxml import html as lxml_html


def parse_html(markup: str, *, read_only: bool = False) -> etree._Element:
    """lxml.html's document without its silent depth limit: libxml2 drops what lies deeper
    than 256 levels (2,048 with huge_tree), which a mail client still shows. Past that it
    raises ValueError, like markup lxml cannot read (which raises etree.ParserError).

    `read_only` gives plain lxml.etree elements: the same tree, without lxml.html's editing
    methods, and about twice as cheap to walk (no Python class lookup per element)."""
    # One parser per call: its error log is this parse's.
    parser = (etree.HTMLParser if read_only else lxml_html.HTMLParser)(huge_tree=True)
    root = etree.fromstring(markup, parser)  # as lxml_html.document_fromstring does
    if root is None:
        raise etree.ParserError("Document is empty")
    if any(error.type_name == "ERR_RESOURCE_LIMIT" for error in parser.error_log):
        raise ValueError("HTML nested too deeply to parse")
    return root
