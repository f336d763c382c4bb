"""The `veil` command. Each area registers its own sub-commands; this module only wires them."""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
from dataclasses import replace
from pathlib import Path

from gateway.config import ConfigError, load_config, load_directory
from gateway.envelope import Envelope, Refused

EXIT_REFUSED = 3


def _add_config(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--config", default="config.toml",
                        help="config file (default: ./config.toml)")


def _serve(args: argparse.Namespace) -> int:
    config = load_config(args.config)
    if config.workers == 1 or "PROMETHEUS_MULTIPROC_DIR" in os.environ:
        from gateway.app import serve
        return serve(config)
    # prometheus-client reads this when first imported: the workers then share their counts.
    with tempfile.TemporaryDirectory(prefix="veil-metrics-") as folder:
        os.environ["PROMETHEUS_MULTIPROC_DIR"] = folder
        from gateway.app import serve
        return serve(config)


def _config_check(args: argparse.Namespace) -> int:
    from gateway.app import validate_for_serving
    config = load_config(args.config)
    loaded = validate_for_serving(config, create_keys=False)  # a check writes nothing
    print(f"{config.path}: ok ({len(loaded['directory'].agents)} agents, "
          f"{len(loaded['ruleset'].rules)} rules)")
    return 0


def _rewrite(args: argparse.Namespace) -> int:
    from gateway.auth.dkim import load_signer
    from gateway.identity.message_ids import MessageIdKey, load_message_id_key
    from gateway.identity.rewrite import identify_agent
    from gateway.outbound import Send, prepare_outbound

    config = load_config(args.config)
    directory = load_directory(config.directory_path)
    signer = load_signer(config.dkim)
    key_path = config.outbound.message_id_key
    # The shared key when there is one, so the preview shows the Message-ID `serve` sends. A
    # preview writes no secret (perhaps as another user than `serve`'s): before the first
    # start there is none, and a throwaway key stands in; only the tokens differ.
    id_key = load_message_id_key(key_path) if key_path.exists() else MessageIdKey.random()
    raw = sys.stdin.buffer.read() if args.file == "-" else Path(args.file).read_bytes()
    mail_from = args.mail_from
    if mail_from is None:
        agent = identify_agent(raw, "", directory)
        mail_from = agent.addresses[0] if agent else ""
    envelope = Envelope(mail_from=mail_from, rcpt_tos=())
    # `rewrite` previews a refusal rather than holding: "hold" would keep it for review.
    plan = prepare_outbound(raw, envelope, directory, signer,
                            replace(config.outbound, on_leak="reject"), config.dkim.domain,
                            id_key)
    if isinstance(plan, Refused):
        print(f"veil rewrite: refused: {plan.reason}", file=sys.stderr)
        return EXIT_REFUSED
    assert isinstance(plan, Send)
    sys.stdout.buffer.write(plan.message)
    sys.stdout.flush()
    return 0


def build_parser() -> argparse.ArgumentParser:
    from gateway.auth import commands as dkim_commands
    from gateway.quarantine import commands as quarantine_commands
    from gateway.rules import commands as rules_commands
    from gateway import smtpauth

    parser = argparse.ArgumentParser(prog="veil", description=(
        "Veil: an SMTP gateway that keeps support agents' real identities out of outbound "
        "mail and quarantines harassing replies."))
    sub = parser.add_subparsers(dest="command", required=True)

    serve = sub.add_parser("serve", help="start the outbound, inbound and review listeners")
    _add_config(serve)
    serve.set_defaults(func=_serve)

    rewrite = sub.add_parser("rewrite", help="print a message exactly as it would be sent")
    _add_config(rewrite)
    rewrite.add_argument("file", help="an .eml file, or - for standard input")
    rewrite.add_argument("--mail-from", default=None,
                         help="envelope sender (default: the identified agent's address)")
    rewrite.set_defaults(func=_rewrite)

    config = sub.add_parser("config", help="configuration tools")
    config_sub = config.add_subparsers(dest="config_command", required=True)
    check = config_sub.add_parser("check", help="validate everything `serve` would load")
    _add_config(check)
    check.set_defaults(func=_config_check)

    dkim_commands.register(sub)
    smtpauth.register(sub)
    rules_commands.register(sub)
    quarantine_commands.register(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return int(args.func(args))
    except ConfigError as error:
        print(f"veil: {error}", file=sys.stderr)
        return 2
    except BrokenPipeError:
        return 0


if __name__ == "__main__":
    sys.exit(main())
