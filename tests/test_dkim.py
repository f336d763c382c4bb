"""DKIM signing and verification, checked by dkimpy and by Perl's Mail::DKIM."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import dkim
import dkim.crypto
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gateway.auth.dkim import (DkimResult, Signer, dkimpy_relaxed_body, relaxed_body, dns_txt_record, generate_key, load_signer,
                               verify_dkim)
from gateway.auth.results import authentication_results, strip_forged_results
from gateway.config import ConfigError, DkimConfig

HERE = Path(__file__).resolve().parent
MESSAGE = (b"From: Alex Morgan <alex.morgan@support.example>\r\nTo: c@example.net\r\n"
           b"Subject: Re: order\r\nDate: Tue, 24 Nov 2026 10:00:00 +0000\r\n"
           b"Message-ID: <x1@support.example>\r\nMIME-Version: 1.0\r\n"
           b"Content-Type: text/plain; charset=utf-8\r\n\r\nHello,\r\n\r\nAll fixed.\r\n")


@pytest.fixture(scope="module", params=["rsa", "ed25519"])
def key(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("dkim") / f"{request.param}.key"
    generate_key(path, request.param)
    return path


def record(key: Path) -> str:
    return "".join(dns_txt_record("support.example", "veil", key.read_bytes()).split('"')[1::2])


def dkimpy_verifies(message: bytes, key: Path) -> bool:
    return bool(dkim.verify(message, dnsfunc=lambda name, timeout=5: record(key).encode()))


def test_signature_verifies_and_only_prepends(key: Path) -> None:
    signed = Signer("support.example", "veil", key.read_bytes()).sign(MESSAGE)
    assert signed.endswith(MESSAGE)
    header = signed[: len(signed) - len(MESSAGE)]
    assert header.startswith(b"DKIM-Signature:") and b"c=relaxed/relaxed" in header
    tags = b"".join(header.split())
    assert b"h=from:to:subject:date:message-id:mime-version:content-type:from;" in tags
    assert dkimpy_verifies(signed, key)


def test_bare_lf_input_is_signed_as_crlf(key: Path) -> None:
    signed = Signer("support.example", "veil", key.read_bytes()).sign(
        MESSAGE.replace(b"\r\n", b"\n"))
    assert b"\n" not in signed.replace(b"\r\n", b"")
    assert dkimpy_verifies(signed, key)


def test_fast_rsa_is_byte_identical_to_dkimpy(tmp_path: Path,
                                             monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(dkim.time, "time", lambda: 1_800_000_000.0)  # the same t= both times
    path = tmp_path / "rsa.key"
    generate_key(path, "rsa")
    signer = Signer("support.example", "veil", path.read_bytes())
    fast = signer.sign(MESSAGE)
    original = dkim.RSASSA_PKCS1_v1_5_sign
    dkim.RSASSA_PKCS1_v1_5_sign = dkim.crypto.RSASSA_PKCS1_v1_5_sign
    try:
        slow = signer.sign(MESSAGE)
    finally:
        dkim.RSASSA_PKCS1_v1_5_sign = original
    assert fast == slow


# Bodies made of the characters relaxed canonicalisation cares about.
BODIES = st.lists(st.sampled_from([b"a", b"b", b" ", b"\t", b"\r\n", b"\r", b"\n", b"\xe9"]),
                  max_size=40).map(b"".join)


@settings(max_examples=2000, derandomize=True, deadline=None)
@given(BODIES)
def test_relaxed_body_matches_dkimpy(body: bytes) -> None:
    assert bytes(relaxed_body(body)) == dkimpy_relaxed_body(body)
    assert bytes(relaxed_body(memoryview(body))) == dkimpy_relaxed_body(body)


WHITESPACE_BODY = (b"Hello  there,\t\r\n\r\n \tindented\r\nlast line   \r\n\r\n\r\n")


@pytest.mark.parametrize("body", [b"Hello,\r\n\r\nAll fixed.\r\n", WHITESPACE_BODY, b"",
                                  b"no final line end", b"\r\n\r\n"])
def test_signature_is_dkimpys_own_over_the_whole_message(key: Path, body: bytes,
                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    """Signing with the header block parsed alone and the body as a view gives exactly what
    dkimpy gives for the whole message with its own canonicalisation."""
    monkeypatch.setattr(dkim.time, "time", lambda: 1_800_000_000.0)
    message = MESSAGE.split(b"\r\n\r\n")[0] + b"\r\n\r\n" + body
    signer = Signer("support.example", "veil", key.read_bytes())
    ours = signer.sign(message)
    monkeypatch.setattr(dkim.canonicalization.Relaxed, "canonicalize_body",
                        staticmethod(dkimpy_relaxed_body))
    theirs = dkim.DKIM(message, linesep=b"\r\n").sign(
        signer.selector, signer.domain, signer.key_for_dkimpy,
        signature_algorithm=signer.algorithm, canonicalize=(b"relaxed", b"relaxed"),
        include_headers=[b"from", b"to", b"subject", b"date", b"message-id", b"mime-version",
                         b"content-type", b"from"])
    assert ours == theirs + message
    assert dkimpy_verifies(ours, key)


@pytest.mark.skipif(shutil.which("perl") is None, reason="perl is not installed")
def test_independent_verifier_accepts_rsa_signature(tmp_path: Path) -> None:
    probe = subprocess.run(["perl", "-MMail::DKIM::Verifier", "-e1"], capture_output=True)
    if probe.returncode != 0:
        pytest.skip("Perl's Mail::DKIM is not installed (Debian: libmail-dkim-perl)")
    path = tmp_path / "rsa.key"
    generate_key(path, "rsa")
    signed = Signer("support.example", "veil", path.read_bytes()).sign(MESSAGE)
    env = {**os.environ, "DKIM_NAME": "veil._domainkey.support.example", "DKIM_TXT": record(path)}
    good = subprocess.run(["perl", str(HERE / "dkim_verify.pl")], input=signed, env=env,
                          capture_output=True, check=True)
    assert good.stdout == b"pass support.example\n"
    bad = subprocess.run(["perl", str(HERE / "dkim_verify.pl")],
                         input=signed.replace(b"All fixed", b"All broken"), env=env,
                         capture_output=True, check=True)
    assert bad.stdout == b"fail support.example\n"
    spaced = Signer("support.example", "veil", path.read_bytes()).sign(
        MESSAGE.split(b"\r\n\r\n")[0] + b"\r\n\r\n" + WHITESPACE_BODY)
    whitespace = subprocess.run(["perl", str(HERE / "dkim_verify.pl")], input=spaced, env=env,
                                capture_output=True, check=True)
    assert whitespace.stdout == b"pass support.example\n"


async def test_verify_reports_every_signature(key: Path, tmp_path: Path) -> None:
    other = tmp_path / "other.key"
    generate_key(other, "rsa")
    good = Signer("support.example", "veil", key.read_bytes()).sign(MESSAGE)
    both = Signer("elsewhere.example", "s1", other.read_bytes()).sign(good)
    answers = {"veil._domainkey.support.example": record(key)}  # s1 key not published

    async def lookup(name: str) -> str | None:
        return answers.get(name)

    results = await verify_dkim(both, lookup)
    assert [(r.result, r.domain) for r in results] == [("permerror", "elsewhere.example"),
                                                      ("pass", "support.example")]
    tampered = await verify_dkim(good.replace(b"All fixed", b"All broken"), lookup)
    assert tampered[0].result == "fail"


async def test_dns_failure_is_temperror_and_garbage_is_permerror(key: Path) -> None:
    async def failing(name: str) -> str | None:
        raise LookupError("SERVFAIL")

    signed = Signer("support.example", "veil", key.read_bytes()).sign(MESSAGE)
    assert (await verify_dkim(signed, failing))[0].result == "temperror"

    async def nothing(name: str) -> str | None:
        return None

    for garbage in (b"DKIM-Signature: v=1; d=; s=\r\n" + MESSAGE,
                    b"DKIM-Signature: \xff\xfe;;;===\r\n" + MESSAGE,
                    b"DKIM-Signature: v=1; a=rsa-sha256; d=x.example; s=s; b=!!; bh=??\r\n"
                    + MESSAGE):
        [result] = await verify_dkim(garbage, nothing)
        assert result.result == "permerror"
    assert await verify_dkim(MESSAGE, nothing) == ()
    assert await verify_dkim(b"", nothing) == ()


def test_authentication_results_header() -> None:
    assert authentication_results("veil", ()) == "Authentication-Results: veil; dkim=none"
    header = authentication_results("veil", (DkimResult("pass", "support.example", "veil"),
                                             DkimResult("fail", "x.example", "s", 'bad "hash"')))
    assert "dkim=pass header.d=support.example header.s=veil" in header
    assert "dkim=fail reason=\"bad 'hash'\" header.d=x.example header.s=s" in header


def test_forged_results_for_our_id_are_stripped_others_kept() -> None:
    message = (b"Authentication-Results: veil; dkim=pass\r\n header.d=bank.example\r\n"
               b"Authentication-Results: mx.example.net; spf=pass\r\n" + MESSAGE)
    stripped = strip_forged_results(message, "veil")
    assert stripped == b"Authentication-Results: mx.example.net; spf=pass\r\n" + MESSAGE
    assert strip_forged_results(MESSAGE, "veil") is MESSAGE


def test_keygen_refuses_to_overwrite_and_loads(tmp_path: Path) -> None:
    path = tmp_path / "sub" / "veil.key"
    generate_key(path)
    assert path.stat().st_mode & 0o777 == 0o600
    with pytest.raises(FileExistsError):
        generate_key(path)
    assert load_signer(DkimConfig(private_key=path)).algorithm == b"rsa-sha256"
    assert "k=rsa; p=" in dns_txt_record("support.example", "veil", path.read_bytes())


def test_load_signer_explains_missing_or_bad_keys(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="veil dkim keygen"):
        load_signer(DkimConfig(private_key=tmp_path / "none.key"))
    bad = tmp_path / "bad.key"
    bad.write_text("not a key")
    with pytest.raises(ConfigError, match="PEM"):
        load_signer(DkimConfig(private_key=bad))


@settings(max_examples=500, derandomize=True, deadline=None)
@given(st.integers(min_value=0, max_value=2 ** 2100), st.integers(min_value=-1, max_value=300))
def test_integer_conversions_match_dkimpys(number: int, length: int) -> None:
    from gateway.auth.dkim import bytes_to_int, dkimpy_int2str, dkimpy_str2int, int_to_bytes
    expected = dkimpy_int2str(number, length)
    assert int_to_bytes(number, length) == expected
    assert type(int_to_bytes(number, length)) is type(expected)
    assert bytes_to_int(bytes(expected)) == dkimpy_str2int(bytes(expected))


@settings(max_examples=300, derandomize=True, deadline=None)
@given(st.binary(min_size=1, max_size=300), st.integers(min_value=3, max_value=2 ** 2100),
       st.sampled_from([3, 17, 65537]), st.integers(min_value=1, max_value=300))
def test_public_step_matches_dkimpys(message: bytes, modulus: int, exponent: int,
                                     length: int) -> None:
    from gateway.auth.dkim import dkimpy_rsa_encrypt, rsa_public_step
    public = {"modulus": modulus, "publicExponent": exponent}
    assert rsa_public_step(message, public, length) == dkimpy_rsa_encrypt(message, public, length)


@settings(max_examples=2000, derandomize=True, deadline=None)
@given(BODIES)
def test_relaxed_changes_compiled_matches_python(body: bytes) -> None:
    wire = pytest.importorskip("gateway._wire", reason="gateway._wire was not compiled")
    from gateway.auth.dkim import relaxed_changes_in_python
    assert wire.relaxed_changes(body) == relaxed_changes_in_python(body)
    assert wire.relaxed_changes(memoryview(body)) == relaxed_changes_in_python(memoryview(body))


HEADER_VALUES = st.lists(st.sampled_from([b"a", b"B", b" ", b"\t", b"\r\n", b"\n", b"\r", b"\xe9",
                                          b"\r\n ", b"  "]), max_size=20).map(b"".join)


@settings(max_examples=2000, derandomize=True, deadline=None)
@given(st.lists(st.tuples(st.sampled_from([b"From", b"SUBJECT ", b"x-Tag\t", b"to"]),
                          HEADER_VALUES), max_size=4))
def test_relaxed_headers_match_dkimpy(headers: list[tuple[bytes, bytes]]) -> None:
    from gateway.auth.dkim import dkimpy_relaxed_headers, relaxed_headers
    assert relaxed_headers(headers) == dkimpy_relaxed_headers(headers)
