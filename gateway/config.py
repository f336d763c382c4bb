"""Load and validate config.toml and the agent directory into frozen dataclasses.

Everything is parsed once at start-up. Every error names the file, the key and the fix,
so an administrator can correct it without reading code. Relative paths resolve from the
folder of the file that names them.
"""

from __future__ import annotations

import ipaddress
import tomllib
import unicodedata
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from email_validator import EmailNotValidError, validate_email


class ConfigError(Exception):
    """A configuration problem, phrased for the person who has to fix it."""

    def __init__(self, file: Path | str, key: str, problem: str, fix: str) -> None:
        self.file, self.key, self.problem, self.fix = str(file), key, problem, fix
        super().__init__(f"{file}: {key}: {problem}. Fix: {fix}")


@dataclass(frozen=True)
class HostPort:
    host: str
    port: int

    def __str__(self) -> str:
        return f"[{self.host}]:{self.port}" if ":" in self.host else f"{self.host}:{self.port}"


@dataclass(frozen=True)
class Agent:
    """One support agent: the real identity that must never leave, and the alias that replaces it."""

    name: str
    addresses: tuple[str, ...]
    also_known_as: tuple[str, ...]
    phones: tuple[str, ...]
    alias_name: str
    alias_address: str
    alias_signature: str

    @property
    def real_names(self) -> tuple[str, ...]:
        """The display name and every nickname or other spelling."""
        return (self.name, *self.also_known_as)


def fold_name(text: str) -> str:
    """Case- and accent-insensitive form of a name: 'José' and 'JOSE' both become 'jose'."""
    decomposed = unicodedata.normalize("NFKD", text)
    stripped = "".join(c for c in decomposed if not unicodedata.combining(c))
    return " ".join(stripped.casefold().split())


@dataclass(frozen=True)
class Directory:
    """Every agent, with look-ups by real address, alias address and display name."""

    agents: tuple[Agent, ...]
    _by_address: dict[str, Agent] = field(default_factory=dict, compare=False, repr=False)
    _by_alias: dict[str, Agent] = field(default_factory=dict, compare=False, repr=False)
    _by_name: dict[str, Agent] = field(default_factory=dict, compare=False, repr=False)

    def __hash__(self) -> int:
        return self._hash  # type: ignore[attr-defined, no-any-return]

    def __post_init__(self) -> None:
        # Hashed on every message (patterns_for's cache key): once here, not agent by agent
        # each time, which would grow with the directory.
        object.__setattr__(self, "_hash", hash(self.agents))
        for agent in self.agents:
            for address in agent.addresses:
                self._by_address[address.lower()] = agent
            self._by_alias[agent.alias_address.lower()] = agent
            for name in agent.real_names:
                self._by_name[fold_name(name)] = agent

    def agent_for_address(self, address: str) -> Agent | None:
        return self._by_address.get(address.strip().lower())

    def agent_for_alias(self, address: str) -> Agent | None:
        return self._by_alias.get(address.strip().lower())

    def agent_for_display_name(self, display_name: str) -> Agent | None:
        """Match 'Jane Doe' and helpdesk forms such as 'Jane Doe via Acme Support' or 'Jane (Acme)'."""
        folded = fold_name(display_name)
        if folded in self._by_name:
            return self._by_name[folded]
        for name in sorted(self._by_name, key=len, reverse=True):
            if folded.startswith(name + " ") or folded.startswith(name + ","):
                return self._by_name[name]
        return None


@dataclass(frozen=True)
class OutboundConfig:
    listen: HostPort = HostPort("127.0.0.1", 10025)
    next_hop: str = "spool:var/outbox"
    unknown_sender: str = "pass"
    on_leak: str = "reject"
    allow_from: tuple[str, ...] = ("127.0.0.0/8", "::1/128")
    auth_users: Path | None = None
    tls_cert: Path | None = None
    tls_key: Path | None = None
    tls: str = "none"
    internal_domains: tuple[str, ...] = ()
    message_id_key: Path = Path("var/message-id.key")


@dataclass(frozen=True)
class InboundConfig:
    listen: HostPort = HostPort("127.0.0.1", 10024)
    next_hop: str = "spool:var/inbox"
    domains: tuple[str, ...] = ("support.example",)
    on_quarantine: str = "accept"
    repeat_offender_count: int = 3
    repeat_offender_window_hours: int = 168
    authserv_id: str = "veil"
    tls_cert: Path | None = None
    tls_key: Path | None = None
    tls: str = "none"


@dataclass(frozen=True)
class DkimConfig:
    domain: str = "support.example"
    selector: str = "veil"
    private_key: Path = Path("var/dkim/veil.key")


@dataclass(frozen=True)
class RulesConfig:
    paths: tuple[Path, ...] = (Path("rules"),)
    quarantine_score: float = 10.0


@dataclass(frozen=True)
class QuarantineConfig:
    database: Path = Path("var/quarantine.sqlite3")
    retention_days: int = 90


@dataclass(frozen=True)
class ReviewConfig:
    listen: HostPort = HostPort("127.0.0.1", 8025)
    digest_to: tuple[str, ...] = ()
    digest_interval_minutes: int = 60
    notify_agent: bool = False
    session_minutes: int = 30


@dataclass(frozen=True)
class LimitsConfig:
    max_message_size: int = 33_554_432
    max_recipients: int = 100
    max_connections: int = 200
    command_timeout_seconds: int = 300
    data_timeout_seconds: int = 240


@dataclass(frozen=True)
class Config:
    path: Path
    directory_path: Path
    outbound: OutboundConfig
    inbound: InboundConfig
    dkim: DkimConfig
    rules: RulesConfig
    quarantine: QuarantineConfig
    review: ReviewConfig
    limits: LimitsConfig
    log_level: str = "info"
    workers: int = 1


# --- value parsers: each returns the typed value or raises ValueError with the fix ---------

def _host_port(value: Any) -> HostPort:
    if not isinstance(value, str) or ":" not in value:
        raise ValueError('write it as "host:port", for example "127.0.0.1:10025"')
    host, _, port = value.rpartition(":")
    host = host.strip("[]")
    if not port.isdigit() or not 0 <= int(port) <= 65535:
        raise ValueError('the port must be a number from 0 to 65535, as in "127.0.0.1:10025"')
    return HostPort(host, int(port))


def _string(value: Any) -> str:
    if not isinstance(value, str) or not value:
        raise ValueError("give a non-empty string in double quotes")
    return value


def _choice(*choices: str) -> Callable[[Any], str]:
    def parse(value: Any) -> str:
        if value not in choices:
            raise ValueError("use one of " + ", ".join(f'"{c}"' for c in choices))
        return str(value)
    return parse


def _positive_int(value: Any) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or value < 1:
        raise ValueError("give a whole number of at least 1")
    return value


def _number(value: Any) -> float:
    if not isinstance(value, (int, float)) or isinstance(value, bool):
        raise ValueError("give a number, for example 10")
    return float(value)


def _bool(value: Any) -> bool:
    if not isinstance(value, bool):
        raise ValueError("use true or false")
    return value


def _next_hop(value: Any) -> str:
    text = _string(value)
    if text.startswith("spool:") and len(text) > len("spool:"):
        return text
    if text.startswith("smtp://"):
        _host_port(text[len("smtp://"):].rstrip("/"))
        return text.rstrip("/")
    raise ValueError('use "spool:DIR" to write .eml files or "smtp://host:port" to relay')


def _paths(value: Any) -> tuple[str, ...]:
    if not isinstance(value, list) or not value:
        raise ValueError('give a list of rule files or folders, for example ["rules"]')
    return tuple(_string(item) for item in value)


def _networks(value: Any) -> tuple[str, ...]:
    if not isinstance(value, list):
        raise ValueError('give a list of networks, for example ["127.0.0.0/8", "::1/128"]')
    for item in value:
        try:
            ipaddress.ip_network(str(item), strict=False)
        except ValueError:
            raise ValueError(f'"{item}" is not a network; write it as "10.0.0.0/8" or "::1/128"')
    return tuple(str(v) for v in value)


def _domains(value: Any) -> tuple[str, ...]:
    if not isinstance(value, list) or not all(isinstance(v, str) and "." in v for v in value):
        raise ValueError('give a list of domain names, for example ["support.example"]')
    return tuple(v.lower().rstrip(".") for v in value)


def _addresses(value: Any) -> tuple[str, ...]:
    if not isinstance(value, list):
        raise ValueError('give a list of addresses, for example ["compliance@corp.example"]')
    return tuple(_address(v) for v in value)


def _address(value: Any) -> str:
    if not isinstance(value, str):
        raise ValueError('give an address in double quotes, for example "jane@corp.example"')
    try:
        checked = validate_email(value, check_deliverability=False, test_environment=True)
    except EmailNotValidError as error:
        raise ValueError(f'"{value}" is not a valid address ({error})')
    return str(checked.normalized)


@dataclass(frozen=True)
class _Key:
    parse: Callable[[Any], Any]
    path: bool = False  # resolve relative to the config file's folder


_SECTIONS: dict[str, tuple[type, dict[str, _Key]]] = {
    "outbound": (OutboundConfig, {
        "listen": _Key(_host_port),
        "next_hop": _Key(_next_hop),
        "unknown_sender": _Key(_choice("pass", "reject")),
        "on_leak": _Key(_choice("reject", "hold")),
        "allow_from": _Key(_networks),
        "auth_users": _Key(_string, path=True),
        "tls_cert": _Key(_string, path=True),
        "tls_key": _Key(_string, path=True),
        "tls": _Key(_choice("none", "opportunistic", "required")),
        "internal_domains": _Key(_domains),
        "message_id_key": _Key(_string, path=True),
    }),
    "inbound": (InboundConfig, {
        "listen": _Key(_host_port),
        "next_hop": _Key(_next_hop),
        "domains": _Key(_domains),
        "on_quarantine": _Key(_choice("accept", "reject")),
        "repeat_offender_count": _Key(_positive_int),
        "repeat_offender_window_hours": _Key(_positive_int),
        "authserv_id": _Key(_string),
        "tls_cert": _Key(_string, path=True),
        "tls_key": _Key(_string, path=True),
        "tls": _Key(_choice("none", "opportunistic", "required")),
    }),
    "dkim": (DkimConfig, {
        "domain": _Key(_string),
        "selector": _Key(_string),
        "private_key": _Key(_string, path=True),
    }),
    "rules": (RulesConfig, {
        "paths": _Key(_paths, path=True),
        "quarantine_score": _Key(_number),
    }),
    "quarantine": (QuarantineConfig, {
        "database": _Key(_string, path=True),
        "retention_days": _Key(_positive_int),
    }),
    "review": (ReviewConfig, {
        "listen": _Key(_host_port),
        "digest_to": _Key(_addresses),
        "digest_interval_minutes": _Key(_positive_int),
        "notify_agent": _Key(_bool),
        "session_minutes": _Key(_positive_int),
    }),
    "limits": (LimitsConfig, {
        "max_message_size": _Key(_positive_int),
        "max_recipients": _Key(_positive_int),
        "max_connections": _Key(_positive_int),
        "command_timeout_seconds": _Key(_positive_int),
        "data_timeout_seconds": _Key(_positive_int),
    }),
}


def _resolve(base: Path, value: Any) -> Any:
    if isinstance(value, tuple):
        return tuple(_resolve(base, v) for v in value)
    path = Path(value).expanduser()
    return path if path.is_absolute() else base / path


def _section(file: Path, data: dict[str, Any], name: str) -> Any:
    cls, keys = _SECTIONS[name]
    table = data.get(name, {})
    if not isinstance(table, dict):
        raise ConfigError(file, f"[{name}]", "is not a table", f"write it as a [{name}] section")
    values: dict[str, Any] = {}
    for key, raw in table.items():
        if key not in keys:
            raise ConfigError(file, f"{name}.{key}", "unknown key",
                              f"remove it or use one of: {', '.join(sorted(keys))}")
        spec = keys[key]
        try:
            value = spec.parse(raw)
        except ValueError as error:
            raise ConfigError(file, f"{name}.{key}", f"invalid value {raw!r}", str(error))
        values[key] = _resolve(file.absolute().parent, value) if spec.path else value
        if key == "next_hop" and value.startswith("spool:"):
            values[key] = "spool:" + str(_resolve(file.absolute().parent, value[len("spool:"):]))
    if "next_hop" in keys and "next_hop" not in values:
        default = getattr(cls(), "next_hop")
        values["next_hop"] = "spool:" + str(_resolve(file.absolute().parent,
                                                     default[len("spool:"):]))
    for path_key in ("private_key", "database", "message_id_key"):
        if path_key in keys and path_key not in values:
            values[path_key] = _resolve(file.absolute().parent, getattr(cls(), path_key))
    if name == "rules" and "paths" not in values:
        values["paths"] = _resolve(file.absolute().parent, cls().paths)
    return cls(**values)


def load_config(path: Path | str = "config.toml") -> Config:
    """Read and validate a config file. Does not need the DKIM key, the message-id key or the
    database to exist."""
    file = Path(path)
    try:
        data = tomllib.loads(file.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigError(file, "(file)", "not found",
                          "create it (copy config.toml from the project) or pass --config PATH")
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as error:
        raise ConfigError(file, "(syntax)", f"not valid TOML ({error})", "correct the syntax")
    allowed = {*_SECTIONS, "directory", "log_level", "workers"}
    for key in data:
        if key not in allowed:
            raise ConfigError(file, key, "unknown section or key",
                              f"remove it or use one of: {', '.join(sorted(allowed))}")
    directory_table = data.get("directory", {})
    for key in directory_table:
        if key != "path":
            raise ConfigError(file, f"directory.{key}", "unknown key", "the only key is path")
    directory_path = _resolve(file.absolute().parent, directory_table.get("path", "agents.toml"))
    log_level = data.get("log_level", "info")
    if log_level not in ("debug", "info", "warning", "error"):
        raise ConfigError(file, "log_level", f"invalid value {log_level!r}",
                          'use "debug", "info", "warning" or "error"')
    workers = data.get("workers", 1)
    if not isinstance(workers, int) or isinstance(workers, bool) or not 1 <= workers <= 64:
        raise ConfigError(file, "workers", f"invalid value {workers!r}",
                          "give the number of worker processes, 1 to 64 (one per core is usual)")
    outbound = _section(file, data, "outbound")
    if (outbound.tls_cert is None) != (outbound.tls_key is None):
        raise ConfigError(file, "outbound.tls_cert", "tls_cert and tls_key must be set together",
                          "set both or neither")
    inbound = _section(file, data, "inbound")
    if (inbound.tls_cert is None) != (inbound.tls_key is None):
        raise ConfigError(file, "inbound.tls_cert", "tls_cert and tls_key must be set together",
                          "set both or neither")
    return Config(
        path=file,
        directory_path=directory_path,
        outbound=outbound,
        inbound=inbound,
        dkim=_section(file, data, "dkim"),
        rules=_section(file, data, "rules"),
        quarantine=_section(file, data, "quarantine"),
        review=_section(file, data, "review"),
        limits=_section(file, data, "limits"),
        log_level=log_level,
        workers=workers,
    )


_AGENT_KEYS = {"name", "addresses", "also_known_as", "phones", "alias_name", "alias_address",
               "alias_signature"}


def load_directory(path: Path | str) -> Directory:
    """Read and validate the agent directory: a TOML file of [[agent]] tables."""
    file = Path(path)
    try:
        data = tomllib.loads(file.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigError(file, "(file)", "agent directory not found",
                          "create it with [[agent]] tables or set [directory] path in config.toml")
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as error:
        raise ConfigError(file, "(syntax)", f"not valid TOML ({error})", "correct the syntax")
    for key in data:
        if key != "agent":
            raise ConfigError(file, key, "unknown key", "the file holds only [[agent]] tables")
    agents: list[Agent] = []
    seen: dict[str, str] = {}
    for index, table in enumerate(data.get("agent", [])):
        where = f"agent[{index}]"
        for key in table:
            if key not in _AGENT_KEYS:
                raise ConfigError(file, f"{where}.{key}", "unknown key",
                                  f"remove it or use one of: {', '.join(sorted(_AGENT_KEYS))}")
        for key in ("name", "addresses", "alias_name", "alias_address"):
            if key not in table:
                raise ConfigError(file, f"{where}.{key}", "missing", f"add {key} to this agent")

        def field_value(key: str, parse: Callable[[Any], Any], default: Any) -> Any:
            try:
                return parse(table[key]) if key in table else default
            except ValueError as error:
                raise ConfigError(file, f"{where}.{key}", f"invalid value {table[key]!r}",
                                  str(error))

        def strings(value: Any) -> tuple[str, ...]:
            if not isinstance(value, list) or not all(isinstance(v, str) and v for v in value):
                raise ValueError('give a list of strings, for example ["Janie"]')
            return tuple(value)

        def phones(value: Any) -> tuple[str, ...]:
            numbers = strings(value)
            for number in numbers:
                if sum(c.isdigit() for c in number) < 6:
                    raise ValueError(f'"{number}" has too few digits to be a phone number')
            return numbers

        addresses = field_value("addresses", _addresses, ())
        if not addresses:
            raise ConfigError(file, f"{where}.addresses", "is empty", "give at least one address")
        agent = Agent(
            name=field_value("name", _string, ""),
            addresses=addresses,
            also_known_as=field_value("also_known_as", strings, ()),
            phones=field_value("phones", phones, ()),
            alias_name=field_value("alias_name", _string, ""),
            alias_address=field_value("alias_address", _address, ""),
            alias_signature=field_value("alias_signature", _string,
                                        table.get("alias_name", "")),
        )
        for address in (*agent.addresses, agent.alias_address):
            owner = seen.get(address.lower())
            if owner is not None:
                raise ConfigError(file, f"{where}.alias_address" if address == agent.alias_address
                                  else f"{where}.addresses",
                                  f"{address} is already used by {owner}",
                                  "give every agent its own addresses and alias")
            seen[address.lower()] = where
        agents.append(agent)
    return Directory(tuple(agents))
