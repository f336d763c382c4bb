"""The review desk: Starlette, server-rendered pages that work without JavaScript.

Reviewers log in (argon2 hashes from `veil reviewer add`), sessions expire, every
state-changing request carries the session's CSRF token, failed logins are rate limited,
and every action lands in the append-only audit log. Held HTML is sanitised and shown in a
sandboxed iframe under a Content-Security-Policy that forbids scripts and remote loads.
"""

from __future__ import annotations

import asyncio
import email
import email.policy
import hmac
import secrets
import time
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Awaitable, Callable

from jinja2 import Environment, FileSystemLoader, select_autoescape
from markupsafe import Markup, escape
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import HTMLResponse, RedirectResponse, Response
from starlette.routing import Route

from gateway.config import Config
from gateway.quarantine.release import release
from gateway.quarantine.reviewers import password_matches
from gateway.quarantine.store import QuarantineStore, StoreUnavailable
from gateway.review.sanitise import sanitise_html

COOKIE = "veil_session"
PAGE_SIZE = 50
LOGIN_ATTEMPTS = 5          # failures allowed per client and name...
LOGIN_WINDOW = 300.0        # ...within this many seconds
PAGE_HEADERS = {
    "Content-Security-Policy": "default-src 'none'; style-src 'self' 'unsafe-inline'; "
                               "frame-src 'self'; form-action 'self'; frame-ancestors 'none'; "
                               "base-uri 'none'",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "X-Frame-Options": "DENY",
    "Cache-Control": "no-store",
}
BODY_HEADERS = {
    "Content-Security-Policy": "default-src 'none'; style-src 'unsafe-inline'; sandbox",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-store",
}


@dataclass
class Session:
    reviewer: str
    role: str
    csrf: str
    expires: float


@dataclass
class DeskState:
    config: Config
    store: QuarantineStore
    clock: Callable[[], float]
    sessions: dict[str, Session] = field(default_factory=dict)
    failures: dict[str, list[float]] = field(default_factory=dict)


def _templates() -> Environment:
    environment = Environment(loader=FileSystemLoader(Path(__file__).parent / "templates"),
                              autoescape=select_autoescape(["html"]))
    environment.filters["when"] = lambda ts: datetime.fromtimestamp(ts, timezone.utc).strftime(
        "%Y-%m-%d %H:%M UTC")
    environment.filters["highlight"] = lambda excerpt: Markup(
        str(escape(excerpt)).replace("[[", "<mark>").replace("]]", "</mark>"))
    return environment


TEMPLATES = _templates()


def _page(name: str, code: int = 200, **context: Any) -> HTMLResponse:
    return HTMLResponse(TEMPLATES.get_template(name).render(**context), status_code=code,
                        headers=PAGE_HEADERS)


def _message_id(request: Request) -> int | None:
    value = request.path_params.get("id", "")
    return int(value) if isinstance(value, str) and value.isdigit() and len(value) < 12 else None


def build_app(config: Config, store: QuarantineStore, *,
              clock: Callable[[], float] = time.time) -> Starlette:
    state = DeskState(config, store, clock)

    def session_of(request: Request) -> Session | None:
        token = request.cookies.get(COOKIE, "")
        session = state.sessions.get(token)
        if session is None:
            return None
        if session.expires < state.clock():
            state.sessions.pop(token, None)
            return None
        session.expires = state.clock() + config.review.session_minutes * 60
        return session

    def page(handler: Callable[[Request, Session], Awaitable[Response]], *,
             change: bool = False) -> Callable[[Request], Awaitable[Response]]:
        """Login required; POSTs need the CSRF token; changes need the reviewer role."""
        async def endpoint(request: Request) -> Response:
            session = session_of(request)
            if session is None:
                return RedirectResponse("/login", status_code=303)
            if request.method == "POST":
                form = await request.form()
                token = str(form.get("csrf", ""))
                if not hmac.compare_digest(token, session.csrf):
                    return _page("error.html", 403, message="Missing or invalid form token. "
                                 "Reload the page and try again.", session=session)
                if change and session.role != "reviewer":
                    await _audit(session.reviewer, request.url.path.rsplit("/", 1)[-1],
                                 "refused: auditor", _message_id(request))
                    return _page("error.html", 403, message="Auditors can look but not act.",
                                 session=session)
            try:
                return await handler(request, session)
            except StoreUnavailable:
                return _page("error.html", 503, message="The quarantine store is busy; "
                             "try again in a moment.", session=session)
        return endpoint

    async def _audit(reviewer: str, action: str, outcome: str, message_id: int | None = None,
                     detail: str = "") -> None:
        await asyncio.to_thread(store.audit, reviewer, action, outcome, message_id=message_id,
                                detail=detail)

    async def login(request: Request) -> Response:
        if request.method == "GET":
            return _page("login.html", error="")
        form = await request.form()
        name, password = str(form.get("name", ""))[:100], str(form.get("password", ""))[:1000]
        client = f"{request.client.host if request.client else '-'}:{name}"
        now = state.clock()
        recent = [t for t in state.failures.get(client, []) if now - t < LOGIN_WINDOW]
        state.failures[client] = recent
        if len(recent) >= LOGIN_ATTEMPTS:
            await _audit(name, "login", "rate limited")
            return _page("login.html", 429, error="Too many failed attempts. Wait a few "
                         "minutes and try again.")
        account = await asyncio.to_thread(store.reviewer, name)
        if account is None or not await asyncio.to_thread(password_matches, account[1],
                                                          password):
            recent.append(now)
            await _audit(name, "login", "failed")
            return _page("login.html", 401, error="Wrong name or password.")
        token = secrets.token_urlsafe(32)
        state.sessions[token] = Session(name, account[0], secrets.token_urlsafe(32),
                                        now + config.review.session_minutes * 60)
        state.failures.pop(client, None)
        await _audit(name, "login", "ok")
        response = RedirectResponse("/", status_code=303)
        response.set_cookie(COOKIE, token, httponly=True, samesite="strict",
                            max_age=config.review.session_minutes * 60)
        return response

    async def logout(request: Request, session: Session) -> Response:
        state.sessions.pop(request.cookies.get(COOKIE, ""), None)
        await _audit(session.reviewer, "logout", "ok")
        response = RedirectResponse("/login", status_code=303)
        response.delete_cookie(COOKIE)
        return response

    async def queue(request: Request, session: Session) -> Response:
        query = request.query_params
        status = query.get("status", "held")
        status = status if status in ("held", "released", "deleted", "all") else "held"
        filters: dict[str, Any] = {
            "status": None if status == "all" else status,
            "category": query.get("category") or None,
            "sender": query.get("sender") or None,
            "search": (query.get("q") or "")[:200] or None,
        }
        since = query.get("since") or ""
        try:
            filters["since"] = datetime.fromisoformat(since).replace(
                tzinfo=timezone.utc).timestamp() if since else None
        except ValueError:
            filters["since"] = None
        before = query.get("before", "")
        items = await asyncio.to_thread(
            store.list, **filters, before_id=int(before) if before.isdigit() else None,
            limit=PAGE_SIZE + 1)
        total = await asyncio.to_thread(store.count, **filters)
        more = len(items) > PAGE_SIZE
        items = items[:PAGE_SIZE]
        next_query = dict(query)
        if more:
            next_query["before"] = str(items[-1].id)
        return _page("queue.html", session=session, items=items, total=total, status=status,
                     query=query, more=more,
                     next_link="?" + "&".join(f"{k}={escape(v)}" for k, v in next_query.items()))

    async def show(request: Request, session: Session) -> Response:
        message_id = _message_id(request)
        held = await asyncio.to_thread(store.get, message_id) if message_id else None
        if held is None:
            return _page("error.html", 404, message="No such message.", session=session)
        raw = await asyncio.to_thread(store.raw, held.id)
        parsed = _read(raw) if raw is not None else None
        await _audit(session.reviewer, "view", "ok", held.id)
        blocked = await asyncio.to_thread(store.is_blocked, held.mail_from) \
            if held.mail_from else False
        return _page("message.html", session=session, held=held, parsed=parsed,
                     blocked=blocked)

    async def body(request: Request, session: Session) -> Response:
        """The sanitised HTML part alone, for the sandboxed iframe."""
        message_id = _message_id(request)
        raw = await asyncio.to_thread(store.raw, message_id) if message_id else None
        if raw is None:
            return Response("No such message.", 404, headers=BODY_HEADERS)
        parsed = _read(raw)
        return HTMLResponse("<!doctype html><meta charset=utf-8>" + parsed.safe_html,
                            headers=BODY_HEADERS)

    async def attachment(request: Request, session: Session) -> Response:
        message_id = _message_id(request)
        index = request.path_params.get("index", "")
        raw = await asyncio.to_thread(store.raw, message_id) if message_id else None
        if raw is None or not index.isdigit():
            return Response("No such attachment.", 404, headers=BODY_HEADERS)
        attachments = _read(raw).attachments
        if int(index) >= len(attachments):
            return Response("No such attachment.", 404, headers=BODY_HEADERS)
        name, data = attachments[int(index)]
        await _audit(session.reviewer, "download", "ok", message_id, name)
        safe_name = "".join(c for c in name if c.isalnum() or c in "._- ")[:100] or "attachment"
        return Response(data, media_type="application/octet-stream", headers={
            **BODY_HEADERS, "Content-Disposition": f'attachment; filename="{safe_name}"'})

    async def act(request: Request, session: Session) -> Response:
        message_id = _message_id(request)
        held = await asyncio.to_thread(store.get, message_id) if message_id else None
        if held is None:
            return _page("error.html", 404, message="No such message.", session=session)
        action = request.path_params["action"]
        notice = ""
        if action == "release":
            result = await release(store, config, held.id, reviewer=session.reviewer)
            notice = result.message
        elif action == "delete":
            ok = await asyncio.to_thread(store.set_status, held.id, "deleted",
                                         expect=held.status)
            await _audit(session.reviewer, "delete", "ok" if ok else "not held", held.id)
            notice = "Deleted." if ok else f"It is already {held.status}."
        elif action in ("block", "unblock"):
            if not held.mail_from:
                notice = "Bounces have no sender to block."
            elif action == "block":
                await asyncio.to_thread(store.block, held.mail_from,
                                        f"blocked by {session.reviewer}")
                notice = f"{held.mail_from} is blocked."
            else:
                await asyncio.to_thread(store.unblock, held.mail_from)
                notice = f"{held.mail_from} is no longer blocked."
            if held.mail_from:
                await _audit(session.reviewer, action, "ok", held.id, held.mail_from)
        elif action == "false-positive":
            await _audit(session.reviewer, "false-positive", "ok", held.id,
                         ",".join(str(m.get("rule")) for m in held.matches))
            notice = "Marked as a false positive of its rules."
        else:
            return _page("error.html", 404, message="No such action.", session=session)
        return _page("notice.html", session=session, notice=notice, held=held)

    async def rules(request: Request, session: Session) -> Response:
        stats = await asyncio.to_thread(store.rule_statistics)
        marked = await asyncio.to_thread(_false_positive_marks, store)
        rows = []
        for rule, entry in sorted(stats.items(), key=lambda item: -item[1]["hits"]):
            false_positives = entry["released"] + marked.get(rule, 0)
            rows.append({"rule": rule, **entry, "marked": marked.get(rule, 0),
                         "rate": false_positives / entry["hits"] if entry["hits"] else 0.0})
        return _page("rules.html", session=session, rows=rows)

    async def audit(request: Request, session: Session) -> Response:
        before = request.query_params.get("before", "")
        entries = await asyncio.to_thread(store.audit_log, limit=200,
                                          before_id=int(before) if before.isdigit() else None)
        return _page("audit.html", session=session, entries=entries)

    async def not_found(request: Request, error: Exception) -> Response:
        return _page("error.html", 404, message="Not found.", session=None)

    async def server_error(request: Request, error: Exception) -> Response:
        return _page("error.html", 500, message="Something went wrong; it has been logged.",
                     session=None)

    return Starlette(routes=[
        Route("/login", login, methods=["GET", "POST"]),
        Route("/logout", page(logout), methods=["POST"]),
        Route("/", page(queue)),
        Route("/message/{id}", page(show)),
        Route("/message/{id}/body", page(body)),
        Route("/message/{id}/attachment/{index}", page(attachment)),
        Route("/message/{id}/{action}", page(act, change=True), methods=["POST"]),
        Route("/rules", page(rules)),
        Route("/audit", page(audit)),
    ], exception_handlers={404: not_found, 500: server_error})


def _false_positive_marks(store: QuarantineStore) -> dict[str, int]:
    counts: dict[str, int] = {}
    for entry in store.audit_log(limit=100_000):
        if entry.action == "false-positive" and entry.outcome == "ok":
            for rule in filter(None, entry.detail.split(",")):
                counts[rule] = counts.get(rule, 0) + 1
    return counts


@dataclass
class ReadMessage:
    headers: list[tuple[str, str]]
    text: str
    safe_html: str
    attachments: list[tuple[str, bytes]]


def _read(raw: bytes) -> ReadMessage:
    """Headers, text, sanitised HTML and attachments of a held message, never raising."""
    message = email.message_from_bytes(raw, policy=email.policy.compat32)
    headers = [(name, str(value)[:2000]) for name, value in message.items()][:200]
    texts: list[str] = []
    html_parts: list[str] = []
    attachments: list[tuple[str, bytes]] = []
    for part in message.walk():
        if part.is_multipart():
            continue
        payload = part.get_payload(decode=True) or b""
        filename = part.get_filename()
        content_type = part.get_content_type()
        if filename or not content_type.startswith("text/"):
            attachments.append((str(filename or f"part.{content_type.split('/')[-1]}"),
                                payload))
            continue
        charset = part.get_content_charset() or "utf-8"
        try:
            decoded = payload.decode(charset, "replace")
        except LookupError:
            decoded = payload.decode("utf-8", "replace")
        (html_parts if content_type == "text/html" else texts).append(decoded)
    return ReadMessage(headers, "\n\n".join(texts)[:200_000],
                       sanitise_html("".join(html_parts)[:500_000]), attachments)
