"""The `veil` command as scripts use it: real subprocesses, real files."""

from __future__ import annotations

import email
import json
import os
import signal
import smtplib
import socket
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import pytest

from conftest import ROOT, write_config

AGENT_MAIL = (b'From: "Jane Doe via Acme Support" <jane.doe@corp.example>\r\n'
              b"To: customer@example.net\r\nSubject: hello\r\n"
              b"Message-ID: <1@helpdesk.corp.example>\r\n\r\n"
              b"Hi, Jane here. Call +1 555 010 7788.\r\n")


def veil(*args: str, stdin: bytes | None = None, cwd: Path = ROOT) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run([sys.executable, "-m", "gateway", *args], input=stdin, cwd=cwd,
                          capture_output=True, timeout=120)


def configured(tmp_path: Path, **sections: dict) -> Path:
    config = write_config(tmp_path, **sections)
    result = veil("dkim", "keygen", "--config", str(config))
    assert result.returncode == 0, result.stderr
    assert b"v=DKIM1" in result.stdout
    return config


def test_rewrite_prints_the_signed_message(tmp_path: Path) -> None:
    config = configured(tmp_path)
    message = tmp_path / "in.eml"
    message.write_bytes(AGENT_MAIL)
    result = veil("rewrite", "--config", str(config), str(message))
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith(b"DKIM-Signature:")
    assert b"Jane" not in result.stdout and b"555 010" not in result.stdout
    assert b"Alex Morgan" in result.stdout
    from_stdin = veil("rewrite", "--config", str(config), "-", stdin=AGENT_MAIL)
    assert from_stdin.returncode == 0
    assert b"Alex Morgan" in from_stdin.stdout


def test_rewrite_exits_3_with_the_reason_when_refused(tmp_path: Path) -> None:
    config = configured(tmp_path, outbound={"unknown_sender": "reject"})
    robot = AGENT_MAIL.replace(b'"Jane Doe via Acme Support" <jane.doe@corp.example>',
                               b"<robot@corp.example>")
    result = veil("rewrite", "--config", str(config), "-", stdin=robot)
    assert result.returncode == 3
    assert result.stdout == b""
    assert b"not a known agent" in result.stderr


def test_rewrite_without_a_key_says_how_to_make_one(tmp_path: Path) -> None:
    config = write_config(tmp_path)
    result = veil("rewrite", "--config", str(config), "-", stdin=AGENT_MAIL)
    assert result.returncode == 2
    assert b"dkim.private_key" in result.stderr and b"keygen" in result.stderr


def test_config_check_names_file_key_and_fix(tmp_path: Path) -> None:
    config = configured(tmp_path)
    assert veil("config", "check", "--config", str(config)).returncode == 0
    bad = write_config(tmp_path, outbound={"on_leak": "shrug"})
    result = veil("config", "check", "--config", str(bad))
    assert result.returncode == 2
    assert str(bad).encode() in result.stderr and b"outbound.on_leak" in result.stderr


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def wait_for(port: int, process: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise AssertionError(process.stderr.read() if process.stderr else "exited")
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return
        except OSError:
            time.sleep(0.1)
    raise AssertionError(f"port {port} never opened")


@pytest.mark.parametrize("workers", [1, 2])
def test_serve_relays_to_the_spool_and_stops_on_sigterm(tmp_path: Path, workers: int) -> None:
    outbound, inbound, review = free_port(), free_port(), free_port()
    config = configured(tmp_path, outbound={"listen": f"127.0.0.1:{outbound}"},
                        inbound={"listen": f"127.0.0.1:{inbound}"},
                        review={"listen": f"127.0.0.1:{review}"})
    text = config.read_text()
    config.write_text(f"workers = {workers}\n" + text)
    process = subprocess.Popen([sys.executable, "-m", "gateway", "serve", "--config", str(config)],
                               cwd=ROOT, stderr=subprocess.PIPE)
    try:
        wait_for(outbound, process)
        wait_for(review, process)
        for _ in range(4):
            with smtplib.SMTP("127.0.0.1", outbound, timeout=30) as client:
                client.sendmail("jane.doe@corp.example", ["customer@example.net"], AGENT_MAIL)
        spooled = sorted((tmp_path / "outbox").glob("*.eml"))
        assert len(spooled) == 4
        assert all(b"Jane" not in eml.read_bytes() for eml in spooled)
        import urllib.request
        with urllib.request.urlopen(f"http://127.0.0.1:{review}/healthz", timeout=10) as page:
            assert page.read() == b"ok"
        with urllib.request.urlopen(f"http://127.0.0.1:{review}/metrics", timeout=10) as page:
            assert b'veil_messages_total{direction="outbound"' in page.read()
    finally:
        process.send_signal(signal.SIGTERM)
        _, stderr = process.communicate(timeout=30)
    assert process.returncode == 0, stderr
    lines = [json.loads(line) for line in stderr.decode().splitlines() if line.startswith("{")]
    messages = [line for line in lines if line.get("event") == "message"]
    assert len(messages) == 4
    assert all(m["direction"] == "outbound" and m["agent"] == "Alex Morgan" for m in messages)
    assert b"Jane" not in stderr and b"555 010" not in stderr
    assert b"jane.doe" not in stderr  # not even the envelope sender


def test_workers_share_connections_and_no_second_veil_takes_the_port(tmp_path: Path) -> None:
    outbound, inbound, review = free_port(), free_port(), free_port()
    config = configured(tmp_path, outbound={"listen": f"127.0.0.1:{outbound}"},
                        inbound={"listen": f"127.0.0.1:{inbound}"},
                        review={"listen": f"127.0.0.1:{review}"})
    config.write_text("workers = 2\n" + config.read_text())
    process = subprocess.Popen([sys.executable, "-m", "gateway", "serve", "--config", str(config)],
                               cwd=ROOT, stderr=subprocess.PIPE)
    try:
        wait_for(outbound, process)
        time.sleep(1)  # both workers listening
        # A burst of connections, as a helpdesk's pool opens them, all held open.
        burst = [socket.create_connection(("127.0.0.1", outbound), timeout=30) for _ in range(16)]
        for connection in burst:
            with connection, connection.makefile("rb") as replies:
                for command in (b"", b"EHLO pool.example\r\n",
                                b"MAIL FROM:<jane.doe@corp.example>\r\n",
                                b"RCPT TO:<customer@example.net>\r\n", b"DATA\r\n",
                                AGENT_MAIL + b".\r\n", b"QUIT\r\n"):
                    connection.sendall(command)
                    while (reply := replies.readline())[3:4] == b"-":
                        pass
                    assert reply[:1] in (b"2", b"3"), reply
        second = veil("serve", "--config", str(config))
        assert second.returncode == 2
        assert b"cannot listen" in second.stderr
    finally:
        process.send_signal(signal.SIGTERM)
        _, stderr = process.communicate(timeout=30)
    lines = [json.loads(line) for line in stderr.decode().splitlines() if line.startswith("{")]
    handled_by = Counter(line["pid"] for line in lines if line.get("event") == "message")
    # All 16 were open at once: the worker holding fewer took each, so they split evenly.
    assert len(handled_by) == 2 and max(handled_by.values()) <= 9, handled_by
    # One key, made by the parent before it forked: both workers gave the same replacement.
    spooled = {email.message_from_bytes(eml.read_bytes())["Message-ID"]
               for eml in (tmp_path / "outbox").glob("*.eml")}
    assert len(spooled) == 1 and "helpdesk" not in spooled.pop()
    assert len((tmp_path / "var" / "message-id.key").read_bytes()) == 64


def test_serve_refuses_a_message_id_key_of_the_wrong_size(tmp_path: Path) -> None:
    config = configured(tmp_path)
    key = tmp_path / "var" / "message-id.key"
    key.parent.mkdir()
    key.write_bytes(b"0123456789abcdef" * 2)
    result = veil("serve", "--config", str(config))
    assert result.returncode == 2
    assert str(key).encode() in result.stderr and b"outbound.message_id_key" in result.stderr
    assert b"32 bytes" in result.stderr
    assert veil("config", "check", "--config", str(config)).returncode == 2


def test_check_and_preview_write_no_key_and_the_preview_uses_the_one_there(
        tmp_path: Path) -> None:
    config = configured(tmp_path)
    key = tmp_path / "var" / "message-id.key"
    assert veil("config", "check", "--config", str(config)).returncode == 0
    fresh = veil("rewrite", "--config", str(config), "-", stdin=AGENT_MAIL)
    assert fresh.returncode == 0, fresh.stderr
    assert b"Message-ID: <" in fresh.stdout and b"helpdesk" not in fresh.stdout
    assert not key.exists()
    from gateway.identity.message_ids import ensure_message_id_key
    public = ensure_message_id_key(key).public_id("<1@helpdesk.corp.example>", "support.example")
    preview = veil("rewrite", "--config", str(config), "-", stdin=AGENT_MAIL)
    assert f"Message-ID: {public}\r\n".encode() in preview.stdout


def test_serve_refuses_to_start_on_a_bad_directory(tmp_path: Path) -> None:
    agents = tmp_path / "agents.toml"
    agents.write_text('[[agent]]\nname = "X"\n')
    config = configured(tmp_path, directory={"path": str(agents)})
    result = veil("serve", "--config", str(config))
    assert result.returncode == 2
    assert str(agents).encode() in result.stderr and b"agent[0].addresses" in result.stderr
    assert os.path.exists(config)
