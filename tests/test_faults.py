"""Faults: Veil killed with SIGKILL mid-transaction loses no acknowledged message."""

from __future__ import annotations

import os
import signal
import smtplib
import subprocess
import sys
import threading
import time
from pathlib import Path

from conftest import ROOT, write_config
from postfix_harness import free_port
from test_postfix_e2e import ThreadedSink


def start_veil(config: Path, port: int) -> subprocess.Popen[bytes]:
    process = subprocess.Popen([sys.executable, "-m", "gateway", "serve", "--config",
                                str(config)], cwd=ROOT, stderr=subprocess.DEVNULL,
                               start_new_session=True)
    deadline = time.monotonic() + 30
    import socket
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return process
        except OSError:
            time.sleep(0.05)
    raise RuntimeError("veil did not start")


def test_sigkill_mid_transaction_loses_no_acknowledged_message(tmp_path: Path) -> None:
    sink = ThreadedSink(free_port())
    sink.handler.data_delay = 0.02  # keep transactions in flight when the kill lands
    port = free_port()
    config = write_config(tmp_path, outbound={"listen": f"127.0.0.1:{port}",
                                              "next_hop": f"smtp://127.0.0.1:{sink.port}"},
                          inbound={"listen": f"127.0.0.1:{free_port()}"},
                          review={"listen": f"127.0.0.1:{free_port()}"})
    subprocess.run([sys.executable, "-m", "gateway", "dkim", "keygen", "--config", str(config)],
                   cwd=ROOT, check=True, capture_output=True)
    acknowledged: list[str] = []
    refused: list[str] = []
    stop = threading.Event()
    lock = threading.Lock()

    def client(number: int) -> None:
        index = 0
        while not stop.is_set():
            subject = f"c{number}-{index}"
            index += 1
            message = (f"From: Jane Doe <jane.doe@corp.example>\r\nTo: c@example.net\r\n"
                       f"Subject: {subject}\r\n\r\nHello from Jane.\r\n").encode()
            try:
                with smtplib.SMTP("127.0.0.1", port, timeout=10) as smtp:
                    smtp.sendmail("jane.doe@corp.example", ["c@example.net"], message)
                with lock:
                    acknowledged.append(subject)
            except (smtplib.SMTPException, OSError):
                with lock:
                    refused.append(subject)
                time.sleep(0.05)

    veil = start_veil(config, port)
    threads = [threading.Thread(target=client, args=(n,)) for n in range(4)]
    try:
        for thread in threads:
            thread.start()
        time.sleep(1.5)
        os.killpg(veil.pid, signal.SIGKILL)
        veil.wait(10)
        time.sleep(0.5)
        veil = start_veil(config, port)
        time.sleep(1.0)
    finally:
        stop.set()
        for thread in threads:
            thread.join(30)
        os.killpg(veil.pid, signal.SIGTERM)
        veil.wait(30)
    delivered = {m.data.split(b"Subject: ")[1].split(b"\r\n")[0].decode()
                 for m in sink.wait_for(len(acknowledged))}
    sink.stop()
    assert acknowledged and refused, (len(acknowledged), len(refused))
    missing = [subject for subject in acknowledged if subject not in delivered]
    assert missing == []
