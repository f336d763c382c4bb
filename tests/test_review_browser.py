"""The review desk in a real browser: Debian's Chromium driven by Playwright, headless.

The desk runs under uvicorn on a loopback port in a background thread; a hostile held message
must execute nothing and fetch nothing, and a reviewer's release must reach the audit page.
"""

from __future__ import annotations

import os
import re
import socket
import threading
import time
from pathlib import Path
from typing import Iterator

import pytest

from gateway.config import load_config
from gateway.envelope import Envelope
from gateway.quarantine.reviewers import hash_password
from gateway.quarantine.store import QuarantineStore
from gateway.review.app import build_app

from conftest import write_config

CHROMIUM = "/usr/bin/chromium"
ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-quic",
        "--disable-component-update", "--disable-sync", "--no-first-run"]
PASSWORD = "correct horse battery"


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


class TrapHandler:
    """A loopback HTTP server that counts every request: nothing should ever reach it."""

    def __init__(self) -> None:
        self.hits = 0


def hostile(trap_port: int) -> bytes:
    trap = f"http://127.0.0.1:{trap_port}"
    return (f"From: Creep <creep@example.net>\r\nTo: Alex Morgan <alex.morgan@support.example>\r\n"
            f"Subject: you are so hot\r\nMIME-Version: 1.0\r\n"
            f"Content-Type: text/html; charset=utf-8\r\n\r\n"
            f"<p>hi</p><script>fetch('{trap}/script'); window.parent.pwned = 1;</script>"
            f"<img src=\"{trap}/pixel.gif\" onerror=\"fetch('{trap}/onerror')\">"
            f"<a id=js href=\"javascript:fetch('{trap}/link')\">click me</a>"
            f"<div style=\"background:url({trap}/css)\">styled</div>"
            f"<iframe src=\"{trap}/frame\"></iframe>\r\n").encode()


@pytest.fixture
def desk(tmp_path: Path) -> Iterator[dict]:
    if not os.path.exists(CHROMIUM):
        pytest.skip("Debian's chromium is not installed (apt-get install chromium)")
    playwright = pytest.importorskip("playwright.sync_api")
    import uvicorn

    trap_port = free_port()
    trap_hits: list[str] = []
    trap = socket.socket()
    trap.bind(("127.0.0.1", trap_port))
    trap.listen(16)
    trap.settimeout(0.2)
    stop = threading.Event()

    def serve_trap() -> None:
        while not stop.is_set():
            try:
                connection, _ = trap.accept()
            except OSError:
                continue
            trap_hits.append(connection.recv(200).decode("latin-1").split("\r\n")[0])
            connection.close()

    threading.Thread(target=serve_trap, daemon=True).start()
    config = load_config(write_config(tmp_path))
    store = QuarantineStore.open(config.quarantine.database)
    store.add_reviewer("rita", "reviewer", hash_password(PASSWORD))
    envelope = Envelope("creep@example.net", ("alex.morgan@support.example",))
    held = store.hold(hostile(trap_port), envelope, direction="inbound", verdict="quarantine",
                      score=20.0, matches=[{"rule": "en-looks-you-are", "category": "looks",
                                            "score": 10.0, "excerpt": "[[you are so hot]]",
                                            "where": "subject"}], reason="score 20 >= 10")
    store.hold(b"Subject: threat\r\n\r\nI will kill you\r\n", Envelope("angry@example.net", envelope.rcpt_tos),
               direction="inbound", verdict="quarantine", score=10.0,
               matches=[{"rule": "en-threat", "category": "threat", "score": 10.0,
                         "excerpt": "[[kill you]]", "where": "body"}], reason="score 10 >= 10")
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(build_app(config, store), host="127.0.0.1", port=port,
                                           log_level="warning", lifespan="off"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started and time.monotonic() < deadline:
        time.sleep(0.05)
    with playwright.sync_playwright() as driver:
        browser = driver.chromium.launch(executable_path=CHROMIUM, headless=True, args=ARGS)
        try:
            yield {"browser": browser, "url": f"http://127.0.0.1:{port}", "held": held,
                   "store": store, "config": config, "trap_hits": trap_hits}
        finally:
            browser.close()
            server.should_exit = True
            thread.join(10)
            stop.set()
            trap.close()
            store.close()


def log_in(page: object, url: str) -> None:
    page.goto(f"{url}/")  # type: ignore[attr-defined]
    assert page.url.endswith("/login")  # type: ignore[attr-defined]
    page.fill("input[name=name]", "rita")  # type: ignore[attr-defined]
    page.fill("input[name=password]", PASSWORD)  # type: ignore[attr-defined]
    page.click("button[type=submit]")  # type: ignore[attr-defined]


def test_reviewer_filters_opens_releases_and_sees_the_audit(desk: dict) -> None:
    page = desk["browser"].new_page()
    url, held = desk["url"], desk["held"]
    log_in(page, url)
    assert "Quarantine: 2 held" in page.inner_text("h1")
    page.fill("input[name=category]", "looks")
    page.click("#filters button[type=submit]")
    rows = page.locator("tbody tr")
    assert rows.count() == 1 and "creep@example.net" in rows.first.inner_text()
    page.click(f"a[href='/message/{held}'] >> nth=0")
    assert page.locator("mark").first.inner_text() == "you are so hot"
    page.click("button[value=release]")
    assert "released" in page.inner_text("p.notice")
    assert desk["store"].get(held).status == "released"
    page.goto(f"{url}/audit")
    audit = page.inner_text("#audit")
    assert re.search(r"rita\s+release\s+" + str(held) + r"\s+ok", audit), audit
    spool = Path(desk["config"].inbound.next_hop[len("spool:"):])
    assert len(list(spool.glob("*.eml"))) == 1


def test_hostile_message_executes_and_fetches_nothing(desk: dict) -> None:
    page = desk["browser"].new_page()
    requests: list[str] = []
    dialogs: list[str] = []
    page.on("request", lambda request: requests.append(request.url))
    page.on("dialog", lambda dialog: (dialogs.append(dialog.message), dialog.dismiss()))
    log_in(page, desk["url"])
    page.goto(f"{desk['url']}/message/{desk['held']}")
    frame = page.frame_locator("iframe")
    assert frame.locator("body").inner_text(timeout=10_000).startswith("hi")
    frame.locator("#js, a").first.click(timeout=5_000)
    page.wait_for_timeout(1000)
    assert page.evaluate("window.pwned") is None
    assert dialogs == []
    assert desk["trap_hits"] == []
    assert all(request.startswith(desk["url"]) for request in requests), requests
