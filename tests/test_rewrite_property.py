"""Property: a generated message that carries an agent's identity anywhere, in any encoding,
case or spelling, is never relayed with it. Either the leak check refuses the rewritten
message, or the identity is gone from everything a reader could decode."""

from __future__ import annotations

import base64
import html
import quopri
import re
import unicodedata
import urllib.parse
from dataclasses import dataclass

from conftest_identity import contains_word, corpus_directory, decoded_view, digits
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from gateway.config import Agent
from gateway.identity.leaks import leaks_in
from gateway.identity.rewrite import rewrite

DIRECTORY = corpus_directory()


@dataclass(frozen=True)
class Identity:
    text: str   # as written into the message
    kind: str   # "name" | "address" | "phone"


def _strip_accents(text: str) -> str:
    return "".join(c for c in unicodedata.normalize("NFKD", text) if not unicodedata.combining(c))


@st.composite
def identities(draw: st.DrawFn) -> Identity:
    agent: Agent = draw(st.sampled_from(DIRECTORY.agents))
    kind = draw(st.sampled_from(["name", "name", "address", "phone"]))
    if kind == "name":
        name = draw(st.sampled_from(agent.real_names))
        tokens = agent.name.split()
        single = draw(st.sampled_from([None, tokens[0], tokens[-1]]))
        if single is not None:
            return Identity(draw(st.sampled_from([single, single.upper(), _strip_accents(single)])),
                            "name")
        spelled = draw(st.sampled_from([name, name.upper(), name.lower(), _strip_accents(name),
                                        _strip_accents(name).upper(),
                                        unicodedata.normalize("NFD", name)]))
        return Identity(spelled, "name")
    if kind == "address" or not agent.phones:
        address = draw(st.sampled_from(agent.addresses))
        return Identity(draw(st.sampled_from([address, address.upper()])), "address")
    number = digits(agent.phones[0])
    national = number[-9:] if len(number) > 10 else number[-10:]
    grouped = f"{national[:3]} {national[3:6]} {national[6:]}"
    spelled = draw(st.sampled_from([
        agent.phones[0], "+" + number, number, national, grouped, grouped.replace(" ", "."),
        grouped.replace(" ", "-"), f"({national[:3]}) {national[3:6]}-{national[6:]}",
        "00" + number]))
    return Identity(spelled, "phone")


def _qp(data: bytes) -> bytes:
    return quopri.encodestring(data.replace(b"\r\n", b"\n")).replace(b"\n", b"\r\n")


def _b64(data: bytes) -> bytes:
    encoded = base64.b64encode(data)
    return b"\r\n".join(encoded[i:i + 76] for i in range(0, len(encoded), 76))


def _encoded_word(text: str, charset: str, b_encoding: bool) -> str:
    data = text.encode(charset)
    if b_encoding:
        return f"=?{charset}?B?{base64.b64encode(data).decode()}?="
    return f"=?{charset}?Q?{quopri.encodestring(data, header=True).decode()}?="


def _split_with_tag(text: str, at: int) -> str:
    at = max(1, min(at, len(text) - 1))
    return html.escape(text[:at]) + "<b>" + html.escape(text[at:]) + "</b>"


@st.composite
def messages(draw: st.DrawFn) -> tuple[bytes, Identity]:
    identity = draw(identities())
    text = identity.text
    charset = draw(st.sampled_from(["utf-8", "iso-8859-1", "windows-1252"]))
    try:
        text.encode(charset)
    except UnicodeEncodeError:
        charset = "utf-8"
    place = draw(st.sampled_from([
        "subject", "from name", "reply-to name", "to name", "plain", "html", "html split",
        "html attribute", "html comment", "html title", "mailto", "filename", "filename 2231",
        "description", "vcard", "calendar", "folded calendar", "link query"]))
    headers = ["From: Acme Support <support@corp.example>", "To: Peter <p@customer.example>",
               "Subject: Your ticket", "MIME-Version: 1.0"]
    body_text = "Hello Peter,\n\nthanks for writing.\n\nBest regards\n"
    content_type, attachment = "text/plain", None
    encoded_word = _encoded_word(text, charset, draw(st.booleans()))
    header_form = text if text.isascii() else encoded_word
    if place == "subject":
        headers[2] = f"Subject: Re: case with {header_form}"
    elif place in ("from name", "reply-to name", "to name"):
        field = {"from name": "From", "reply-to name": "Reply-To", "to name": "Cc"}[place]
        value = f'"{header_form} via Acme"' if text.isascii() else header_form
        headers.append(f"{field}: {value} <support@corp.example>")
        if field == "From":
            headers.pop(0)
    elif place == "plain":
        body_text = f"Hello Peter,\n\nI am {text}, call me.\n\n-- \n{text}\n"
    elif place.startswith("html") or place in ("mailto", "link query"):
        content_type = "text/html"
        escaped = html.escape(text)
        body_text = {
            "html": f"<p>Regards,<br>{escaped}</p>",
            "html split": f"<p>Regards,<br>{_split_with_tag(text, draw(st.integers(1, 8)))}</p>",
            "html attribute": f'<p><img src="logo.png" title="{escaped}"></p>',
            "html comment": f"<!-- {escaped} --><p>hi</p>",
            "html title": f"<html><head><title>{escaped}</title></head><body>hi</body></html>",
            "mailto": f'<a href="mailto:{escaped}">write</a>',
            "link query": ('<a href="mailto:support@corp.example?subject='
                           f'{urllib.parse.quote("Hello from " + text)}">write</a>'),
        }[place]
    elif place in ("filename", "filename 2231", "description"):
        quoted = urllib.parse.quote(text + ".pdf")
        attachment = {
            "filename": f'Content-Type: application/pdf; name="{header_form}.pdf"',
            "filename 2231": ("Content-Type: application/pdf\r\nContent-Disposition: attachment;"
                              f"\r\n filename*=utf-8''{quoted}"),
            "description": ("Content-Type: application/pdf\r\n"
                            f"Content-Description: form from {header_form}"),
        }[place]
    elif place == "vcard":
        content_type = "text/vcard"
        body_text = f"BEGIN:VCARD\nVERSION:3.0\nFN:{text}\nNOTE:{text}\nEND:VCARD\n"
    elif place == "folded calendar":
        content_type = "text/calendar"
        line = f"ORGANIZER;CN=Support:mailto:support@corp.example\nDESCRIPTION:Call with {text}"
        cut = draw(st.integers(min_value=len(line) - len(text), max_value=len(line) - 1))
        body_text = ("BEGIN:VCALENDAR\nBEGIN:VEVENT\n" + line[:cut] + "\n " + line[cut:]
                     + "\nEND:VEVENT\nEND:VCALENDAR\n")
    else:
        content_type = "text/calendar"
        body_text = ("BEGIN:VCALENDAR\nBEGIN:VEVENT\n"
                     f"ORGANIZER;CN={text}:mailto:support@corp.example\n"
                     f"DESCRIPTION:Call with {text}\nEND:VEVENT\nEND:VCALENDAR\n")
    data = body_text.replace("\n", "\r\n").encode(charset)
    transfer = draw(st.sampled_from(["8bit", "quoted-printable", "base64"]))
    if transfer == "8bit" and data.isascii():
        transfer = "7bit"
    encoded = {"7bit": data, "8bit": data, "quoted-printable": _qp(data),
               "base64": _b64(data)}[transfer]
    text_headers = (f"Content-Type: {content_type}; charset={charset}\r\n"
                    f"Content-Transfer-Encoding: {transfer}\r\n\r\n").encode()
    if attachment is None:
        raw = "\r\n".join(headers).encode() + b"\r\n" + text_headers + encoded
    else:
        raw = ("\r\n".join(headers) + '\r\nContent-Type: multipart/mixed; boundary="b"\r\n\r\n'
               "--b\r\n").encode() + text_headers + encoded + (
            "\r\n--b\r\n" + attachment + "\r\nContent-Transfer-Encoding: base64\r\n\r\n"
            + base64.b64encode(b"%PDF-1.4 binary").decode() + "\r\n--b--\r\n").encode()
    return raw, identity


def _reader_views(message: bytes) -> str:
    view = re.sub(r"\r?\n[ \t]", "", decoded_view(message))  # vCard/iCalendar unfolding
    without_inline = re.sub(r"</?(?:b|i|span)>", "", view)
    return "\n".join([view, html.unescape(without_inline), urllib.parse.unquote(view)])


def _still_there(identity: Identity, view: str) -> bool:
    if identity.kind == "name":
        return contains_word(view, identity.text)
    if identity.kind == "address":
        return identity.text.lower() in view.lower()
    wanted = digits(identity.text)[-9:]
    return any(wanted in digits(line) for line in view.splitlines())


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(messages())
def test_identity_is_never_relayed(case: tuple[bytes, Identity]) -> None:
    raw, identity = case
    assert _still_there(identity, _reader_views(raw)) or leaks_in(raw, DIRECTORY) != ()
    result = rewrite(raw, "support@corp.example", DIRECTORY, internal_domains=("corp.example",),
                     id_domain="support.example")
    if leaks_in(result.message, DIRECTORY, result.mail_from):
        return  # refused: it does not leave
    assert not _still_there(identity, _reader_views(result.message)), identity
