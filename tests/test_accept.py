"""Workers accepting from one shared socket: the least loaded takes each new connection.

Each acceptor here stands for one worker process; they watch duplicates of one listening socket
(as forked workers hold it), so the kernel hands each connection to whichever accepts first.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Iterator

from gateway.accept import Loads, SharedAcceptor
from gateway.app import bind
from gateway.config import HostPort
from gateway.protocol import VeilSMTP


class _Handler:
    """aiosmtpd's defaults for every command."""


async def _open(port: int) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    assert (await reader.readline()).startswith(b"220")  # accepted and greeted
    return reader, writer


async def _settle(condition, seconds: float = 5.0) -> None:  # type: ignore[no-untyped-def]
    deadline = asyncio.get_running_loop().time() + seconds
    while not condition():
        assert asyncio.get_running_loop().time() < deadline
        await asyncio.sleep(0.01)


@contextlib.contextmanager
def _acceptors(count: int) -> Iterator[tuple[int, Loads, list[SharedAcceptor]]]:
    """`count` workers' acceptors on one listening socket: its port, their loads, them."""
    listening = bind(HostPort("127.0.0.1", 0))
    loads = Loads(count)
    acceptors = [SharedAcceptor(listening.dup(), lambda: VeilSMTP(_Handler()), loads, index)
                 for index in range(count)]
    for acceptor in acceptors:
        acceptor.sock.setblocking(False)
        acceptor.start()
    try:
        yield listening.getsockname()[1], loads, acceptors
    finally:
        for acceptor in acceptors:
            acceptor.close()
            acceptor.sock.close()
        listening.close()


async def test_held_connections_are_shared_out_evenly() -> None:
    with _acceptors(2) as (port, _, acceptors):
        clients = [await _open(port) for _ in range(12)]
        # Each new connection went to the worker holding fewer: never more than one apart.
        assert sorted(acceptor.open for acceptor in acceptors) == [6, 6]
        for _, writer in clients[:6]:
            writer.close()
        await _settle(lambda: sum(acceptor.open for acceptor in acceptors) == 6)
        clients = clients[6:] + [await _open(port) for _ in range(6)]
        assert sorted(acceptor.open for acceptor in acceptors) == [6, 6]
        for _, writer in clients:
            writer.close()
        await _settle(lambda: all(acceptor.open == 0 for acceptor in acceptors))


async def test_a_burst_is_shared_out_too() -> None:
    with _acceptors(2) as (port, _, acceptors):
        # Opened all at once: they wait in the backlog, and one wake-up takes one of them.
        clients = await asyncio.gather(*(_open(port) for _ in range(20)))
        assert max(acceptor.open for acceptor in acceptors) <= 11
        for _, writer in clients:
            writer.close()


async def test_a_stopped_or_absent_worker_leaves_every_connection_to_the_others() -> None:
    with _acceptors(3) as (port, loads, acceptors):
        acceptors[0].close()  # stopping
        loads.absent(1)  # died: the parent marked it until its successor starts
        acceptors[1].close()
        clients = [await _open(port) for _ in range(4)]
        assert [acceptor.open for acceptor in acceptors] == [0, 0, 4]
        for _, writer in clients:
            writer.close()


def test_least_loaded() -> None:
    loads = Loads(3)
    loads.set(0, 2)
    loads.set(1, 1)
    assert [loads.least_loaded(i) for i in range(3)] == [False, True, False]  # 2 not started
    loads.set(2, 1)
    assert [loads.least_loaded(i) for i in range(3)] == [False, True, True]
    loads.absent(2)
    assert [loads.least_loaded(i) for i in range(3)] == [False, True, False]
