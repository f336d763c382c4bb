"""HTML read the cheap way, by pattern rather than by parser: enough to see a name that tags
split ('Ja<b>ne</b>'), for the rewrite's quick look and the leak check's reading of markup.

Inline tags vanish and every other tag reads as a space. For ASCII markup (nearly all of it)
gateway/_wire.c does this in two compiled passes; otherwise, and where it was not compiled,
the two regular expressions below, which define it.
"""

from __future__ import annotations

import re

from gateway.identity.patterns import factored_alternation

INLINE_TAG_NAMES = frozenset([
    "b", "i", "u", "em", "strong", "span", "font", "a", "small", "big", "sub", "sup", "mark",
    "abbr", "wbr", "s", "strike", "code", "tt", "bdi", "bdo", "q", "cite", "dfn", "kbd", "samp",
    "var", "time", "data"])
INLINE_TAG = re.compile(r"</?" + factored_alternation(INLINE_TAG_NAMES) + r"\b[^<>]*>",
                        re.IGNORECASE)
OTHER_TAG = re.compile(r"<[^<>]*>")


def tags_as_read_in_python(markup: str) -> str:
    return OTHER_TAG.sub(" ", INLINE_TAG.sub("", markup))


try:
    from gateway._wire import tags_as_read as _compiled_tags_as_read
except ImportError:  # no C compiler at install time
    _compiled_tags_as_read = None


def tags_as_read(markup: str) -> str:
    """`markup` with inline tags removed and every other tag (a comment too) as a space."""
    # Beyond ASCII, re's case rules match a few more letters than ASCII's (the long s, the
    # Kelvin sign): the regular expressions stay the definition there.
    if _compiled_tags_as_read is not None and markup.isascii():
        return _compiled_tags_as_read(markup, INLINE_TAG_NAMES)
    return tags_as_read_in_python(markup)
