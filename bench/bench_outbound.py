"""Outbound throughput and added latency: Veil against a bare aiosmtpd relay, in one run.

20 KB helpdesk messages over 32 concurrent connections into each relay, both relaying to the
same sink (Postfix's smtp-sink when installed). Peak throughput is measured closed-loop; latency
open-loop at half of Veil's peak rate, for Veil and for the bare relay at that same rate.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from bench.messages import corpus
from bench.smtpload import latency_at, throughput

ROOT = Path(__file__).resolve().parent.parent
SECONDS = float(os.environ.get("BENCH_SECONDS", "8"))
CONNECTIONS = 32


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def wait_for_port(port: int, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1) as conn:
                conn.recv(100)
                return
        except OSError:
            time.sleep(0.1)
    raise RuntimeError(f"nothing listening on {port}")


def start_sink() -> tuple[subprocess.Popen[bytes], int, str]:
    port = free_port()
    smtp_sink = shutil.which("smtp-sink") or "/usr/sbin/smtp-sink"
    if os.path.exists(smtp_sink):
        user = ["-u", "nobody"] if os.geteuid() == 0 else []
        process = subprocess.Popen([smtp_sink, *user, f"127.0.0.1:{port}", "1024"])
        name = "Postfix smtp-sink"
    else:
        process = subprocess.Popen([sys.executable, "-m", "bench.sink", str(port)], cwd=ROOT)
        name = "aiosmtpd discard sink"
    wait_for_port(port)
    return process, port, name


def start_bare(workers: int, sink_port: int) -> tuple[subprocess.Popen[bytes], int]:
    port = free_port()
    process = subprocess.Popen([sys.executable, "-m", "bench.bare_relay", str(port),
                                f"smtp://127.0.0.1:{sink_port}", str(workers)], cwd=ROOT,
                               start_new_session=True)
    wait_for_port(port)
    return process, port


def start_veil(folder: Path, workers: int, next_hop: str, port: int | None = None,
               max_message_size: int = 33_554_432) -> tuple[subprocess.Popen[bytes], int]:
    """Veil on its own config in `folder`, outbound listener on `port` (or a free one)."""
    port = port or free_port()
    config = folder / "config.toml"
    config.write_text(f"""
workers = {workers}
log_level = "warning"
[outbound]
listen = "127.0.0.1:{port}"
next_hop = "{next_hop}"
internal_domains = ["corp.example"]
[inbound]
listen = "127.0.0.1:{free_port()}"
[directory]
path = "{ROOT / 'agents.toml'}"
[dkim]
private_key = "dkim.key"
[rules]
paths = ["{ROOT / 'rules'}"]
[quarantine]
database = "quarantine.sqlite3"
[review]
listen = "127.0.0.1:{free_port()}"
[limits]
max_message_size = {max_message_size}
""")
    if not (folder / "dkim.key").exists():
        subprocess.run([sys.executable, "-m", "gateway", "dkim", "keygen", "--config", str(config)],
                       cwd=ROOT, check=True, stdout=subprocess.DEVNULL)
    process = subprocess.Popen([sys.executable, "-m", "gateway", "serve", "--config", str(config)],
                               cwd=ROOT, start_new_session=True, stderr=subprocess.DEVNULL)
    wait_for_port(port)
    return process, port


def stop(process: subprocess.Popen[bytes]) -> None:
    try:
        os.killpg(process.pid, 15)
    except (ProcessLookupError, PermissionError):
        process.terminate()
    try:
        process.wait(10)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, 9)
        process.wait()


def measure(workers: int, sink_port: int, folder: Path) -> tuple[float, float]:
    """Print one worker count's figures; return (bare relay peak, Veil peak) in msg/s."""
    messages = corpus(64)
    bare, bare_port = start_bare(workers, sink_port)
    try:
        asyncio.run(throughput(bare_port, messages, connections=CONNECTIONS, seconds=2))  # warm-up
        bare_peak = asyncio.run(throughput(bare_port, messages, connections=CONNECTIONS,
                                           seconds=SECONDS))
    finally:
        stop(bare)
    veil, veil_port = start_veil(folder, workers, f"smtp://127.0.0.1:{sink_port}")
    try:
        asyncio.run(throughput(veil_port, messages, connections=CONNECTIONS, seconds=2))
        veil_peak = asyncio.run(throughput(veil_port, messages, connections=CONNECTIONS,
                                           seconds=SECONDS))
        half = max(1.0, veil_peak.rate / 2)
        veil_half = asyncio.run(latency_at(veil_port, messages, rate=half, seconds=SECONDS))
    finally:
        stop(veil)
    bare, bare_port = start_bare(workers, sink_port)
    try:
        bare_half = asyncio.run(latency_at(bare_port, messages, rate=half, seconds=SECONDS))
    finally:
        stop(bare)
    print(f"workers={workers}, {CONNECTIONS} connections, ~20 KB messages, {SECONDS:.0f} s runs")
    print(f"  bare relay peak:   {bare_peak.summary()}")
    print(f"  veil peak:         {veil_peak.summary()}")
    print(f"  throughput ratio veil/bare: {veil_peak.rate / bare_peak.rate:.2f} (target >= 0.8)")
    print(f"  at half veil peak ({half:.0f} msg/s):")
    print(f"    bare relay: {bare_half.summary()}")
    print(f"    veil:       {veil_half.summary()}")
    added50 = (veil_half.percentile(50) - bare_half.percentile(50)) * 1000
    added99 = (veil_half.percentile(99) - bare_half.percentile(99)) * 1000
    print(f"  added latency: p50 {added50:.1f} ms, p99 {added99:.1f} ms (target p99 < 50 ms)")
    return bare_peak.rate, veil_peak.rate


def main() -> None:
    sink, sink_port, sink_name = start_sink()
    print(f"sink: {sink_name}")
    try:
        with tempfile.TemporaryDirectory(prefix="veil-bench-") as folder:
            peaks = {workers: measure(workers, sink_port, Path(folder))
                     for workers in sorted({1, os.cpu_count() or 1})}
            most = max(peaks)
            # aiosmtpd serves from one process; Veil may use every core (several workers).
            print(f"veil with {most} workers / bare relay in one process: "
                  f"{peaks[most][1] / peaks[1][0]:.2f} (target >= 0.8)")
    finally:
        sink.terminate()
        sink.wait()


if __name__ == "__main__":
    main()
