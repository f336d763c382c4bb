"""The line-end helpers every stage shares."""

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gateway.lineends import (crlf, lf_after_cr_in_python, only_crlf, only_crlf_in_python)


@pytest.mark.parametrize(("data", "expected"), [
    (b"a\r\nb\r\n", True), (b"", True), (b"a\nb", False), (b"a\rb\r\n", False),
    (b"a\r\r\n", False), (b"a\n\r", False),
])
def test_only_crlf(data: bytes, expected: bool) -> None:
    assert only_crlf(data) is expected
    assert only_crlf_in_python(data) is expected


def test_crlf_turns_bare_lf_into_crlf_and_leaves_the_rest() -> None:
    assert crlf(b"a\nb\r\nc\rd\n") == b"a\r\nb\r\nc\rd\r\n"
    message = b"already\r\ncrlf\r\n"
    assert crlf(message) is message  # not copied


@settings(max_examples=2000, derandomize=True, deadline=None)
@given(st.lists(st.sampled_from([b"a", b"\r", b"\n", b"\r\n", b" "]), max_size=30).map(b"".join))
def test_compiled_checks_match_their_definitions(data: bytes) -> None:
    wire = pytest.importorskip("gateway._wire", reason="gateway._wire was not compiled")
    assert wire.only_crlf(data) is only_crlf_in_python(data)
    assert wire.lf_after_cr(data) is lf_after_cr_in_python(data)
    assert wire.only_crlf(memoryview(data)) is only_crlf_in_python(data)
