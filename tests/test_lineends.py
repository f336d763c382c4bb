"""The line-end helpers every stage shares."""

import pytest

from gateway.lineends import crlf, only_crlf


@pytest.mark.parametrize(("data", "expected"), [
    (b"a\r\nb\r\n", True), (b"", True), (b"a\nb", False), (b"a\rb\r\n", False),
    (b"a\r\r\n", False), (b"a\n\r", False),
])
def test_only_crlf(data: bytes, expected: bool) -> None:
    assert only_crlf(data) is expected


def test_crlf_turns_bare_lf_into_crlf_and_leaves_the_rest() -> None:
    assert crlf(b"a\nb\r\nc\rd\n") == b"a\r\nb\r\nc\rd\r\n"
    message = b"already\r\ncrlf\r\n"
    assert crlf(message) is message  # not copied
