"""Veil behind a real Postfix, with swaks as the client, all on loopback.

Skipped, with the reason, only when Postfix or swaks cannot be had (`make test` installs them
through apt when it runs as root).
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Iterator

import pytest
from aiosmtpd.smtp import SMTP

from conftest import ROOT, SinkHandler, write_config
from postfix_harness import PostfixInstance, free_port, missing_programs, start_postfix

pytestmark = pytest.mark.skipif(missing_programs() is not None,
                                reason=missing_programs() or "")

AGENT_BODY = ("Hi,\n\nYour refund is on its way. Call me on +1 555 010 7788 if it is not.\n\n"
              "-- \nJane Doe\nAcme Support\n")


class ThreadedSink:
    """A real SMTP sink running its own event loop in a thread."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.handler = SinkHandler()
        self.loop = asyncio.new_event_loop()
        self.ready = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()
        self.ready.wait(10)

    def _run(self) -> None:
        asyncio.set_event_loop(self.loop)
        self.server = self.loop.run_until_complete(self.loop.create_server(
            lambda: SMTP(self.handler, decode_data=False), "127.0.0.1", self.port))
        self.ready.set()
        self.loop.run_forever()

    def stop(self) -> None:
        async def close() -> None:
            self.server.close()
            await self.server.wait_closed()
        asyncio.run_coroutine_threadsafe(close(), self.loop).result(10)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(10)
        self.loop.close()

    def wait_for(self, count: int, timeout: float = 60.0) -> list:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and len(self.handler.messages) < count:
            time.sleep(0.2)
        return list(self.handler.messages)


class Veil:
    def __init__(self, config: Path) -> None:
        self.config = config
        self.process: subprocess.Popen[bytes] | None = None

    def start(self, port: int) -> None:
        self.process = subprocess.Popen(
            [sys.executable, "-m", "gateway", "serve", "--config", str(self.config)], cwd=ROOT,
            stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 30
        import socket
        while time.monotonic() < deadline:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                return
            except OSError:
                time.sleep(0.1)
        raise RuntimeError("veil did not start")

    def stop(self, sig: int = signal.SIGTERM) -> None:
        if self.process and self.process.poll() is None:
            self.process.send_signal(sig)
            self.process.wait(30)

    def cli(self, *args: str) -> str:
        return subprocess.run([sys.executable, "-m", "gateway", *args, "--config",
                               str(self.config)], cwd=ROOT, capture_output=True, check=True,
                              timeout=60).stdout.decode()


@pytest.fixture
def deployment(tmp_path: Path) -> Iterator[dict]:
    sink = ThreadedSink(free_port())
    veil_out, veil_in, review = free_port(), free_port(), free_port()
    postfix = start_postfix(veil_out=veil_out, veil_in=veil_in, sink=sink.port)
    config = write_config(tmp_path, outbound={"listen": f"127.0.0.1:{veil_out}",
                                              "next_hop": f"smtp://127.0.0.1:{postfix.reinject}"},
                          inbound={"listen": f"127.0.0.1:{veil_in}",
                                   "next_hop": f"smtp://127.0.0.1:{postfix.reinject}"},
                          review={"listen": f"127.0.0.1:{review}"})
    veil = Veil(config)
    veil.cli("dkim", "keygen")
    veil.start(veil_out)
    try:
        yield {"sink": sink, "postfix": postfix, "veil": veil, "config": config,
               "veil_out": veil_out}
    finally:
        veil.stop()
        postfix.stop()
        sink.stop()


def swaks(port: int, sender: str, recipient: str, *extra: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["swaks", "--server", f"127.0.0.1:{port}", "--from", sender,
                           "--to", recipient, "--helo", "client.test.example", *extra],
                          capture_output=True, text=True, timeout=60)


def dkim_record(config: Path) -> str:
    from gateway.auth.dkim import dns_txt_record
    from gateway.config import load_config
    key = load_config(config).dkim.private_key.read_bytes()
    return "".join(dns_txt_record("support.example", "veil", key).split('"')[1::2])


def test_outbound_through_postfix_arrives_rewritten_and_signed(deployment: dict) -> None:
    postfix: PostfixInstance = deployment["postfix"]
    result = swaks(postfix.submission, "jane.doe@corp.example", "customer@example.net",
                   "--header", 'From: "Jane Doe via Acme Support" <jane.doe@corp.example>',
                   "--header", "Subject: Your refund", "--body", AGENT_BODY)
    assert result.returncode == 0, result.stdout + result.stderr
    [message] = deployment["sink"].wait_for(1)
    assert message.mail_from == "alex.morgan@support.example"
    assert message.rcpt_tos == ["customer@example.net"]
    for trace in (b"Jane", b"jane.doe", b"555 010 7788"):
        assert trace not in message.data, (trace, postfix.log())
    assert b"Alex Morgan" in message.data
    verifier = subprocess.run(
        ["perl", str(ROOT / "tests" / "dkim_verify.pl")], input=message.data, capture_output=True,
        env={**os.environ, "DKIM_NAME": "veil._domainkey.support.example",
             "DKIM_TXT": dkim_record(deployment["config"])})
    if verifier.returncode != 0 and b"Mail/DKIM" in verifier.stderr:
        pytest.skip("Perl's Mail::DKIM is not installed (Debian: libmail-dkim-perl)")
    assert verifier.stdout.decode().splitlines() == ["pass support.example"]


def test_inbound_harassment_is_held_and_clean_reply_reaches_the_agent(deployment: dict) -> None:
    postfix: PostfixInstance = deployment["postfix"]
    harassing = swaks(postfix.mx, "creep@example.net", "alex.morgan@support.example",
                      "--header", "Subject: hey", "--body",
                      "You are so hot. Send me a pic of you, I know where you live.")
    clean = swaks(postfix.mx, "customer@example.net", "alex.morgan@support.example",
                  "--header", "Subject: Re: refund", "--body", "Thanks, the refund arrived.")
    assert harassing.returncode == 0 and clean.returncode == 0
    [delivered] = deployment["sink"].wait_for(1)
    assert delivered.rcpt_tos == ["jane.doe@corp.example"]
    assert b"the refund arrived" in delivered.data
    assert b"X-Veil-Verdict: deliver" in delivered.data
    deadline = time.monotonic() + 30
    held: list = []
    while time.monotonic() < deadline and not held:
        held = [json.loads(line) for line in
                deployment["veil"].cli("quarantine", "list", "--json").splitlines()]
        time.sleep(0.3)
    assert [item["mail_from"] for item in held] == ["creep@example.net"]
    time.sleep(1)
    assert len(deployment["sink"].handler.messages) == 1


def test_gateway_down_postfix_keeps_and_retries(deployment: dict) -> None:
    postfix: PostfixInstance = deployment["postfix"]
    veil: Veil = deployment["veil"]
    veil.stop()
    for index in range(3):
        result = swaks(postfix.submission, "jane.doe@corp.example", "customer@example.net",
                       "--header", f"Subject: ticket {index}", "--body", AGENT_BODY)
        assert result.returncode == 0
    time.sleep(3)
    assert deployment["sink"].handler.messages == []
    assert postfix.queue_size() >= 3
    veil.start(deployment["veil_out"])
    postfix.flush()
    messages = deployment["sink"].wait_for(3, timeout=90)
    subjects = sorted(m.data.split(b"Subject: ")[1].split(b"\r\n")[0] for m in messages)
    assert subjects == [b"ticket 0", b"ticket 1", b"ticket 2"]
    assert all(b"Jane" not in m.data for m in messages)


def test_next_hop_down_gets_451_and_postfix_delivers_later(tmp_path: Path) -> None:
    sink_port = free_port()
    veil_out, veil_in, review = free_port(), free_port(), free_port()
    postfix = start_postfix(veil_out=veil_out, veil_in=veil_in, sink=sink_port)
    config = write_config(tmp_path, outbound={"listen": f"127.0.0.1:{veil_out}",
                                              "next_hop": f"smtp://127.0.0.1:{sink_port}"},
                          inbound={"listen": f"127.0.0.1:{veil_in}"},
                          review={"listen": f"127.0.0.1:{review}"})
    veil = Veil(config)
    veil.cli("dkim", "keygen")
    veil.start(veil_out)
    sink: ThreadedSink | None = None
    try:
        for index in range(2):
            assert swaks(postfix.submission, "jane.doe@corp.example", "customer@example.net",
                         "--header", f"Subject: queued {index}", "--body",
                         AGENT_BODY).returncode == 0
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and "451" not in postfix.log():
            time.sleep(0.3)
        assert "451" in postfix.log()  # Veil told Postfix to retry
        assert postfix.queue_size() >= 2
        sink = ThreadedSink(sink_port)
        postfix.flush()
        messages = sink.wait_for(2, timeout=90)
        assert len(messages) == 2
    finally:
        veil.stop()
        postfix.stop()
        if sink:
            sink.stop()
