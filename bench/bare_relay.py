"""The baseline: a bare aiosmtpd relay (no rewriting, no signing) using Veil's own next-hop client.

python -m bench.bare_relay PORT NEXT_HOP WORKERS
"""

from __future__ import annotations

import asyncio
import os
import sys

from aiosmtpd.smtp import SMTP

from gateway.envelope import Envelope, Relayed
from gateway.relay import deliver


class BareRelay:
    def __init__(self, next_hop: str) -> None:
        self.next_hop = next_hop

    async def handle_DATA(self, server: SMTP, session: object, envelope: object) -> str:
        outcome = await deliver(self.next_hop, Envelope(envelope.mail_from,  # type: ignore[attr-defined]
                                                        tuple(envelope.rcpt_tos)),  # type: ignore[attr-defined]
                                envelope.original_content)  # type: ignore[attr-defined]
        return "250 OK" if isinstance(outcome, Relayed) else "451 4.3.0 next hop failed"


async def serve(sock: object, next_hop: str) -> None:
    loop = asyncio.get_running_loop()
    handler = BareRelay(next_hop)
    await loop.create_server(lambda: SMTP(handler, decode_data=False), sock=sock)  # type: ignore[arg-type]
    await asyncio.Event().wait()


def main() -> None:
    import socket
    port, next_hop, workers = int(sys.argv[1]), sys.argv[2], int(sys.argv[3])
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", port))
    sock.listen(512)
    sock.setblocking(False)
    for _ in range(workers - 1):
        if os.fork() == 0:
            break
    asyncio.run(serve(sock, next_hop))


if __name__ == "__main__":
    main()
