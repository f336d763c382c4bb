"""Worker processes accepting from one shared listening socket, the least loaded first.

With a socket per worker (SO_REUSEPORT) the kernel hashes each new connection to one of them,
whatever each worker already holds: a helpdesk's few long-lived connections split unevenly
(12/20 of 32 in the benchmark) and one worker queues most of the load. Here every worker
watches the one socket the parent bound, and takes a connection only while it holds no more
open connections than any other worker, one connection per wake-up, so even a burst is shared
out as it arrives. The counts live in memory the parent maps before it forks; each worker
writes only its own slot.
"""

from __future__ import annotations

import asyncio
import logging
import mmap
import socket
from collections.abc import Callable
from typing import Any

log = logging.getLogger("veil.accept")

ABSENT = 2**62  # the count of a slot whose worker is not running: never the least loaded
RECHECK_SECONDS = 0.005  # how soon a worker that is not the least loaded looks again
PAUSE_SECONDS = 1.0  # after an accept error such as running out of file descriptors


class Loads:
    """Open connections of each worker on one listening socket, shared by all of them."""

    def __init__(self, workers: int) -> None:
        # Anonymous shared memory: forked workers see one another's writes, and no file is
        # needed (a sandboxed service may have no writable /dev/shm).
        self._memory = mmap.mmap(-1, 8 * workers)
        self._counts = memoryview(self._memory).cast("q")
        for index in range(workers):
            self._counts[index] = ABSENT

    def set(self, index: int, count: int) -> None:
        self._counts[index] = count

    def absent(self, index: int) -> None:
        """The worker in `index` stopped (the parent says so until its successor starts)."""
        self._counts[index] = ABSENT

    def least_loaded(self, index: int) -> bool:
        """True when no other running worker holds fewer connections than `index` does."""
        mine = self._counts[index]
        return all(mine <= count for other, count in enumerate(self._counts) if other != index)


class SharedAcceptor:
    """Accepts connections on `sock` for this worker while it is (one of) the least loaded,
    and serves each with a protocol from `factory` (aiosmtpd's SMTP or a subclass)."""

    def __init__(self, sock: socket.socket, factory: Callable[[], Any], loads: Loads,
                 index: int) -> None:
        self.sock = sock
        self.factory = factory
        self.loads = loads
        self.index = index
        self.open = 0
        self._loop = asyncio.get_running_loop()
        self._watching = False
        self._later: asyncio.TimerHandle | None = None
        self._stopped = False
        self._tasks: set[asyncio.Task[None]] = set()

    def start(self) -> None:
        self.loads.set(self.index, 0)
        self._update()

    def close(self) -> None:
        """Stop accepting (the other workers take every connection from now on); connections
        already open go on."""
        self._stopped = True
        self.loads.absent(self.index)
        self._unwatch()
        if self._later is not None:
            self._later.cancel()
            self._later = None

    def _watch(self) -> None:
        if not self._watching:
            self._loop.add_reader(self.sock.fileno(), self._accept)
            self._watching = True

    def _unwatch(self) -> None:
        if self._watching:
            self._loop.remove_reader(self.sock.fileno())
            self._watching = False

    def _update(self) -> None:
        """Watch the socket while this worker is the least loaded; else look again soon (the
        others' counts change without telling this process)."""
        if self._stopped:
            return
        if self.loads.least_loaded(self.index):
            self._watch()
        else:
            self._unwatch()
            self._look_again(RECHECK_SECONDS)

    def _look_again(self, delay: float) -> None:
        if self._later is None:
            self._later = self._loop.call_later(delay, self._looked_again)

    def _looked_again(self) -> None:
        self._later = None
        self._update()

    def _accept(self) -> None:
        try:
            connection, _ = self.sock.accept()
        except (BlockingIOError, InterruptedError, ConnectionAbortedError):
            return  # another worker took it, or the client gave up
        except OSError as error:
            log.warning("accept failed, pausing: %s", error)
            self._unwatch()
            self._look_again(PAUSE_SECONDS)
            return
        connection.setblocking(False)
        self.open += 1
        self.loads.set(self.index, self.open)  # before the next wake-up, in every worker
        task = self._loop.create_task(self._serve(connection))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        self._update()

    async def _serve(self, connection: socket.socket) -> None:
        released = False

        def release() -> None:
            nonlocal released
            if not released:
                released = True
                self.open -= 1
                if not self._stopped:
                    self.loads.set(self.index, self.open)
                self._update()

        def protocol() -> Any:
            made = self.factory()
            made.on_connection_lost = release
            return made

        try:
            await self._loop.connect_accepted_socket(protocol, connection)
        except BaseException as error:
            connection.close()
            release()
            if not isinstance(error, Exception):
                raise  # cancelled: the worker is stopping
            log.warning("could not set up an accepted connection: %s", error)
