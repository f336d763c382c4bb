"""The quarantine store: SQLite in WAL mode, the embedded default.

A hold is committed with synchronous=FULL before `hold` returns, so the listener's 250 comes
after a durable write. A locked database or a full disk raises StoreUnavailable, which the
listener answers with 451. Every method is safe to call from worker threads: each thread gets
its own connection. The interface is small on purpose, so another backend (PostgreSQL, for
several gateway nodes behind one MX) can stand in its place.
"""

from __future__ import annotations

import json
import sqlite3
import threading
import time
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Sequence

from gateway.envelope import Envelope

BUSY_TIMEOUT_MS = 2000

SCHEMA = """
CREATE TABLE IF NOT EXISTS messages (
    id INTEGER PRIMARY KEY,
    received_at REAL NOT NULL,
    direction TEXT NOT NULL,
    status TEXT NOT NULL DEFAULT 'held',
    verdict TEXT NOT NULL,
    score REAL NOT NULL DEFAULT 0,
    reason TEXT NOT NULL DEFAULT '',
    mail_from TEXT NOT NULL DEFAULT '',
    rcpt_tos TEXT NOT NULL DEFAULT '[]',
    client_address TEXT NOT NULL DEFAULT '',
    helo TEXT NOT NULL DEFAULT '',
    subject TEXT NOT NULL DEFAULT '',
    categories TEXT NOT NULL DEFAULT '',
    matches TEXT NOT NULL DEFAULT '[]',
    auth_results TEXT NOT NULL DEFAULT '',
    agent_alias TEXT NOT NULL DEFAULT '',
    size INTEGER NOT NULL DEFAULT 0,
    raw BLOB,
    status_changed_at REAL
);
CREATE INDEX IF NOT EXISTS messages_by_status ON messages (status, id DESC);
CREATE INDEX IF NOT EXISTS messages_by_sender ON messages (mail_from, received_at);
CREATE INDEX IF NOT EXISTS messages_by_time ON messages (received_at);
CREATE TABLE IF NOT EXISTS blocked_senders (
    sender TEXT PRIMARY KEY,
    reason TEXT NOT NULL,
    since REAL NOT NULL
);
-- Replacement Message-IDs of earlier versions (keyed hashes) and the ids they stood for, kept
-- so replies to that mail still thread; sealed replacements need no row, none are added now.
CREATE TABLE IF NOT EXISTS message_ids (
    new TEXT PRIMARY KEY,
    original TEXT NOT NULL,
    created_at REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS audit (
    id INTEGER PRIMARY KEY,
    at REAL NOT NULL,
    reviewer TEXT NOT NULL,
    action TEXT NOT NULL,
    message_id INTEGER,
    outcome TEXT NOT NULL,
    detail TEXT NOT NULL DEFAULT ''
);
CREATE TRIGGER IF NOT EXISTS audit_no_update BEFORE UPDATE ON audit
    BEGIN SELECT RAISE(ABORT, 'the audit log is append-only'); END;
CREATE TRIGGER IF NOT EXISTS audit_no_delete BEFORE DELETE ON audit
    BEGIN SELECT RAISE(ABORT, 'the audit log is append-only'); END;
CREATE TABLE IF NOT EXISTS reviewers (
    name TEXT PRIMARY KEY,
    role TEXT NOT NULL,
    password_hash TEXT NOT NULL,
    created_at REAL NOT NULL
);
"""


class StoreUnavailable(Exception):
    """The store cannot take a write now (locked, disk full, I/O error): answer 4xx."""


@dataclass(frozen=True)
class Held:
    """One quarantined message, as reviewers see it."""

    id: int
    received_at: float
    direction: str
    status: str
    verdict: str
    score: float
    reason: str
    mail_from: str
    rcpt_tos: tuple[str, ...]
    client_address: str
    subject: str
    categories: tuple[str, ...]
    matches: tuple[dict[str, Any], ...]
    auth_results: str
    agent_alias: str
    size: int

    def as_json(self) -> dict[str, Any]:
        data = dict(self.__dict__)
        data["received_at"] = datetime.fromtimestamp(self.received_at, timezone.utc).isoformat()
        data["rcpt_tos"], data["categories"] = list(self.rcpt_tos), list(self.categories)
        data["matches"] = list(self.matches)
        return data


@dataclass(frozen=True)
class AuditEntry:
    id: int
    at: float
    reviewer: str
    action: str
    message_id: int | None
    outcome: str
    detail: str

    def as_json(self) -> dict[str, Any]:
        data = dict(self.__dict__)
        data["at"] = datetime.fromtimestamp(self.at, timezone.utc).isoformat()
        return data


_COLUMNS = ("id, received_at, direction, status, verdict, score, reason, mail_from, rcpt_tos, "
            "client_address, subject, categories, matches, auth_results, agent_alias, size")


def _held(row: sqlite3.Row) -> Held:
    return Held(row[0], row[1], row[2], row[3], row[4], row[5], row[6], row[7],
                tuple(json.loads(row[8])), row[9], row[10],
                tuple(c for c in row[11].split(",") if c), tuple(json.loads(row[12])),
                row[13], row[14], row[15])


def _subject(raw: bytes) -> str:
    from gateway.mime import decode_words, header_value, parse
    tree = parse(raw[:65536])
    for name, start, end in tree.root.fields:
        if name == "subject":
            return decode_words(header_value(tree.raw, start, end))[:300]
    return ""


class QuarantineStore:
    def __init__(self, path: Path) -> None:
        self.path = path
        self._local = threading.local()
        self._connections: list[sqlite3.Connection] = []
        self._lock = threading.Lock()

    @classmethod
    def open(cls, path: Path) -> "QuarantineStore":
        path.parent.mkdir(parents=True, exist_ok=True)
        store = cls(path)
        try:
            store._connection().executescript(SCHEMA)
        except sqlite3.Error as error:
            raise StoreUnavailable(str(error)) from error
        return store

    # --- connections ---------------------------------------------------------------------

    def _connection(self) -> sqlite3.Connection:
        connection = getattr(self._local, "connection", None)
        if connection is None:
            try:
                connection = sqlite3.connect(self.path, timeout=BUSY_TIMEOUT_MS / 1000,
                                             isolation_level=None, check_same_thread=False)
                connection.execute("PRAGMA journal_mode=WAL")
                connection.execute("PRAGMA synchronous=FULL")
                connection.execute(f"PRAGMA busy_timeout={BUSY_TIMEOUT_MS}")
            except sqlite3.Error as error:
                raise StoreUnavailable(str(error)) from error
            self._local.connection = connection
            with self._lock:
                self._connections.append(connection)
        return connection

    class _Transaction:
        def __init__(self, store: "QuarantineStore") -> None:
            self.store = store

        def __enter__(self) -> sqlite3.Connection:
            self.connection = self.store._connection()
            try:
                self.connection.execute("BEGIN IMMEDIATE")
            except sqlite3.Error as error:
                raise StoreUnavailable(str(error)) from error
            return self.connection

        def __exit__(self, kind: Any, error: Any, traceback: Any) -> None:
            try:
                if kind is None:
                    self.connection.execute("COMMIT")
                else:
                    self.connection.execute("ROLLBACK")
            except sqlite3.Error as failure:
                raise StoreUnavailable(str(failure)) from failure
            if isinstance(error, sqlite3.OperationalError):
                raise StoreUnavailable(str(error)) from error

    def _write(self) -> "QuarantineStore._Transaction":
        return QuarantineStore._Transaction(self)

    def _read(self, sql: str, parameters: Sequence[Any] = ()) -> list[sqlite3.Row]:
        try:
            return list(self._connection().execute(sql, parameters))
        except sqlite3.Error as error:
            raise StoreUnavailable(str(error)) from error

    def close(self) -> None:
        with self._lock:
            for connection in self._connections:
                try:
                    connection.close()
                except sqlite3.Error:
                    pass
            self._connections.clear()
        self._local = threading.local()

    # --- the listener's side ----------------------------------------------------------------

    def hold(self, raw: bytes, envelope: Envelope, *, direction: str, verdict: str,
             score: float, matches: Sequence[dict[str, Any]], reason: str,
             auth_results: str = "", agent_alias: str = "") -> int:
        """Store a message durably and return its id."""
        categories = ",".join(sorted({str(m.get("category", "")) for m in matches} - {""}))
        with self._write() as connection:
            cursor = connection.execute(
                "INSERT INTO messages (received_at, direction, verdict, score, reason, mail_from,"
                " rcpt_tos, client_address, helo, subject, categories, matches, auth_results,"
                " agent_alias, size, raw) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)",
                (time.time(), direction, verdict, float(score), reason, envelope.mail_from.lower(),
                 json.dumps(list(envelope.rcpt_tos)), envelope.client_address, envelope.helo,
                 _subject(raw), categories, json.dumps(list(matches), default=str),
                 auth_results, agent_alias, len(raw), raw))
            return int(cursor.lastrowid or 0)

    def held_from_since(self, sender: str, since: datetime) -> int:
        rows = self._read("SELECT count(*) FROM messages WHERE mail_from = ? AND received_at >= ?"
                          " AND verdict = 'quarantine'", (sender.lower(), since.timestamp()))
        return int(rows[0][0])

    def is_blocked(self, sender: str) -> bool:
        return bool(self._read("SELECT 1 FROM blocked_senders WHERE sender = ?",
                               (sender.lower(),)))

    def block(self, sender: str, reason: str) -> None:
        with self._write() as connection:
            connection.execute("INSERT OR REPLACE INTO blocked_senders VALUES (?, ?, ?)",
                               (sender.lower(), reason, time.time()))

    def mark_repeat_offender(self, sender: str) -> None:
        self.block(sender, "repeat offender")

    def unblock(self, sender: str) -> bool:
        with self._write() as connection:
            return connection.execute("DELETE FROM blocked_senders WHERE sender = ?",
                                      (sender.lower(),)).rowcount > 0

    def blocked_senders(self) -> list[tuple[str, str, float]]:
        return [tuple(row) for row in self._read(  # type: ignore[misc]
            "SELECT sender, reason, since FROM blocked_senders ORDER BY since DESC")]

    def original_message_id(self, new: str) -> str | None:
        """The internal id behind a replacement that an earlier version of Veil stored (its
        replacements were keyed hashes; sealed ones need no store, and none are written now)."""
        if not new.isascii():
            return None  # every stored replacement is ASCII; an 8-bit id cannot be bound as text
        rows = self._read("SELECT original FROM message_ids WHERE new = ?", (new,))
        return str(rows[0][0]) if rows else None

    def count_held(self) -> int:
        return int(self._read("SELECT count(*) FROM messages WHERE status = 'held'")[0][0])

    # --- the reviewers' side ----------------------------------------------------------------

    def list(self, *, status: str | None = "held", category: str | None = None,
             sender: str | None = None, since: float | None = None, search: str | None = None,
             before_id: int | None = None, limit: int = 50) -> list[Held]:
        """Newest first; `before_id` pages through any number of rows at the same cost."""
        where, parameters = self._filters(status, category, sender, since, search)
        if before_id is not None:
            where.append("id < ?")
            parameters.append(before_id)
        sql = (f"SELECT {_COLUMNS} FROM messages"
               + (" WHERE " + " AND ".join(where) if where else "")
               + " ORDER BY id DESC LIMIT ?")
        return [_held(row) for row in self._read(sql, [*parameters, limit])]

    def count(self, *, status: str | None = "held", category: str | None = None,
              sender: str | None = None, since: float | None = None,
              search: str | None = None) -> int:
        where, parameters = self._filters(status, category, sender, since, search)
        sql = "SELECT count(*) FROM messages" + (" WHERE " + " AND ".join(where) if where else "")
        return int(self._read(sql, parameters)[0][0])

    @staticmethod
    def _filters(status: str | None, category: str | None, sender: str | None,
                 since: float | None, search: str | None) -> tuple[list[str], list[Any]]:
        where: list[str] = []
        parameters: list[Any] = []
        if status:
            where.append("status = ?")
            parameters.append(status)
        if category:
            where.append("(',' || categories || ',') LIKE ?")
            parameters.append(f"%,{category},%")
        if sender:
            where.append("mail_from = ?")
            parameters.append(sender.lower())
        if since is not None:
            where.append("received_at >= ?")
            parameters.append(since)
        if search:
            where.append("(subject LIKE ? OR mail_from LIKE ? OR reason LIKE ?)")
            parameters.extend([f"%{search}%"] * 3)
        return where, parameters

    def get(self, message_id: int) -> Held | None:
        rows = self._read(f"SELECT {_COLUMNS} FROM messages WHERE id = ?", (message_id,))
        return _held(rows[0]) if rows else None

    def raw(self, message_id: int) -> bytes | None:
        rows = self._read("SELECT raw FROM messages WHERE id = ?", (message_id,))
        return bytes(rows[0][0]) if rows and rows[0][0] is not None else None

    def envelope(self, message_id: int) -> Envelope | None:
        rows = self._read("SELECT mail_from, rcpt_tos, client_address, helo FROM messages"
                          " WHERE id = ?", (message_id,))
        if not rows:
            return None
        return Envelope(rows[0][0], tuple(json.loads(rows[0][1])), (), rows[0][2], rows[0][3])

    def set_status(self, message_id: int, status: str, *, expect: str = "held") -> bool:
        """Move a message from `expect` to `status`; deleting erases its content."""
        erase = ", raw = NULL, subject = '', matches = '[]'" if status == "deleted" else ""
        with self._write() as connection:
            return connection.execute(
                f"UPDATE messages SET status = ?, status_changed_at = ?{erase}"
                " WHERE id = ? AND status = ?",
                (status, time.time(), message_id, expect)).rowcount > 0

    def purge(self, older_than: float) -> int:
        """Erase every message received before `older_than` (a Unix time)."""
        with self._write() as connection:
            return connection.execute("DELETE FROM messages WHERE received_at < ?",
                                      (older_than,)).rowcount

    def rule_statistics(self) -> dict[str, dict[str, int]]:
        """Per rule: hits, releases and deletions."""
        stats: dict[str, dict[str, int]] = {}
        for matches, status in self._read("SELECT matches, status FROM messages"
                                          " WHERE direction = 'inbound'"):
            for rule in {m.get("rule") for m in json.loads(matches or "[]")}:
                entry = stats.setdefault(str(rule), {"hits": 0, "released": 0, "deleted": 0})
                entry["hits"] += 1
                if status in ("released", "deleted"):
                    entry[status] += 1
        return stats

    # --- audit and reviewers ----------------------------------------------------------------

    def audit(self, reviewer: str, action: str, outcome: str, *, message_id: int | None = None,
              detail: str = "") -> None:
        with self._write() as connection:
            connection.execute("INSERT INTO audit (at, reviewer, action, message_id, outcome,"
                               " detail) VALUES (?,?,?,?,?,?)",
                               (time.time(), reviewer, action, message_id, outcome, detail))

    def audit_log(self, *, limit: int = 1000, before_id: int | None = None) -> list[AuditEntry]:
        rows = self._read("SELECT id, at, reviewer, action, message_id, outcome, detail"
                          " FROM audit" + (" WHERE id < ?" if before_id else "")
                          + " ORDER BY id DESC LIMIT ?",
                          ([before_id] if before_id else []) + [limit])
        return [AuditEntry(*row) for row in rows]

    def add_reviewer(self, name: str, role: str, password_hash: str) -> None:
        with self._write() as connection:
            connection.execute("INSERT OR REPLACE INTO reviewers VALUES (?, ?, ?, ?)",
                               (name, role, password_hash, time.time()))

    def remove_reviewer(self, name: str) -> bool:
        with self._write() as connection:
            return connection.execute("DELETE FROM reviewers WHERE name = ?",
                                      (name,)).rowcount > 0

    def reviewer(self, name: str) -> tuple[str, str] | None:
        rows = self._read("SELECT role, password_hash FROM reviewers WHERE name = ?", (name,))
        return (rows[0][0], rows[0][1]) if rows else None

    def reviewers(self) -> list[tuple[str, str, float]]:
        return [tuple(row) for row in self._read(  # type: ignore[misc]
            "SELECT name, role, created_at FROM reviewers ORDER BY name")]
