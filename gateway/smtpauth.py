"""SMTP AUTH for the outbound listener: a TOML file of users with argon2 password hashes.

    [[user]]
    name = "helpdesk"
    password_hash = "$argon2id$v=19$..."     # from `veil smtp-user hash`

A client that authenticates may send from any network; others must come from `allow_from`.
"""

from __future__ import annotations

import argparse
import getpass
import sys
import tomllib
from pathlib import Path
from typing import Any, Callable

from aiosmtpd.smtp import AuthResult, LoginPassword

from gateway.config import ConfigError
from gateway.quarantine.reviewers import hash_password, password_matches


def load_users(path: Path) -> dict[str, str]:
    """name -> argon2 hash; errors name the file, the key and the fix."""
    try:
        data = tomllib.loads(Path(path).read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigError(path, "outbound.auth_users", "users file not found",
                          "create it with [[user]] tables (name, password_hash)")
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as error:
        raise ConfigError(path, "(syntax)", f"not valid TOML ({error})", "correct the syntax")
    users: dict[str, str] = {}
    for index, table in enumerate(data.get("user", [])):
        name, hashed = table.get("name"), table.get("password_hash")
        if not isinstance(name, str) or not name:
            raise ConfigError(path, f"user[{index}].name", "missing", "give each user a name")
        if not isinstance(hashed, str) or not hashed.startswith("$argon2"):
            raise ConfigError(path, f"user[{index}].password_hash", "not an argon2 hash",
                              "make one with `veil smtp-user hash`")
        if set(table) - {"name", "password_hash"}:
            raise ConfigError(path, f"user[{index}]", "unknown key",
                              "only name and password_hash are allowed")
        users[name] = hashed
    if set(data) - {"user"}:
        raise ConfigError(path, ", ".join(sorted(set(data) - {"user"})), "unknown key",
                          "the file holds only [[user]] tables")
    return users


def authenticator_for(path: Path) -> Callable[..., AuthResult]:
    users = load_users(path)

    def authenticate(server: Any, session: Any, envelope: Any, mechanism: str,
                     auth_data: Any) -> AuthResult:
        if not isinstance(auth_data, LoginPassword):
            return AuthResult(success=False, handled=False)
        name = auth_data.login.decode("utf-8", "replace")
        hashed = users.get(name)
        ok = hashed is not None and password_matches(
            hashed, auth_data.password.decode("utf-8", "replace"))
        return AuthResult(success=ok, handled=False, auth_data=name if ok else None)

    return authenticate


def _hash(args: argparse.Namespace) -> int:
    password = sys.stdin.readline().rstrip("\n") if args.stdin else getpass.getpass("Password: ")
    if len(password) < 12:
        print("veil: use a password of at least 12 characters", file=sys.stderr)
        return 1
    print(hash_password(password))
    return 0


def register(subparsers: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    users = subparsers.add_parser("smtp-user", help="SMTP AUTH users of the outbound listener")
    commands = users.add_subparsers(dest="smtp_user_command", required=True)
    hashing = commands.add_parser("hash", help="print the password_hash for a users file")
    hashing.add_argument("--stdin", action="store_true", help="read the password from stdin")
    hashing.set_defaults(func=_hash)
