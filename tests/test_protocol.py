"""Veil's SMTP engine reads addresses exactly as aiosmtpd does."""

from __future__ import annotations

from aiosmtpd.smtp import SMTP
from hypothesis import given, settings
from hypothesis import strategies as st

from gateway.protocol import address_and_rest

ADDRESS_PIECES = st.sampled_from([
    "<", ">", "@", ".", "..", "jane", "Jane.Doe", "corp", "example", "a+b", "x_y", "o'neil",
    "{|}~", "=", "?", "#", "-", " ", "  ", "\t", "(comment)", "(", ")", '"', '"q x"', "[1.2.3.4]",
    "\\", ",", ":", ";", "@r:", "é", "\u3000", "SIZE=100", "BODY=8BITMIME", "<>", "x" * 70])


class _Engine:
    def __init__(self, local_part_limit: int) -> None:
        self.local_part_limit = local_part_limit


def aiosmtpd_reading(arg: str, local_part_limit: int) -> object:
    try:
        return SMTP._getaddr(_Engine(local_part_limit), arg)  # type: ignore[arg-type]
    except Exception as error:  # email's parser fails on some input ("<"): so must Veil's
        return type(error)


def veil_reading(arg: str, local_part_limit: int) -> object:
    try:
        return address_and_rest(arg, local_part_limit)
    except Exception as error:
        return type(error)


@settings(max_examples=4000, derandomize=True, deadline=None)
@given(st.lists(ADDRESS_PIECES, max_size=12).map("".join), st.sampled_from([0, 8, 64]))
def test_addresses_read_as_aiosmtpd_reads_them(arg: str, limit: int) -> None:
    assert veil_reading(arg, limit) == aiosmtpd_reading(arg, limit)


def test_common_addresses() -> None:
    for arg in ("<jane.doe@corp.example>", "<a@b> SIZE=10 BODY=8BITMIME", "<a@b>  (c) X", "<>",
                "<a@b>\t\u3000SMTPUTF8", " <a@b>", "a@b", "<@route:a@b>", "<a@[1.2.3.4]>"):
        for limit in (0, 1, 64):
            assert veil_reading(arg, limit) == aiosmtpd_reading(arg, limit)
