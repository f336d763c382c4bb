"""A full disk under the quarantine database and the spool: 4xx, never 250 without a durable
write, and the same message accepted once there is room again.

The disk is a real one: a 2 MB tmpfs filled to the last byte. Mounting needs root (CI and
these machines run as root); elsewhere the tests skip and say why.
"""

from __future__ import annotations

import errno
import os
import shutil
import subprocess
from pathlib import Path
from typing import AsyncIterator, Iterator

import pytest

from conftest import Sink, start_sink
from harness import RunningGateway, start_gateway
from test_server_inbound import HARASSING

AGENT_MAIL = (b'From: "Jane Doe via Acme Support" <jane.doe@corp.example>\r\n'
              b"To: customer@example.net\r\nSubject: your order\r\n"
              b"Message-ID: <d1@helpdesk.corp.example>\r\n\r\nHi, Jane here.\r\n")


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    mount_point = tmp_path / "disk"
    mount_point.mkdir()
    mount = shutil.which("mount")
    if mount is None or os.geteuid() != 0:
        pytest.skip("mounting a small tmpfs needs root and mount(8)")
    result = subprocess.run([mount, "-t", "tmpfs", "-o", "size=2m", "tmpfs", str(mount_point)],
                            capture_output=True, text=True)
    if result.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {result.stderr.strip()}")
    try:
        yield mount_point
    finally:
        subprocess.run(["umount", "-l", str(mount_point)], check=False)


def fill(disk: Path) -> Path:
    """Write a file until the disk has no byte left; return it (delete it to make room)."""
    filler = disk / "filler"
    with open(filler, "wb", buffering=0) as handle:
        for size in (65536, 4096, 512, 1):
            try:
                while True:
                    handle.write(b"\0" * size)
            except OSError as error:
                assert error.errno == errno.ENOSPC, error
    return filler


@pytest.fixture
async def sink() -> AsyncIterator[Sink]:
    running = await start_sink()
    yield running
    running.server.close()


async def gateway_on(disk: Path, tmp_path: Path, sink: Sink,
                     database_on_disk: bool = True) -> RunningGateway:
    database = (disk if database_on_disk else tmp_path) / "q.sqlite3"
    return await start_gateway(tmp_path, quarantine={"database": str(database)},
                               inbound={"next_hop": sink.url},
                               outbound={"next_hop": f"spool:{disk / 'outbox'}"})


async def test_full_disk_under_the_quarantine_answers_4xx_then_holds(
        small_disk: Path, tmp_path: Path, sink: Sink) -> None:
    gateway = await gateway_on(small_disk, tmp_path, sink)
    try:
        filler = fill(small_disk)
        code, text = await gateway.send_inbound("creep@example.net",
                                                ["alex.morgan@support.example"], HARASSING)
        assert 400 <= code < 500, (code, text)
        assert sink.messages == []  # not delivered blind either
        filler.unlink()
        code, text = await gateway.send_inbound("creep@example.net",
                                                ["alex.morgan@support.example"], HARASSING)
        assert code == 250, text
        assert gateway.services.store.count_held() == 1
        assert sink.messages == []
    finally:
        await gateway.close()


async def test_full_disk_under_the_spool_answers_4xx_and_leaves_no_partial_file(
        small_disk: Path, tmp_path: Path, sink: Sink) -> None:
    # The quarantine database (which also keeps the Message-ID map) elsewhere: the spool alone
    # is full.
    gateway = await gateway_on(small_disk, tmp_path, sink, database_on_disk=False)
    try:
        (small_disk / "outbox").mkdir()
        filler = fill(small_disk)
        code, text = await gateway.send_outbound("jane.doe@corp.example",
                                                 ["customer@example.net"], AGENT_MAIL)
        assert 400 <= code < 500, (code, text)
        assert os.listdir(small_disk / "outbox") == []  # no partial .eml, temp or envelope file
        filler.unlink()
        code, text = await gateway.send_outbound("jane.doe@corp.example",
                                                 ["customer@example.net"], AGENT_MAIL)
        assert code == 250, text
        [eml] = (small_disk / "outbox").glob("*.eml")
        assert b"Alex Morgan" in eml.read_bytes() and b"Jane" not in eml.read_bytes()
    finally:
        await gateway.close()
