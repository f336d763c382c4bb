"""The MIME tree's own reading of header blocks agrees with email's compat32 parser."""

from __future__ import annotations

import re
from email import policy as email_policy
from email.parser import BytesHeaderParser

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gateway.mime import _fields, _header_end, _plain_header_items, parse

EMAIL_PARSER = BytesHeaderParser(policy=email_policy.compat32)

PIECES = st.sampled_from([
    b"Content-Type", b"content-type", b"Subject", b"From", b"X-Odd_Name.1", b"From ", b":",
    b": ", b" ", b"\t", b"\r\n", b"\n", b"\r", b"text/plain; charset=utf-8", b"=?utf-8?q?x?=",
    b'"quoted; value"', b"\xe9", b"\x0b", b"\x0c", b"\x1c", b"a", b"b c", b";", b"=", b"*",
    b"boundary=\"x\"", b"filename*=utf-8''J%C3%A9", b"name"])


@settings(max_examples=3000, derandomize=True, deadline=None)
@given(st.lists(PIECES, max_size=24).map(b"".join))
def test_plain_header_items_are_what_email_reads(block: bytes) -> None:
    header_end, _ = _header_end(block, 0, len(block))
    fields = _fields(block, 0, header_end)
    items = _plain_header_items(block, fields, 0, header_end)
    parsed = EMAIL_PARSER.parsebytes(block[:header_end] + b"\r\n")
    if items is not None:
        assert not parsed.defects
        assert items == list(parsed.raw_items())


@settings(max_examples=1000, derandomize=True, deadline=None)
@given(st.lists(PIECES, max_size=24).map(b"".join))
def test_compiled_header_reading_matches_its_definition(block: bytes) -> None:
    wire = pytest.importorskip("gateway._wire", reason="gateway._wire was not compiled")
    from gateway.mime import header_fields_in_python
    for start, end in ((0, len(block)), (min(3, len(block)), max(len(block) - 2, 0))):
        assert wire.header_fields(block, start, end) == header_fields_in_python(block, start, end)


@settings(max_examples=1000, derandomize=True, deadline=None)
@given(st.lists(PIECES, max_size=24).map(b"".join))
def test_part_facts_are_emails(block: bytes) -> None:
    message = block + b"\r\n\r\nbody\r\n"
    root = parse(message).root
    parsed = EMAIL_PARSER.parsebytes(message[:root.body_start] + b"\r\n")
    assert root.content_type == parsed.get_content_type()
    charset = parsed.get_content_charset()
    assert root.charset == (str(charset) if charset else None)
    assert root.transfer_encoding == str(parsed.get("content-transfer-encoding",
                                                    "7bit")).strip().lower()
    try:
        filename = parsed.get_filename()
    except (LookupError, ValueError, TypeError):
        filename = None
    assert (root.filename() is None) == (not filename)
    assert list(root.headers.raw_items()) == list(parsed.raw_items())


def test_plain_blocks_take_the_fast_reading_and_others_do_not() -> None:
    plain = b"From: a@b\r\nSubject: hi\r\n  there\r\nContent-Type: text/plain\r\n"
    assert _plain_header_items(plain, _fields(plain, 0, len(plain)), 0, len(plain)) == [
        ("From", "a@b"), ("Subject", "hi\r\n  there"), ("Content-Type", "text/plain")]
    assert _plain_header_items(b"A: \xe9\r\n", [("a", 0, 7)], 0, 7) == [("A", "\udce9")]
    for odd in (b"Subject : hi\r\n", b" folded first\r\nA: b\r\n",
                b"A: b\x0bc\r\n", b"no colon here\r\n", b"From someone\r\nA: b\r\n"):
        assert _plain_header_items(odd, _fields(odd, 0, len(odd)), 0, len(odd)) is None


@settings(max_examples=3000, derandomize=True, deadline=None)
@given(st.text(st.sampled_from("ab =?_\t\r\n\udce9é\u2028;\"'"), max_size=30))
def test_decode_words_without_encoded_words_is_emails_reading(value: str) -> None:
    from email.header import decode_header, make_header

    from gateway.mime import decode_words
    if "=?" not in value:
        assert decode_words(value) == str(make_header(decode_header(value)))


QP_TEXT = st.lists(st.sampled_from(["a", "b", " ", ".", "\n", "\r\n", "=", "\t", "é", "x" * 70,
                                    "word " * 20, "\r", " \n", "-- \n", "x" * 75 + " \n"]),
                   max_size=30).map("".join)


@settings(max_examples=3000, derandomize=True, deadline=None)
@given(QP_TEXT)
def test_encode_qp_is_quopris_with_crlf(text: str) -> None:
    import quopri

    from gateway.mime import encode_qp
    from gateway.mime import qp_crlf_in_python
    data = text.encode("utf-8").replace(b"\r\n", b"\n")
    expected = quopri.encodestring(data).replace(b"\n", b"\r\n")
    assert encode_qp(text, "utf-8") == expected
    assert qp_crlf_in_python(text.encode("utf-8")) == expected


@settings(max_examples=3000, derandomize=True, deadline=None)
@given(st.binary(max_size=200) | st.lists(st.sampled_from(
    [b"a", b" ", b"\t", b".", b"\n", b"\r", b"\r\n", b"=", b"\x00", b"\x7f", b"\xff", b"x" * 74]),
    max_size=40).map(b"".join))
def test_compiled_qp_is_binasciis_with_crlf(data: bytes) -> None:
    import binascii
    wire = pytest.importorskip("gateway._wire", reason="gateway._wire was not compiled")
    expected = binascii.b2a_qp(data.replace(b"\r\n", b"\n")).replace(b"\n", b"\r\n")
    assert wire.encode_qp_crlf(data) == expected


def test_plain_text_is_encoded_without_binascii() -> None:
    from gateway.mime import _plain_qp
    assert _plain_qp(b"short line\nand " + b"long " * 40 + b"end") is not None
    assert _plain_qp(b"-- \nJane") == b"--=20\r\nJane"
    for needs_escapes in (b"a=b", b"caf\xc3\xa9", b"tab\there", b"space at the end ", b".",
                          b"a\n.\nb"):
        assert _plain_qp(needs_escapes) is None


@settings(max_examples=3000, derandomize=True, deadline=None)
@given(st.lists(st.sampled_from([b"a", b"\r", b"\n", b"\r\n", b":"]), max_size=16).map(b"".join),
       st.integers(min_value=0, max_value=3), st.integers(min_value=0, max_value=3))
def test_header_end_is_the_first_blank_line(raw: bytes, skip: int, cut: int) -> None:
    blank_line = re.compile(rb"\r?\n\r?\n")
    start, end = min(skip, len(raw)), max(len(raw) - cut, 0)
    expected: tuple[int, int] = (end, end)
    if raw.startswith((b"\r\n", b"\n"), start):
        expected = (start, start + (2 if raw.startswith(b"\r\n", start) else 1))
    elif (match := blank_line.search(raw, start, end)) is not None:
        expected = (raw.index(b"\n", match.start()) + 1, match.end())
    assert _header_end(raw, start, end) == expected
