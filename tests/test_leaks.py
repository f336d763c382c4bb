"""The fail-closed gate: every place an identity can hide is found in the final bytes."""

from __future__ import annotations

import base64

import pytest
from conftest_identity import corpus_directory

from gateway.identity.leaks import Leak, leaks_in

DIRECTORY = corpus_directory()
HEAD = b"From: Acme Support <support@customer-facing.example>\r\nTo: p@customer.example\r\n"


def text_part(body: bytes, content_type: bytes = b"text/plain; charset=utf-8",
              encoding: bytes = b"7bit") -> bytes:
    return (HEAD + b"Content-Type: " + content_type + b"\r\nContent-Transfer-Encoding: "
            + encoding + b"\r\n\r\n" + body + b"\r\n")


LEAKING = {
    "Reply-To header": (HEAD + b"Reply-To: Jane Doe <x@y.example>\r\n\r\nhi\r\n",
                        "header Reply-To", "name"),
    "Sender address": (HEAD + b"Sender: jdoe@corp.example\r\n\r\nhi\r\n",
                       "header Sender", "address"),
    "encoded-word Subject": (HEAD + b"Subject: =?iso-8859-1?q?Jos=E9_=C1lvarez?=\r\n\r\nhi",
                             "header Subject", "name"),
    "shift_jis Subject": (HEAD + b"Subject: =?shift_jis?B?"
                          + base64.b64encode("（ジェーン）Jane Doe".encode("shift_jis"))
                          + b"?=\r\n\r\nhi", "header Subject", "name"),
    "nickname in body": (text_part(b"Janie here."), "text/plain part 1", "name"),
    "quoted-printable soft break": (text_part(b"Regards, Ja=\r\nne Doe", encoding=b"quoted-printable"),
                                    "text/plain part 1", "name"),
    "base64 body": (text_part(base64.b64encode("Zoë Müller".encode()), encoding=b"base64"),
                    "text/plain part 1", "name"),
    "windows-1252 8bit": (text_part("José".encode("cp1252") + b" \x96 Alvarez ok",
                                    b"text/plain; charset=windows-1252", b"8bit"),
                          "text/plain part 1", "name"),
    "HTML attribute": (text_part(b'<img alt="Jane Doe" src="x.png">', b"text/html"),
                       "text/html part 1", "name"),
    "HTML comment": (text_part(b"<p>hi</p><!-- sent by jane.doe@corp.example -->", b"text/html"),
                     "text/html part 1", "address"),
    "HTML split across tags": (text_part(b"<p>Ja<b>ne</b> D<i>oe</i></p>", b"text/html"),
                               "visible text of text/html part 1", "name"),
    "HTML entity": (text_part(b"<p>Jos&eacute; &Aacute;lvarez</p>", b"text/html"),
                    "visible text of text/html part 1", "name"),
    "phone with dots": (text_part(b"call 555.010.7788"), "text/plain part 1", "phone"),
    "phone international": (text_part(b"call +15550107788"), "text/plain part 1", "phone"),
    "vcard": (text_part(b"BEGIN:VCARD\r\nFN:Mark Young\r\nEND:VCARD", b"text/vcard"),
              "text/vcard part 1", "name"),
    "attachment filename RFC 2231": (
        HEAD + b"Content-Type: multipart/mixed; boundary=b\r\n\r\n--b\r\n"
        b"Content-Type: application/pdf\r\nContent-Disposition: attachment;\r\n"
        b" filename*=utf-8''Jos%C3%A9%20%C3%81lvarez.pdf\r\n\r\n%PDF\r\n--b--\r\n",
        "attachment filename of part 1.1", "name"),
    "unknown charset": (text_part(b"Jane Doe", b"text/plain; charset=x-unknown"),
                        "text/plain part 1", "name"),
}


@pytest.mark.parametrize("raw, where, kind", LEAKING.values(), ids=LEAKING.keys())
def test_identity_is_found(raw: bytes, where: str, kind: str) -> None:
    leaks = leaks_in(raw, DIRECTORY)
    assert any(leak.where == where and leak.kind == kind for leak in leaks), leaks


def test_leak_names_the_alias_never_the_real_identity() -> None:
    leaks = leaks_in(text_part(b"Jane Doe, jane.doe@corp.example, +1 555 010 7788"), DIRECTORY)
    assert {leak.kind for leak in leaks} == {"name", "address", "phone"}
    for leak in leaks:
        assert leak.alias == "Alex Morgan"
        assert "Jane" not in repr(leak) and "7788" not in repr(leak)


def test_envelope_sender_is_checked() -> None:
    assert Leak("envelope MAIL FROM", "address", "Alex Morgan") in \
        leaks_in(text_part(b"hello"), DIRECTORY, "jane.doe@corp.example")


def test_unreadable_text_fails_closed() -> None:
    raw = text_part("Jane Doe".encode("utf-16"), b"text/plain; charset=x-unknown")
    assert any(leak.kind == "unreadable" for leak in leaks_in(raw, DIRECTORY))


def test_forwarded_message_in_base64_is_opened() -> None:
    inner = b"Subject: earlier\r\n\r\nMark Young wrote this\r\n"
    raw = (HEAD + b"Content-Type: multipart/mixed; boundary=b\r\n\r\n--b\r\n"
           b"Content-Type: message/rfc822\r\nContent-Transfer-Encoding: base64\r\n\r\n"
           + base64.b64encode(inner) + b"\r\n--b--\r\n")
    assert any(leak.alias == "Chris Taylor" for leak in leaks_in(raw, DIRECTORY))


CLEAN = {
    "longer word": text_part(b"Janet and Janiek and Doerte, markup, young people"),
    "address of someone else": text_part(b"write to jane.doe@elsewhere.example.org"),
    "other phone": text_part(b"call +1 555 010 0000 or 0049 30 7654321"),
    "name inside a binary attachment": (
        HEAD + b"Content-Type: multipart/mixed; boundary=b\r\n\r\n--b\r\n"
        b"Content-Type: application/pdf\r\nContent-Transfer-Encoding: base64\r\n\r\n"
        + base64.b64encode(b"%PDF Jane Doe") + b"\r\n--b--\r\n"),
    "alias only": text_part(b"Alex Morgan <alex.morgan@support.example>"),
}


@pytest.mark.parametrize("raw", CLEAN.values(), ids=CLEAN.keys())
def test_no_false_alarm(raw: bytes) -> None:
    assert leaks_in(raw, DIRECTORY) == ()


def test_common_word_surname_counts_only_capitalised() -> None:
    assert leaks_in(text_part(b"a young customer"), DIRECTORY) == ()
    assert leaks_in(text_part(b"regards, Young"), DIRECTORY) != ()


def test_invisible_characters_do_not_hide_a_name() -> None:
    raw = text_part("Ja\u00adne\u200b Doe".encode())
    assert leaks_in(raw, DIRECTORY) != ()


def test_base64_that_spells_a_name_by_chance_is_not_a_leak() -> None:
    """Random base64 of a large attachment holds short names between '/' and '+' by chance."""
    line = b"QUJD/Doe+RUZH/jane+SEJL" + b"A" * 52
    raw = (HEAD + b"Content-Type: multipart/mixed; boundary=b\r\n\r\n--b\r\n"
           b"Content-Type: application/octet-stream\r\nContent-Transfer-Encoding: base64\r\n\r\n"
           + (line + b"\r\n") * 3 + b"--b--\r\n")
    assert leaks_in(raw, DIRECTORY) == ()
    written = raw.replace(line + b"\r\n", b"sent by Jane Doe\r\n", 1)
    assert leaks_in(written, DIRECTORY) != ()
