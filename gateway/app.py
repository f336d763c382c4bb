"""`veil serve`: load everything once, bind the listeners, run one or more worker processes.

Sockets are bound in the parent and inherited by forked workers, so both cores serve. All
workers accept from the one listening socket of each SMTP port, the worker with the fewest open
connections first (gateway/accept.py): long-lived connections from a helpdesk's pool are shared
out evenly, where the kernel's split between per-worker sockets (SO_REUSEPORT) left one worker
with most of them. A restarted worker accepts from the same sockets, which the parent keeps
open, and connections waiting there are served meanwhile by the others. The review desk,
metrics and periodic jobs run in the first worker only.
"""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import ssl
import sys
from dataclasses import dataclass
from typing import Any

from gateway.accept import Loads, SharedAcceptor
from gateway.config import Config, ConfigError, HostPort, load_directory
from gateway.eventlog import configure, log_event
from gateway.heap import freeze_startup_state


@dataclass
class Listeners:
    outbound: socket.socket  # shared by every worker
    inbound: socket.socket
    review: socket.socket
    outbound_loads: Loads  # each worker's open connections on the socket above
    inbound_loads: Loads


def bind(address: HostPort) -> socket.socket:
    """A listening socket; fails if anything, another Veil included, holds the port."""
    family = socket.AF_INET6 if ":" in address.host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((address.host, address.port))
    except OSError as error:
        sock.close()
        raise ConfigError("(listen)", str(address), f"cannot listen: {error.strerror}",
                          "choose a free port or stop the program that uses it") from error
    sock.listen(512)
    sock.setblocking(False)
    return sock


def validate_for_serving(config: Config, *, create_keys: bool = True) -> dict[str, Any]:
    """Everything `serve` needs, loaded and checked; raises ConfigError with the fix.

    With `create_keys`, a missing message-id key is made (`serve` calls this in the parent,
    before forking, so every worker holds the same key); without, an existing one is only
    checked and "message_id_key" is None when there is none yet."""
    from gateway.auth.dkim import load_signer
    from gateway.identity.message_ids import (MessageIdKey, ensure_message_id_key,
                                              load_message_id_key)
    from gateway.rules.engine import RuleError, load_ruleset

    directory = load_directory(config.directory_path)
    signer = load_signer(config.dkim)
    try:
        ruleset = load_ruleset(config.rules.paths)
    except RuleError as error:
        raise ConfigError(config.path, "rules.paths", str(error), "correct the rule file") from error
    for section, cert, key in (("outbound", config.outbound.tls_cert, config.outbound.tls_key),
                               ("inbound", config.inbound.tls_cert, config.inbound.tls_key)):
        if cert is not None and key is not None:
            try:
                tls_context(cert, key)
            except (OSError, ssl.SSLError) as error:
                raise ConfigError(config.path, f"{section}.tls_cert",
                                  f"cannot load certificate or key: {error}",
                                  "point tls_cert and tls_key at a readable PEM pair") from error
    if config.outbound.auth_users is not None:
        from gateway.smtpauth import load_users
        load_users(config.outbound.auth_users)
    key_path = config.outbound.message_id_key
    message_id_key: MessageIdKey | None
    if create_keys:
        message_id_key = ensure_message_id_key(key_path)
    else:
        message_id_key = load_message_id_key(key_path) if key_path.exists() else None
    return {"directory": directory, "signer": signer, "ruleset": ruleset,
            "message_id_key": message_id_key}


def tls_context(cert: Any, key: Any) -> ssl.SSLContext:
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(str(cert), str(key))
    return context


def serve(config: Config) -> int:
    configure(config.log_level)
    loaded = validate_for_serving(config)
    listeners = Listeners(bind(config.outbound.listen), bind(config.inbound.listen),
                          bind(config.review.listen), Loads(config.workers),
                          Loads(config.workers))
    log_event("listening", outbound=str(config.outbound.listen),
              inbound=str(config.inbound.listen), review=str(config.review.listen),
              workers=config.workers)
    if config.workers == 1:
        asyncio.run(_worker(config, loaded, listeners, index=0))
        return 0
    return _supervise(config, loaded, listeners)


def _supervise(config: Config, loaded: dict[str, Any], listeners: Listeners) -> int:
    children: dict[int, int] = {}  # pid -> worker index

    def spawn(index: int) -> None:
        pid = os.fork()
        if pid == 0:
            signal.signal(signal.SIGTERM, signal.SIG_DFL)
            signal.signal(signal.SIGINT, signal.SIG_DFL)
            try:
                asyncio.run(_worker(config, loaded, listeners, index=index))
            finally:
                os._exit(0)
        children[pid] = index

    stopping = False

    def stop(signum: int, frame: Any) -> None:
        nonlocal stopping
        stopping = True
        for pid in list(children):
            try:
                os.kill(pid, signal.SIGTERM)
            except ProcessLookupError:
                pass

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    for index in range(config.workers):
        spawn(index)
    while children:
        try:
            pid, status = os.wait()
        except ChildProcessError:
            break
        index = children.pop(pid, 0)
        # Until its successor starts, the others take every connection.
        listeners.outbound_loads.absent(index)
        listeners.inbound_loads.absent(index)
        if not stopping:
            log_event("worker_exited", worker_pid=pid, status=status)
            spawn(index)
    return 0


async def _worker(config: Config, loaded: dict[str, Any], listeners: Listeners,
                  index: int) -> None:
    import uvicorn

    from gateway.auth.dkim import dns_txt_resolver
    from gateway.quarantine.store import QuarantineStore
    from gateway.server import InboundHandler, OutboundHandler, Services, smtp_factory
    from gateway.web import build_web_app

    store = QuarantineStore.open(config.quarantine.database)
    services = Services(config=config, directory=loaded["directory"], store=store,
                        message_id_key=loaded["message_id_key"], signer=loaded["signer"],
                        ruleset=loaded["ruleset"], dkim_lookup=dns_txt_resolver())
    first = index == 0
    loop = asyncio.get_running_loop()
    servers = [
        SharedAcceptor(listeners.outbound,
                       smtp_factory(OutboundHandler(services), config,
                                    **_smtp_tls(config, "outbound")),
                       listeners.outbound_loads, index),
        SharedAcceptor(listeners.inbound,
                       smtp_factory(InboundHandler(services), config,
                                    **_smtp_tls(config, "inbound")),
                       listeners.inbound_loads, index),
    ]
    for server in servers:
        server.start()
    stop = asyncio.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    jobs: list[asyncio.Task[Any]] = []  # periodic jobs, cancelled at stop
    web: uvicorn.Server | None = None
    web_task: asyncio.Task[Any] | None = None
    if first:
        from gateway.quarantine.commands import retention_loop
        from gateway.quarantine.digest import digest_loop

        web = uvicorn.Server(uvicorn.Config(build_web_app(config, store), log_level="warning",
                                            lifespan="off"))
        web_task = asyncio.create_task(web.serve(sockets=[listeners.review]))
        jobs.append(asyncio.create_task(retention_loop(store, config)))
        jobs.append(asyncio.create_task(digest_loop(store, config)))
    else:
        listeners.review.close()
    freeze_startup_state()
    log_event("worker_ready", first=first)
    await stop.wait()
    for server in servers:
        server.close()
    if web is not None:
        web.should_exit = True  # uvicorn finishes the requests in progress
    for job in jobs:
        job.cancel()
    await asyncio.gather(*jobs, *([web_task] if web_task else []), return_exceptions=True)
    store.close()


def _smtp_tls(config: Config, section: str) -> dict[str, Any]:
    listener = getattr(config, section)
    kwargs: dict[str, Any] = {}
    if listener.tls_cert is not None:
        kwargs["tls_context"] = tls_context(listener.tls_cert, listener.tls_key)
    if section == "outbound" and config.outbound.auth_users is not None:
        from gateway.smtpauth import authenticator_for
        kwargs["authenticator"] = authenticator_for(config.outbound.auth_users)
        kwargs["auth_require_tls"] = listener.tls_cert is not None
    return kwargs


def main_error(error: ConfigError) -> int:
    print(f"veil: {error}", file=sys.stderr)
    return 2
