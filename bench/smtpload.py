"""A small, cheap SMTP load generator: raw asyncio streams, one message per transaction.

Closed loop (`throughput`): N connections send as fast as replies come back.
Open loop (`latency_at`): messages start at a fixed rate; latency is measured from the start of
the transaction to the final reply, so a queue in the server shows up as latency.
"""

from __future__ import annotations

import asyncio
import statistics
import time
from dataclasses import dataclass


@dataclass
class Result:
    sent: int
    failed: int
    seconds: float
    latencies: list[float]

    @property
    def rate(self) -> float:
        return self.sent / self.seconds if self.seconds else 0.0

    def percentile(self, p: float) -> float:
        if not self.latencies:
            return float("nan")
        ordered = sorted(self.latencies)
        return ordered[min(len(ordered) - 1, int(round(p / 100 * (len(ordered) - 1))))]

    def summary(self) -> str:
        return (f"{self.sent} sent, {self.failed} failed in {self.seconds:.1f} s: "
                f"{self.rate:.0f} msg/s, p50 {self.percentile(50) * 1000:.1f} ms, "
                f"p99 {self.percentile(99) * 1000:.1f} ms")


class Connection:
    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader, self.writer = reader, writer

    @classmethod
    async def open(cls, port: int) -> "Connection":
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        connection = cls(reader, writer)
        await connection.reply()
        await connection.command(b"EHLO bench.example\r\n")
        return connection

    async def reply(self) -> int:
        while True:
            line = await self.reader.readline()
            if not line:
                raise ConnectionError("closed")
            if line[3:4] != b"-":
                return int(line[:3])

    async def command(self, data: bytes) -> int:
        self.writer.write(data)
        return await self.reply()

    async def send(self, sender: str, recipient: str, message: bytes) -> bool:
        if await self.command(f"MAIL FROM:<{sender}>\r\n".encode()) != 250:
            return False
        if await self.command(f"RCPT TO:<{recipient}>\r\n".encode()) != 250:
            await self.command(b"RSET\r\n")
            return False
        if await self.command(b"DATA\r\n") != 354:
            return False
        self.writer.write(message)
        return await self.command(b".\r\n") == 250

    async def close(self) -> None:
        try:
            await self.command(b"QUIT\r\n")
        except (ConnectionError, OSError):
            pass
        self.writer.close()


def dot_stuff(message: bytes) -> bytes:
    lines = message.replace(b"\r\n", b"\n").split(b"\n")
    body = b"\r\n".join(b"." + line if line.startswith(b".") else line for line in lines)
    return body if body.endswith(b"\r\n") else body + b"\r\n"


async def throughput(port: int, messages: list[tuple[str, bytes]], *, connections: int,
                     seconds: float, recipient: str = "customer@example.net") -> Result:
    stuffed = [(sender, dot_stuff(m)) for sender, m in messages]
    deadline = time.perf_counter() + seconds
    sent = failed = 0
    latencies: list[float] = []

    async def worker(offset: int) -> None:
        nonlocal sent, failed
        connection = await Connection.open(port)
        index = offset
        while time.perf_counter() < deadline:
            sender, message = stuffed[index % len(stuffed)]
            index += connections
            started = time.perf_counter()
            ok = await connection.send(sender, recipient, message)
            latencies.append(time.perf_counter() - started)
            if ok:
                sent += 1
            else:
                failed += 1
        await connection.close()

    started = time.perf_counter()
    await asyncio.gather(*(worker(i) for i in range(connections)))
    return Result(sent, failed, time.perf_counter() - started, latencies)


async def latency_at(port: int, messages: list[tuple[str, bytes]], *, rate: float,
                     seconds: float, connections: int = 32,
                     recipient: str = "customer@example.net") -> Result:
    """Start one message every 1/rate seconds on a pool of connections; measure each."""
    stuffed = [(sender, dot_stuff(m)) for sender, m in messages]
    pool: asyncio.Queue[Connection] = asyncio.Queue()
    for _ in range(connections):
        pool.put_nowait(await Connection.open(port))
    latencies: list[float] = []
    sent = failed = 0

    async def one(index: int, scheduled: float) -> None:
        nonlocal sent, failed
        connection = await pool.get()
        sender, message = stuffed[index % len(stuffed)]
        ok = await connection.send(sender, recipient, message)
        latencies.append(time.perf_counter() - scheduled)  # includes waiting for a connection
        sent, failed = (sent + 1, failed) if ok else (sent, failed + 1)
        pool.put_nowait(connection)

    tasks = []
    started = time.perf_counter()
    total = int(rate * seconds)
    for index in range(total):
        scheduled = started + index / rate
        delay = scheduled - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        tasks.append(asyncio.create_task(one(index, scheduled)))
    await asyncio.gather(*tasks)
    elapsed = time.perf_counter() - started
    while not pool.empty():
        await pool.get_nowait().close()
    return Result(sent, failed, elapsed, latencies)


def median(values: list[float]) -> float:
    return statistics.median(values) if values else float("nan")
