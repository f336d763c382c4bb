"""The outbound shortcuts never let identity through: what the rewrite passes through byte for
byte, or scanned before, is still read by the leak check in the final bytes."""

from __future__ import annotations

from pathlib import Path

import pytest

from gateway.auth.dkim import Signer, generate_key
from gateway.config import OutboundConfig, load_directory
from gateway.envelope import Envelope, Refused
from gateway.identity.leaks import leaks_in
from gateway.identity.message_ids import MessageIdKey
from gateway.identity.rewrite import rewrite
from gateway.outbound import Send, prepare_outbound

ROOT = Path(__file__).resolve().parent.parent
DIRECTORY = load_directory(ROOT / "agents.toml")
POLICY = OutboundConfig(internal_domains=("corp.example",))

HEAD = (b"From: Jane Doe <jane.doe@corp.example>\r\nTo: c@example.net\r\nSubject: hi\r\n"
        b"MIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=\"b\"\r\n\r\n")
TEXT_PART = (b"--b\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n"
             b"Hello, all fixed.\r\n\r\n-- \r\nJane Doe\r\n")
# A part the rewrite leaves alone (not shown as text) holding a name written into it.
OPAQUE_PART = (b"--b\r\nContent-Type: application/octet-stream\r\n"
               b"Content-Transfer-Encoding: 7bit\r\n\r\nprepared by Jane Doe\r\n")


@pytest.fixture(scope="module")
def signer(tmp_path_factory: pytest.TempPathFactory) -> Signer:
    path = tmp_path_factory.mktemp("dkim") / "rsa.key"
    generate_key(path, "rsa")
    return Signer("support.example", "veil", path.read_bytes())


def send(raw: bytes, signer: Signer) -> Send | object:
    return prepare_outbound(raw, Envelope("jane.doe@corp.example", ("c@example.net",)),
                            DIRECTORY, signer, POLICY, "support.example", MessageIdKey.random())


def test_a_leak_in_a_part_passed_through_is_caught_every_time(signer: Signer) -> None:
    raw = HEAD + TEXT_PART + b"\r\n" + OPAQUE_PART + b"\r\n--b--\r\n"
    rewritten = rewrite(raw, "jane.doe@corp.example", DIRECTORY,
                        internal_domains=("corp.example",), id_domain="support.example")
    assert OPAQUE_PART.split(b"\r\n\r\n")[1] in rewritten.message  # passed through as it was
    for _ in range(3):  # the same bytes again: nothing remembered lets them through
        outcome = send(raw, signer)
        assert isinstance(outcome, Refused)
        assert "application/octet-stream" in outcome.reason


def test_a_header_left_in_place_is_caught_after_being_scanned(signer: Signer) -> None:
    # Not a plain list of ids: the rewrite leaves it, the leak check must refuse it.
    raw = HEAD.replace(b"Subject: hi\r\n", b"References: <1@x.example> Jane Doe\r\n") + \
        TEXT_PART + b"\r\n--b--\r\n"
    for _ in range(3):
        outcome = send(raw, signer)
        assert isinstance(outcome, Refused) and "References" in outcome.reason


def test_rewritten_parts_are_checked_in_the_final_bytes(signer: Signer) -> None:
    raw = HEAD + TEXT_PART + b"\r\n--b--\r\n"
    outcome = send(raw, signer)
    assert isinstance(outcome, Send)
    assert b"Jane" not in outcome.message and not leaks_in(outcome.message, DIRECTORY)
