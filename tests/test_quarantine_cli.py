"""`veil quarantine`, `veil reviewer` and `veil audit` as an administrator uses them."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

from gateway.config import load_config
from gateway.envelope import Envelope
from gateway.quarantine.store import QuarantineStore

from conftest import ROOT, write_config

HELD = b"From: Creep <creep@example.net>\r\nSubject: hey\r\n\r\nyou are so hot\r\n"


def veil(config: Path, *args: str, stdin: bytes | None = None) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run([sys.executable, "-m", "gateway", *args, "--config", str(config)],
                          input=stdin, cwd=ROOT, capture_output=True, timeout=120)


def held_store(tmp_path: Path) -> tuple[Path, int, int]:
    config_path = write_config(tmp_path)
    store = QuarantineStore.open(load_config(config_path).quarantine.database)
    envelope = Envelope("creep@example.net", ("alex.morgan@support.example",))
    match = [{"rule": "en-looks-you-are", "category": "looks", "score": 10.0,
              "excerpt": "[[you are so hot]]", "where": "body"}]
    first = store.hold(HELD, envelope, direction="inbound", verdict="quarantine", score=10,
                       matches=match, reason="score 10 >= 10 (looks)")
    second = store.hold(HELD, envelope, direction="inbound", verdict="quarantine", score=10,
                        matches=match, reason="score 10 >= 10 (looks)")
    store.close()
    return config_path, first, second


def test_list_show_export_release_delete_purge_and_audit(tmp_path: Path) -> None:
    config, first, second = held_store(tmp_path)
    listed = [json.loads(line) for line in veil(config, "quarantine", "list", "--json")
              .stdout.splitlines()]
    assert [item["id"] for item in listed] == [second, first]
    assert listed[0]["categories"] == ["looks"] and listed[0]["mail_from"] == "creep@example.net"
    assert veil(config, "quarantine", "list", "--json", "--category", "threat").stdout == b""
    assert veil(config, "quarantine", "list", "--json", "--sender", "x@example.net").stdout == b""
    shown = veil(config, "quarantine", "show", str(first))
    assert shown.returncode == 0
    assert b"[[you are so hot]]" in shown.stdout and b"MAIL FROM:<creep@example.net>" in shown.stdout
    assert veil(config, "quarantine", "export", str(first)).stdout == HELD
    released = veil(config, "quarantine", "release", str(first))
    assert released.returncode == 0, released.stderr
    [eml] = (tmp_path / "inbox").glob("*.eml")
    assert eml.read_bytes().endswith(HELD)
    again = veil(config, "quarantine", "release", str(first))
    assert again.returncode == 1 and b"released, not held" in again.stdout + again.stderr
    assert veil(config, "quarantine", "delete", str(second)).returncode == 0
    assert veil(config, "quarantine", "export", str(second)).returncode == 1
    for bad in ("999", "abc"):
        result = veil(config, "quarantine", "show", bad)
        assert result.returncode == 1 and b"Traceback" not in result.stderr
    assert b"erased 0 messages" in veil(config, "quarantine", "purge", "--older-than", "90d").stdout
    time.sleep(0.05)
    assert b"erased 2 messages" in veil(config, "quarantine", "purge", "--older-than", "0m").stdout
    assert veil(config, "quarantine", "list", "--json", "--status", "released").stdout == b""
    audit = [json.loads(line) for line in veil(config, "audit", "--json").stdout.splitlines()]
    actions = [entry["action"] for entry in audit]
    for action in ("view", "export", "release", "delete", "purge"):
        assert action in actions
    assert all(entry["reviewer"].startswith("cli:") for entry in audit)


def test_reviewer_accounts(tmp_path: Path) -> None:
    config = write_config(tmp_path)
    added = veil(config, "reviewer", "add", "rita", "--role", "reviewer", "--password-stdin",
                 stdin=b"correct horse battery\n")
    assert added.returncode == 0, added.stderr
    short = veil(config, "reviewer", "add", "bob", "--role", "auditor", "--password-stdin",
                 stdin=b"short\n")
    assert short.returncode == 1 and b"at least 10" in short.stderr
    assert veil(config, "reviewer", "list").stdout.startswith(b"rita\treviewer\t")
    assert veil(config, "reviewer", "remove", "rita").returncode == 0
    assert veil(config, "reviewer", "remove", "rita").returncode == 1
    assert veil(config, "reviewer", "list").stdout == b""
