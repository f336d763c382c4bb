"""Veil behind Postfix: throughput Postfix -> Veil -> sink against Postfix -> sink, in one run,
with Postfix's own smtp-source and smtp-sink; and peak memory for one 50 MB message."""

from __future__ import annotations

import base64
import os
import re
import shutil
import smtplib
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))

from bench.bench_outbound import start_veil, wait_for_port  # noqa: E402
from postfix_harness import free_port, missing_programs, start_postfix  # noqa: E402

WORKERS = os.cpu_count() or 1

MESSAGES = int(os.environ.get("BENCH_POSTFIX_MESSAGES", "2000"))


def sent_count(log: str, sink_port: int) -> int:
    return len(re.findall(rf"relay=127\.0\.0\.1\[127\.0\.0\.1\]:{sink_port},.*status=sent", log))


def run_source(port: int, count: int) -> None:
    subprocess.run(["smtp-source", "-s", "8", "-m", str(count), "-l", "20000", "-c",
                    "-f", "jane.doe@corp.example", "-t", "customer@example.net",
                    f"127.0.0.1:{port}"], check=True, capture_output=True, timeout=900)


def throughput(postfix: object, port: int, sink_port: int, count: int) -> float:
    before = sent_count(postfix.log(), sink_port)  # type: ignore[attr-defined]
    started = time.perf_counter()
    run_source(port, count)
    deadline = time.monotonic() + 900
    while time.monotonic() < deadline:
        if sent_count(postfix.log(), sink_port) - before >= count:  # type: ignore[attr-defined]
            break
        time.sleep(0.2)
    return count / (time.perf_counter() - started)


def memory(folder: Path) -> None:
    sink_port = free_port()
    user = ["-u", "nobody"] if os.geteuid() == 0 else []
    sink = subprocess.Popen(["smtp-sink", *user, f"127.0.0.1:{sink_port}", "64"])
    veil, port = start_veil(folder, WORKERS, f"smtp://127.0.0.1:{sink_port}",
                            max_message_size=80_000_000)
    try:
        wait_for_port(sink_port)
        time.sleep(1)
        workers = subprocess.run(["pgrep", "-P", str(veil.pid)], capture_output=True,
                                 text=True).stdout.split() or [str(veil.pid)]

        def high_water() -> dict[str, int]:
            marks = {}
            for pid in workers:
                status = Path(f"/proc/{pid}/status").read_text()
                marks[pid] = int(re.search(r"VmHWM:\s+(\d+)", status).group(1)) * 1024  # type: ignore[union-attr]
            return marks

        idle = high_water()
        payload = base64.encodebytes(os.urandom(37 * 1024 * 1024))
        message = (b"From: Jane Doe <jane.doe@corp.example>\r\nTo: c@example.net\r\n"
                   b"Subject: big\r\nMIME-Version: 1.0\r\n"
                   b'Content-Type: multipart/mixed; boundary="b"\r\n\r\n--b\r\n'
                   b"Content-Type: text/plain\r\n\r\nThe logs you asked for. Jane\r\n--b\r\n"
                   b"Content-Type: application/octet-stream\r\nContent-Transfer-Encoding: base64"
                   b"\r\n\r\n" + payload.replace(b"\n", b"\r\n") + b"--b--\r\n")
        started = time.perf_counter()
        with smtplib.SMTP("127.0.0.1", port, timeout=600) as client:
            client.sendmail("jane.doe@corp.example", ["c@example.net"], message)
        elapsed = time.perf_counter() - started
        after = high_water()
        pid = max(after, key=lambda p: after[p] - idle[p])  # the worker that took the message
        peak, baseline = after[pid], idle[pid]
        size = len(message)
        print(f"memory: one {size / 1e6:.1f} MB message relayed in {elapsed:.1f} s; worker peak "
              f"RSS {peak / 1e6:.0f} MB, {(peak - baseline) / 1e6:.0f} MB above the idle "
              f"{baseline / 1e6:.0f} MB = {(peak - baseline) / size:.1f}x the message "
              f"(target < 4x)")
    finally:
        os.killpg(veil.pid, 15)
        veil.wait(30)
        sink.terminate()
        sink.wait()


def main() -> None:
    reason = missing_programs()
    if reason or not shutil.which("smtp-source"):
        print(f"skipped: {reason or 'smtp-source is not installed (Debian package postfix)'}")
        return
    with tempfile.TemporaryDirectory(prefix="veil-bench-") as name:
        folder = Path(name)
        sink_port = free_port()
        user = ["-u", "nobody"] if os.geteuid() == 0 else []
        sink = subprocess.Popen(["smtp-sink", *user, f"127.0.0.1:{sink_port}", "256"])
        veil_out = free_port()
        postfix = start_postfix(veil_out=veil_out, veil_in=free_port(), sink=sink_port)
        veil = None
        try:
            veil, _ = start_veil(folder, WORKERS, f"smtp://127.0.0.1:{postfix.reinject}",
                                 port=veil_out)
            throughput(postfix, postfix.reinject, sink_port, 200)  # warm-up
            direct = throughput(postfix, postfix.reinject, sink_port, MESSAGES)
            through = throughput(postfix, postfix.submission, sink_port, MESSAGES)
            print(f"{MESSAGES} messages of 20 KB, smtp-source -s 8, smtp-sink, "
                  f"{os.cpu_count()} Veil workers")
            print(f"  Postfix -> sink:        {direct:.0f} msg/s")
            print(f"  Postfix -> Veil -> sink: {through:.0f} msg/s "
                  f"({through / direct:.2f} of direct)")
        finally:
            if veil is not None:
                os.killpg(veil.pid, 15)
                veil.wait(30)
            postfix.stop()
            sink.terminate()
            sink.wait()
        memory(folder)


if __name__ == "__main__":
    main()
