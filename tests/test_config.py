from pathlib import Path

import pytest

from gateway.config import ConfigError, load_config, load_directory

from conftest import ROOT, write_config


def test_shipped_config_and_directory_load() -> None:
    config = load_config(ROOT / "config.toml")
    assert config.outbound.listen.port == 10025
    assert config.inbound.domains == ("support.example",)
    assert config.dkim.private_key == ROOT / "var/dkim/veil.key"
    directory = load_directory(config.directory_path)
    assert directory.agent_for_address("JANE.DOE@corp.example").alias_name == "Alex Morgan"
    assert directory.agent_for_alias("alex.morgan@support.example").name == "Jane Doe"


@pytest.mark.parametrize("display, expected", [
    ("Jane Doe", "Alex Morgan"),
    ("Jane Doe via Acme Support", "Alex Morgan"),
    ("JANE DOE", "Alex Morgan"),
    ("Jose Alvarez", "Sam Rivera"),
    ("josé álvarez (Acme)", "Sam Rivera"),
    ("Janie", "Alex Morgan"),
    ("Janet Doerr", None),
    ("Acme Support", None),
])
def test_agent_for_display_name(display: str, expected: str | None) -> None:
    directory = load_directory(ROOT / "agents.toml")
    agent = directory.agent_for_display_name(display)
    assert (agent.alias_name if agent else None) == expected


def test_relative_paths_resolve_from_the_config_folder(tmp_path: Path) -> None:
    config = load_config(write_config(tmp_path))
    assert config.dkim.private_key == tmp_path / "dkim.key"
    assert config.quarantine.database == tmp_path / "quarantine.sqlite3"
    assert config.outbound.next_hop == f"spool:{tmp_path / 'outbox'}"


@pytest.mark.parametrize("sections, key, fix_words", [
    ({"outbound": {"on_leek": "reject"}}, "outbound.on_leek", "remove it"),
    ({"outbound": {"on_leak": "drop"}}, "outbound.on_leak", '"reject"'),
    ({"outbound": {"listen": "10025"}}, "outbound.listen", "host:port"),
    ({"outbound": {"next_hop": "ftp://x"}}, "outbound.next_hop", "spool:DIR"),
    ({"outbound": {"allow_from": ["not-a-net"]}}, "outbound.allow_from", "10.0.0.0/8"),
    ({"inbound": {"domains": "support.example"}}, "inbound.domains", "list"),
    ({"review": {"digest_to": ["not an address"]}}, "review.digest_to", "not a valid address"),
    ({"rules": {"quarantine_score": "ten"}}, "rules.quarantine_score", "number"),
    ({"surprise": {"a": 1}}, "surprise", "remove it"),
])
def test_invalid_config_names_file_key_and_fix(tmp_path: Path, sections: dict, key: str,
                                               fix_words: str) -> None:
    path = write_config(tmp_path, **sections)
    with pytest.raises(ConfigError) as caught:
        load_config(path)
    assert caught.value.key == key
    assert str(path) in str(caught.value)
    assert fix_words in str(caught.value)


def test_missing_config_file_says_how_to_fix(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="--config"):
        load_config(tmp_path / "nope.toml")


AGENT = '''
[[agent]]
name = "Jane Doe"
addresses = ["jane@corp.example"]
alias_name = "Alex Morgan"
alias_address = "alex@support.example"
'''


@pytest.mark.parametrize("text, key, problem", [
    (AGENT + 'nickname = "J"\n', "agent[0].nickname", "unknown key"),
    (AGENT.replace("jane@corp.example", "jane at corp"), "agent[0].addresses", "not a valid"),
    (AGENT + AGENT.replace("jane@", "john@").replace("Jane", "John"), "agent[1].alias_address",
     "already used"),
    (AGENT.replace('alias_address = "alex@support.example"\n', ""), "agent[0].alias_address",
     "missing"),
    (AGENT + 'phones = ["12"]\n', "agent[0].phones", "too few digits"),
    ("[[agent]\n", "(syntax)", "not valid TOML"),
])
def test_invalid_directory_names_the_key(tmp_path: Path, text: str, key: str,
                                         problem: str) -> None:
    path = tmp_path / "agents.toml"
    path.write_text(text)
    with pytest.raises(ConfigError) as caught:
        load_directory(path)
    assert caught.value.key == key
    assert problem in str(caught.value)
    assert str(path) in str(caught.value)
