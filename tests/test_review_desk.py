"""The review desk over HTTP: roles, CSRF, safe rendering, release, audit."""

from __future__ import annotations

import re
import socket
from pathlib import Path
from typing import Iterator

import pytest
from starlette.testclient import TestClient

from gateway.config import Config, load_config
from gateway.envelope import Envelope
from gateway.quarantine.reviewers import hash_password
from gateway.quarantine.store import QuarantineStore
from gateway.review.app import build_app
from gateway.review.sanitise import sanitise_html

from conftest import write_config

HOSTILE = (b"From: Creep <creep@example.net>\r\nTo: Alex Morgan <alex.morgan@support.example>\r\n"
           b"Subject: you are so hot\r\nMIME-Version: 1.0\r\n"
           b'Content-Type: multipart/mixed; boundary="b"\r\n\r\n--b\r\n'
           b"Content-Type: text/html; charset=utf-8\r\n\r\n"
           b"<p onclick=\"steal()\">hi <script>window.pwned=1</script>"
           b"<img src=\"http://tracker.example/p.gif\" onerror=\"alert(1)\">"
           b"<a href=\"javascript:alert(2)\">click</a>"
           b"<form action=\"http://evil.example\"><input name=x></form></p>\r\n"
           b"--b\r\nContent-Type: application/pdf\r\nContent-Disposition: attachment; "
           b"filename=\"invoice.pdf\"\r\nContent-Transfer-Encoding: base64\r\n\r\nJVBERi0xLjQK\r\n"
           b"--b--\r\n")
PASSWORD = "correct horse battery"


@pytest.fixture
def desk(tmp_path: Path) -> Iterator[tuple[Config, QuarantineStore, int]]:
    config = load_config(write_config(tmp_path))
    store = QuarantineStore.open(config.quarantine.database)
    store.add_reviewer("rita", "reviewer", hash_password(PASSWORD))
    store.add_reviewer("aldo", "auditor", hash_password(PASSWORD))
    held = store.hold(HOSTILE, Envelope("creep@example.net", ("alex.morgan@support.example",)),
                      direction="inbound", verdict="quarantine", score=20.0,
                      matches=[{"rule": "en-looks-you-are", "category": "looks", "score": 10.0,
                                "excerpt": "Subject: [[you are so hot]]", "where": "subject"}],
                      reason="score 20 >= 10 (looks)", auth_results="Authentication-Results: "
                      "veil; dkim=none", agent_alias="Alex Morgan")
    yield config, store, held
    store.close()


def logged_in(config: Config, store: QuarantineStore, name: str) -> tuple[TestClient, str]:
    client = TestClient(build_app(config, store), follow_redirects=False)
    response = client.post("/login", data={"name": name, "password": PASSWORD})
    assert response.status_code == 303, response.text
    page = client.get("/").text
    csrf = re.search(r'name="csrf" value="([^"]+)"', page)
    assert csrf is not None
    return client, csrf.group(1)


def test_pages_without_a_session_redirect_to_login(desk: tuple) -> None:
    config, store, held = desk
    client = TestClient(build_app(config, store), follow_redirects=False)
    for path in ("/", f"/message/{held}", "/rules", "/audit", f"/message/{held}/body"):
        response = client.get(path)
        assert response.status_code == 303 and response.headers["location"] == "/login"
    assert client.post(f"/message/{held}/release", data={"csrf": "x"}).status_code == 303


def test_queue_filters_and_message_page_explain_the_hold(desk: tuple) -> None:
    config, store, held = desk
    client, _ = logged_in(config, store, "rita")
    queue = client.get("/", params={"category": "looks"}).text
    assert f'href="/message/{held}"' in queue and "creep@example.net" in queue
    assert f'href="/message/{held}"' not in client.get("/", params={"category": "threat"}).text
    page = client.get(f"/message/{held}")
    assert page.status_code == 200
    assert "<mark>you are so hot</mark>" in page.text
    assert "en-looks-you-are" in page.text and "dkim=none" in page.text
    assert "<script>window.pwned" not in page.text
    assert 'iframe sandbox src="/message/' in page.text
    assert "invoice.pdf" in page.text


def test_html_is_sanitised_and_served_under_a_strict_policy(desk: tuple) -> None:
    config, store, held = desk
    client, _ = logged_in(config, store, "rita")
    body = client.get(f"/message/{held}/body")
    policy = body.headers["content-security-policy"]
    assert "default-src 'none'" in policy and "sandbox" in policy
    for dangerous in ("<script", "onclick", "onerror", "javascript:", "tracker.example",
                      "<form", "<input", "evil.example"):
        assert dangerous not in body.text
    assert "click" in body.text


@pytest.mark.parametrize("markup", [
    '<img src=x onerror=alert(1)>', '<svg onload=alert(1)>', '<a href="javascript:x">y</a>',
    '<iframe src="http://e.example"></iframe>', '<div style="background:url(http://t.example)">',
    '<object data="x"></object>', '<meta http-equiv="refresh" content="0;url=http://e.example">',
    '<p><!--[if IE]><script>x</script><![endif]--></p>', '<base href="http://e.example/">',
    '<img src="cid:logo" srcset="http://t.example/x 2x">', '<a href="http://t.example">t</a>',
])
def test_sanitiser_leaves_nothing_that_runs_or_fetches(markup: str) -> None:
    clean = sanitise_html(markup).lower()
    for dangerous in ("<script", "onerror", "onload", "javascript:", "<iframe", "url(", "<object",
                      "<meta", "<svg", "<base", "http://", "srcset"):
        assert dangerous not in clean


def test_attachments_download_only_on_request_as_octet_stream(desk: tuple) -> None:
    config, store, held = desk
    client, _ = logged_in(config, store, "rita")
    response = client.get(f"/message/{held}/attachment/0")
    assert response.status_code == 200
    assert response.headers["content-type"] == "application/octet-stream"
    assert response.headers["content-disposition"] == 'attachment; filename="invoice.pdf"'
    assert response.content.startswith(b"%PDF")


def test_post_without_a_valid_csrf_token_is_refused(desk: tuple) -> None:
    config, store, held = desk
    client, _ = logged_in(config, store, "rita")
    assert client.post(f"/message/{held}/delete", data={}).status_code == 403
    assert client.post(f"/message/{held}/delete", data={"csrf": "forged"}).status_code == 403
    assert store.get(held).status == "held"


def test_auditor_cannot_release_or_delete(desk: tuple) -> None:
    config, store, held = desk
    client, csrf = logged_in(config, store, "aldo")
    for action in ("release", "delete", "block"):
        assert client.post(f"/message/{held}/{action}", data={"csrf": csrf}).status_code == 403
    assert store.get(held).status == "held"
    assert client.get(f"/message/{held}").status_code == 200


@pytest.mark.parametrize("path", ["/message/999999", "/message/abc", "/message/-1",
                                  "/message/1e9/body", "/message/99999999999999999999",
                                  "/message/1/attachment/x", "/nowhere"])
def test_unknown_or_malformed_ids_are_404_never_a_traceback(desk: tuple, path: str) -> None:
    config, store, _ = desk
    client, _ = logged_in(config, store, "rita")
    response = client.get(path)
    assert response.status_code == 404
    assert "Traceback" not in response.text


def test_login_failures_are_rate_limited(desk: tuple) -> None:
    config, store, _ = desk
    client = TestClient(build_app(config, store), follow_redirects=False)
    codes = [client.post("/login", data={"name": "rita", "password": "wrong"}).status_code
             for _ in range(7)]
    assert codes[:5] == [401] * 5 and codes[5:] == [429, 429]
    assert client.post("/login", data={"name": "rita", "password": PASSWORD}).status_code == 429
    assert [e.outcome for e in store.audit_log()][:3] == ["rate limited"] * 3


def test_sessions_expire(desk: tuple) -> None:
    config, store, _ = desk
    now = [1_000_000.0]
    client = TestClient(build_app(config, store, clock=lambda: now[0]), follow_redirects=False)
    assert client.post("/login", data={"name": "rita", "password": PASSWORD}).status_code == 303
    assert client.get("/").status_code == 200
    now[0] += config.review.session_minutes * 60 + 1
    assert client.get("/").status_code == 303


def test_release_delivers_the_original_and_is_audited(desk: tuple) -> None:
    config, store, held = desk
    client, csrf = logged_in(config, store, "rita")
    response = client.post(f"/message/{held}/release", data={"csrf": csrf})
    assert response.status_code == 200 and "released" in response.text
    assert store.get(held).status == "released"
    [eml] = Path(config.inbound.next_hop[len("spool:"):]).glob("*.eml")
    assert eml.read_bytes().endswith(HOSTILE)
    assert b"X-Veil-Verdict: released by rita" in eml.read_bytes()
    sidecar = eml.with_name(eml.name.replace(".eml", ".envelope.json")).read_text()
    assert "jane.doe@corp.example" in sidecar  # the alias routed to the real agent
    audit = client.get("/audit").text
    assert "release" in audit and "rita" in audit
    rules = client.get("/rules").text
    assert "en-looks-you-are" in rules and "100%" in rules


def test_failed_release_leaves_it_held(desk: tuple, tmp_path: Path) -> None:
    _, store, held = desk
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    config = load_config(write_config(tmp_path, inbound={"next_hop": f"smtp://127.0.0.1:{port}"}))
    client, csrf = logged_in(config, store, "rita")
    response = client.post(f"/message/{held}/release", data={"csrf": csrf})
    assert "still held" in response.text
    assert store.get(held).status == "held"


def test_block_sender_and_delete_erases_content(desk: tuple) -> None:
    config, store, held = desk
    client, csrf = logged_in(config, store, "rita")
    client.post(f"/message/{held}/block", data={"csrf": csrf})
    assert store.is_blocked("creep@example.net")
    client.post(f"/message/{held}/delete", data={"csrf": csrf})
    assert store.get(held).status == "deleted"
    assert store.raw(held) is None
    actions = [e.action for e in store.audit_log()]
    assert {"block", "delete", "view", "login"} <= set(actions) or {"block", "delete",
                                                                    "login"} <= set(actions)


def test_audit_log_is_append_only(desk: tuple) -> None:
    import sqlite3
    config, store, _ = desk
    store.audit("rita", "view", "ok", message_id=1)
    connection = sqlite3.connect(config.quarantine.database)
    with pytest.raises(sqlite3.DatabaseError, match="append-only"):
        connection.execute("UPDATE audit SET outcome = 'forged'")
    with pytest.raises(sqlite3.DatabaseError, match="append-only"):
        connection.execute("DELETE FROM audit")
    connection.close()


def test_queue_pages_use_the_index_at_any_size(desk: tuple) -> None:
    config, store, _ = desk
    import sqlite3
    connection = sqlite3.connect(config.quarantine.database)
    connection.executemany(
        "INSERT INTO messages (received_at, direction, verdict, mail_from) VALUES (?,?,?,?)",
        [(1_700_000_000 + i, "inbound", "quarantine", f"s{i % 500}@example.net")
         for i in range(100_000)])
    connection.commit()
    plan = " ".join(row[3] for row in connection.execute(
        "EXPLAIN QUERY PLAN SELECT id FROM messages WHERE status = 'held' AND id < 5000 "
        "ORDER BY id DESC LIMIT 51"))
    connection.close()
    assert "messages_by_status" in plan and "TEMP B-TREE" not in plan
    page = store.list(status="held", before_id=5000, limit=50)
    assert [h.id for h in page] == list(range(4999, 4949, -1))


@pytest.mark.parametrize("depth", [300, 3000])
def test_reviewer_sees_html_nested_deeper_than_the_parser_goes(depth: int) -> None:
    nested = "<div>" * depth + "send nudes now" + "<img src=x onerror=alert(1)>" + "</div>" * depth
    clean = sanitise_html(nested)
    assert "send nudes now" in clean
    assert "<img" not in clean.lower() and "<script" not in clean.lower()
