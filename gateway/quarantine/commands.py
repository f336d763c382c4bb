"""`veil quarantine ...`, `veil reviewer ...` and `veil audit`, plus the retention job."""

from __future__ import annotations

import argparse
import asyncio
import getpass
import json
import os
import re
import sys
import time
from datetime import datetime, timezone

from gateway.config import Config, load_config
from gateway.quarantine.release import release
from gateway.quarantine.reviewers import hash_password
from gateway.quarantine.store import Held, QuarantineStore


def _store(args: argparse.Namespace) -> tuple[Config, QuarantineStore]:
    config = load_config(args.config)
    return config, QuarantineStore.open(config.quarantine.database)


def cli_reviewer() -> str:
    try:
        user = getpass.getuser()
    except (KeyError, OSError):
        user = str(os.getuid())
    return f"cli:{user}"


def _since(value: str | None) -> float | None:
    if not value:
        return None
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        raise SystemExit(f"veil: --since takes a date like 2026-11-24 or 2026-11-24T10:00, "
                         f"not {value!r}")
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=timezone.utc)
    return moment.timestamp()


def parse_age(value: str) -> float:
    """'90d', '12h', '30m' as seconds."""
    match = re.fullmatch(r"(\d+)([dhm])", value.strip())
    if not match:
        raise SystemExit(f"veil: give an age like 90d, 12h or 30m, not {value!r}")
    return int(match.group(1)) * {"d": 86400, "h": 3600, "m": 60}[match.group(2)]


def _line(held: Held) -> str:
    when = datetime.fromtimestamp(held.received_at, timezone.utc).strftime("%Y-%m-%d %H:%M")
    categories = ",".join(held.categories) or held.verdict
    return (f"{held.id:>6}  {when}  {held.status:<8}  {held.score:>5g}  {categories:<28}  "
            f"{held.mail_from or '<>'}  {held.subject[:60]}")


def _list(args: argparse.Namespace) -> int:
    _, store = _store(args)
    items = store.list(status=args.status, category=args.category, sender=args.sender,
                       since=_since(args.since), limit=args.limit)
    for held in items:
        print(json.dumps(held.as_json(), ensure_ascii=False) if args.json else _line(held))
    return 0


def _get(store: QuarantineStore, identifier: str) -> Held | None:
    if not identifier.isdigit():
        print(f"veil: {identifier!r} is not a quarantine id (a number)", file=sys.stderr)
        return None
    held = store.get(int(identifier))
    if held is None:
        print(f"veil: no quarantined message {identifier}", file=sys.stderr)
    return held


def highlight(excerpt: str, ansi: bool) -> str:
    """Excerpts mark the matched text with [[...]]; on a terminal show it in reverse video."""
    return excerpt.replace("[[", "\x1b[7m").replace("]]", "\x1b[0m") if ansi else excerpt


def _show(args: argparse.Namespace) -> int:
    _, store = _store(args)
    held = _get(store, args.id)
    if held is None:
        return 1
    ansi = sys.stdout.isatty()
    print(f"Message {held.id} ({held.direction}, {held.status})")
    print(f"Received:  {datetime.fromtimestamp(held.received_at, timezone.utc).isoformat()}")
    print(f"Envelope:  MAIL FROM:<{held.mail_from}>  RCPT TO: "
          + ", ".join(f"<{r}>" for r in held.rcpt_tos))
    print(f"Client:    {held.client_address}")
    print(f"Agent:     {held.agent_alias}")
    print(f"Verdict:   {held.verdict}, score {held.score:g}: {held.reason}")
    print(f"Auth:      {held.auth_results}")
    print("Matched rules:")
    for match in held.matches:
        print(f"  {match.get('rule')} ({match.get('category')}, {match.get('score')}) in "
              f"{match.get('where')}: {highlight(str(match.get('excerpt', '')), ansi)}")
    raw = store.raw(held.id)
    if raw is not None:
        head = raw.split(b"\r\n\r\n", 1)[0].split(b"\n\n", 1)[0]
        print("Headers:")
        print(head.decode("utf-8", "replace"))
    store.audit(cli_reviewer(), "view", "ok", message_id=held.id)
    return 0


def _release(args: argparse.Namespace) -> int:
    config, store = _store(args)
    held = _get(store, args.id)
    if held is None:
        return 1
    result = asyncio.run(release(store, config, held.id, reviewer=cli_reviewer()))
    print(result.message, file=sys.stdout if result.ok else sys.stderr)
    return 0 if result.ok else 1


def _delete(args: argparse.Namespace) -> int:
    _, store = _store(args)
    held = _get(store, args.id)
    if held is None:
        return 1
    ok = store.set_status(held.id, "deleted", expect=held.status) if held.status != "deleted" \
        else False
    store.audit(cli_reviewer(), "delete", "ok" if ok else "not held", message_id=held.id)
    print(f"deleted {held.id}" if ok else f"veil: message {held.id} is already {held.status}",
          file=sys.stdout if ok else sys.stderr)
    return 0 if ok else 1


def _export(args: argparse.Namespace) -> int:
    _, store = _store(args)
    held = _get(store, args.id)
    if held is None:
        return 1
    raw = store.raw(held.id)
    if raw is None:
        print(f"veil: message {held.id} was deleted; its content is erased", file=sys.stderr)
        return 1
    store.audit(cli_reviewer(), "export", "ok", message_id=held.id)
    sys.stdout.buffer.write(raw)
    sys.stdout.flush()
    return 0


def purge(store: QuarantineStore, seconds: float, reviewer: str) -> int:
    erased = store.purge(time.time() - seconds)
    store.audit(reviewer, "purge", "ok", detail=f"{erased} messages older than {seconds:g} s")
    return erased


def _purge(args: argparse.Namespace) -> int:
    _, store = _store(args)
    erased = purge(store, parse_age(args.older_than), cli_reviewer())
    print(f"erased {erased} messages")
    return 0


async def retention_loop(store: QuarantineStore, config: Config, every: float = 3600.0) -> None:
    """Erase what is older than [quarantine] retention_days, hourly, for as long as Veil runs."""
    while True:
        try:
            await asyncio.to_thread(purge, store, config.quarantine.retention_days * 86400.0,
                                    "retention")
        except Exception:  # a locked store now is retried at the next run
            pass
        await asyncio.sleep(every)


def _reviewer_add(args: argparse.Namespace) -> int:
    _, store = _store(args)
    if args.password_stdin:
        password = sys.stdin.readline().rstrip("\n")
    else:
        password = getpass.getpass(f"Password for {args.name}: ")
        if password != getpass.getpass("Again: "):
            print("veil: the passwords differ", file=sys.stderr)
            return 1
    if len(password) < 10:
        print("veil: use a password of at least 10 characters", file=sys.stderr)
        return 1
    store.add_reviewer(args.name, args.role, hash_password(password))
    store.audit(cli_reviewer(), "reviewer-add", "ok", detail=f"{args.name} as {args.role}")
    print(f"reviewer {args.name} ({args.role}) saved")
    return 0


def _reviewer_list(args: argparse.Namespace) -> int:
    _, store = _store(args)
    for name, role, created in store.reviewers():
        print(f"{name}\t{role}\t{datetime.fromtimestamp(created, timezone.utc):%Y-%m-%d}")
    return 0


def _reviewer_remove(args: argparse.Namespace) -> int:
    _, store = _store(args)
    ok = store.remove_reviewer(args.name)
    store.audit(cli_reviewer(), "reviewer-remove", "ok" if ok else "unknown",
                detail=args.name)
    print(f"removed {args.name}" if ok else f"veil: no reviewer {args.name}",
          file=sys.stdout if ok else sys.stderr)
    return 0 if ok else 1


def _audit(args: argparse.Namespace) -> int:
    _, store = _store(args)
    for entry in reversed(store.audit_log(limit=args.limit)):
        if args.json:
            print(json.dumps(entry.as_json(), ensure_ascii=False))
        else:
            when = datetime.fromtimestamp(entry.at, timezone.utc).strftime("%Y-%m-%d %H:%M:%S")
            target = f"#{entry.message_id}" if entry.message_id is not None else "-"
            print(f"{when}  {entry.reviewer:<16} {entry.action:<16} {target:<8} "
                  f"{entry.outcome}  {entry.detail}")
    return 0


def register(subparsers: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    def command(parent: argparse._SubParsersAction, name: str, help: str,  # type: ignore[type-arg]
                func: object) -> argparse.ArgumentParser:
        parser = parent.add_parser(name, help=help)
        parser.add_argument("--config", default="config.toml")
        parser.set_defaults(func=func)
        return parser

    quarantine = subparsers.add_parser("quarantine", help="review held messages")
    q = quarantine.add_subparsers(dest="quarantine_command", required=True)
    listing = command(q, "list", "held messages, newest first", _list)
    listing.add_argument("--json", action="store_true")
    listing.add_argument("--status", choices=("held", "released", "deleted"), default="held")
    listing.add_argument("--category")
    listing.add_argument("--sender")
    listing.add_argument("--since", help="a date, e.g. 2026-11-24")
    listing.add_argument("--limit", type=int, default=100)
    for name, help, func in (("show", "one message: envelope, verdict, rules, headers", _show),
                             ("release", "deliver the original to the real recipients", _release),
                             ("delete", "erase a held message", _delete),
                             ("export", "write the original message to standard output", _export)):
        command(q, name, help, func).add_argument("id")
    command(q, "purge", "erase messages older than an age", _purge).add_argument(
        "--older-than", required=True, help="e.g. 90d")

    reviewer = subparsers.add_parser("reviewer", help="review desk accounts")
    r = reviewer.add_subparsers(dest="reviewer_command", required=True)
    add = command(r, "add", "create or reset an account (asks for the password)", _reviewer_add)
    add.add_argument("name")
    add.add_argument("--role", choices=("reviewer", "auditor"), required=True)
    add.add_argument("--password-stdin", action="store_true",
                     help="read the password from standard input (for scripts)")
    command(r, "list", "accounts and roles", _reviewer_list)
    command(r, "remove", "delete an account", _reviewer_remove).add_argument("name")

    audit = command(subparsers, "audit", "the audit trail, oldest first", _audit)
    audit.add_argument("--json", action="store_true")
    audit.add_argument("--limit", type=int, default=1000)
