"""Sealed replacement Message-IDs (gateway/identity/message_ids.py) and the key file they need."""

from __future__ import annotations

import os
import re
import stat
from pathlib import Path

import pytest
from conftest import write_config

from gateway.config import ConfigError, load_config
from gateway.identity.message_ids import (
    KEY_BYTES,
    MAX_PUBLIC_ID,
    MessageIdKey,
    ensure_message_id_key,
    load_message_id_key,
)

DOMAIN = "support.example"
ORIGINAL = "<20261124091502.1234@mail.corp.example>"
KEY = MessageIdKey(bytes(range(64)))
TOKEN = re.compile(r"<([a-z2-7]+)@support\.example>")


def test_a_sealed_id_opens_to_its_original() -> None:
    public = KEY.public_id(ORIGINAL, DOMAIN)
    assert TOKEN.fullmatch(public), public
    assert "corp" not in public and "1234" not in public
    assert KEY.original_id(public, DOMAIN) == ORIGINAL
    assert KEY.original_id(f"  {public}\r\n", "Support.Example.") == ORIGINAL


def test_the_same_original_gives_the_same_id_and_others_differ() -> None:
    assert KEY.public_id(ORIGINAL, DOMAIN) == KEY.public_id(ORIGINAL, DOMAIN)
    others = {KEY.public_id(f"<{n}@helpdesk.corp.example>", DOMAIN) for n in range(200)}
    assert len(others) == 200 and KEY.public_id(ORIGINAL, DOMAIN) not in others
    assert MessageIdKey.random().public_id(ORIGINAL, DOMAIN) != KEY.public_id(ORIGINAL, DOMAIN)


def test_lengths_show_only_to_the_nearest_block() -> None:
    lengths = {len(KEY.public_id("<" + "x" * n + "@corp.example>", DOMAIN)) for n in range(1, 16)}
    assert len(lengths) <= 2  # 15 originals of 16 to 30 bytes: at most two padded sizes


def flipped(public: str, index: int) -> str:
    token = TOKEN.fullmatch(public).group(1)  # type: ignore[union-attr]
    alphabet = "abcdefghijklmnopqrstuvwxyz234567"
    changed = alphabet[(alphabet.index(token[index]) + 1) % 32]
    return f"<{token[:index]}{changed}{token[index + 1:]}@{DOMAIN}>"


@pytest.mark.parametrize("index", [0, 10, 26, 40, -1])
def test_an_altered_token_opens_to_nothing(index: int) -> None:
    public = KEY.public_id(ORIGINAL, DOMAIN)
    assert KEY.original_id(flipped(public, index), DOMAIN) is None


def test_only_ours_and_only_well_formed_ids_open() -> None:
    public = KEY.public_id(ORIGINAL, DOMAIN)
    token = TOKEN.fullmatch(public).group(1)  # type: ignore[union-attr]
    for other in (
        public.replace(DOMAIN, "elsewhere.example"),  # another domain's id
        MessageIdKey.random().public_id(ORIGINAL, DOMAIN),  # another key's
        "<0123456789abcdef0123456789abcdef@support.example>",  # an earlier keyed hash
        f"<{token[:-8]}@{DOMAIN}>", f"<{token}aa@{DOMAIN}>",  # cut short, lengthened
        f"<{token}@{DOMAIN}", f"{token}@{DOMAIN}", f"<{token}>", "<@support.example>", "",
        f"<{token[:-1]}!@{DOMAIN}>", f"<{token[:-1]}\udcff@{DOMAIN}>", "<é@support.example>",
        "<" + "a" * 5000 + "@support.example>",
    ):
        assert KEY.original_id(other, DOMAIN) is None, other


def test_a_token_has_one_spelling_only() -> None:
    """Base32's last character carries spare bits: other letters there must not open."""
    public = KEY.public_id(ORIGINAL, DOMAIN)
    token = TOKEN.fullmatch(public).group(1)  # type: ignore[union-attr]
    opened = [letter for letter in "abcdefghijklmnopqrstuvwxyz234567"
              if KEY.original_id(f"<{token[:-1]}{letter}@{DOMAIN}>", DOMAIN)]
    assert opened == [token[-1]]


def test_eight_bit_originals_come_back_byte_for_byte() -> None:
    original = "<ca\udce9-josé@corp.example>"  # a Latin-1 byte as surrogateescape keeps it
    assert KEY.original_id(KEY.public_id(original, DOMAIN), DOMAIN) == original


def test_an_original_too_long_to_travel_sealed_gets_a_keyed_hash() -> None:
    sealed = "<" + "x" * 500 + "@corp.example>"
    public = KEY.public_id(sealed, DOMAIN)
    assert len(public) <= MAX_PUBLIC_ID and KEY.original_id(public, DOMAIN) == sealed
    too_long = "<" + "x" * 600 + "@corp.example>"
    public = KEY.public_id(too_long, DOMAIN)
    assert TOKEN.fullmatch(public) and len(public) < 100
    assert public == KEY.public_id(too_long, DOMAIN)  # still the same id every time
    assert KEY.original_id(public, DOMAIN) is None  # a reply to it arrives unthreaded
    assert public != MessageIdKey.random().public_id(too_long, DOMAIN)


def test_a_key_is_64_bytes_and_never_shown() -> None:
    with pytest.raises(ValueError):
        MessageIdKey(b"short")
    assert bytes(range(64)).hex() not in repr(KEY) and "\\x00" not in repr(KEY)


# --- the key file ---------------------------------------------------------------------------

def test_the_key_path_resolves_from_the_config_folder(tmp_path: Path) -> None:
    assert load_config(write_config(tmp_path)).outbound.message_id_key == \
        tmp_path / "var" / "message-id.key"
    config = load_config(write_config(tmp_path, outbound={"message_id_key": "keys/ids.key"}))
    assert config.outbound.message_id_key == tmp_path / "keys" / "ids.key"


def test_a_bad_key_setting_names_file_key_and_fix(tmp_path: Path) -> None:
    path = write_config(tmp_path, outbound={"message_id_key": ""})
    with pytest.raises(ConfigError) as caught:
        load_config(path)
    assert caught.value.key == "outbound.message_id_key" and str(path) in str(caught.value)
    assert "string" in caught.value.fix


def test_the_key_is_made_once_0600_and_kept(tmp_path: Path) -> None:
    path = tmp_path / "state" / "deeper" / "message-id.key"
    first = ensure_message_id_key(path)
    secret = path.read_bytes()
    assert len(secret) == KEY_BYTES
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert os.listdir(path.parent) == ["message-id.key"]  # no temporary file left behind
    again = ensure_message_id_key(path)  # a restart
    assert path.read_bytes() == secret
    assert again.public_id(ORIGINAL, DOMAIN) == first.public_id(ORIGINAL, DOMAIN)
    assert load_message_id_key(path).public_id(ORIGINAL, DOMAIN) == \
        first.public_id(ORIGINAL, DOMAIN)


def test_a_key_already_there_is_never_replaced(tmp_path: Path) -> None:
    path = tmp_path / "message-id.key"
    path.write_bytes(bytes(range(64)))
    assert ensure_message_id_key(path).public_id(ORIGINAL, DOMAIN) == \
        KEY.public_id(ORIGINAL, DOMAIN)
    assert path.read_bytes() == bytes(range(64))


@pytest.mark.parametrize("size", [0, 32, 63, 65, 128])
def test_a_key_file_of_the_wrong_size_stops_start_up(tmp_path: Path, size: int) -> None:
    path = tmp_path / "message-id.key"
    path.write_bytes(b"k" * size)
    with pytest.raises(ConfigError) as caught:
        ensure_message_id_key(path)
    assert caught.value.file == str(path) and caught.value.key == "outbound.message_id_key"
    assert f"{size} bytes" in caught.value.problem and "64" in caught.value.problem
    assert "threading" in caught.value.fix
    assert path.read_bytes() == b"k" * size  # left for the administrator to restore


def test_a_missing_key_is_explained_where_nothing_may_be_made(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as caught:
        load_message_id_key(tmp_path / "none.key")
    assert caught.value.key == "outbound.message_id_key" and "veil serve" in caught.value.fix
    not_a_folder = tmp_path / "a-file"  # unwritable even for root, who writes anywhere else
    not_a_folder.write_text("")
    with pytest.raises(ConfigError) as caught:
        ensure_message_id_key(not_a_folder / "message-id.key")
    assert "cannot create" in caught.value.problem and "writable" in caught.value.fix
