"""`veil dkim keygen`."""

from __future__ import annotations

import argparse

from gateway.auth.dkim import dns_txt_record, generate_key
from gateway.config import load_config


def _keygen(args: argparse.Namespace) -> int:
    config = load_config(args.config)
    path = config.dkim.private_key
    try:
        generate_key(path, args.algorithm, overwrite=args.force)
    except FileExistsError:
        print(f"veil: {path} exists; keeping it (pass --force to replace it)")
    print(f"# Publish this record in DNS for {config.dkim.domain}:")
    print(dns_txt_record(config.dkim.domain, config.dkim.selector, path.read_bytes()))
    return 0


def register(subparsers: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    dkim = subparsers.add_parser("dkim", help="DKIM key management")
    commands = dkim.add_subparsers(dest="dkim_command", required=True)
    keygen = commands.add_parser("keygen", help="write the DKIM key and print its DNS record")
    keygen.add_argument("--config", default="config.toml")
    keygen.add_argument("--algorithm", choices=("rsa", "ed25519"), default="rsa")
    keygen.add_argument("--force", action="store_true", help="replace an existing key")
    keygen.set_defaults(func=_keygen)
