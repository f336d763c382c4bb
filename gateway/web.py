"""The HTTP listener: the review desk, plus /metrics and /healthz for operators."""

from __future__ import annotations

import asyncio

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import Mount, Route

from gateway import metrics
from gateway.config import Config
from gateway.quarantine.store import QuarantineStore, StoreUnavailable


def build_web_app(config: Config, store: QuarantineStore) -> Starlette:
    from gateway.review.app import build_app

    async def metrics_page(request: Request) -> Response:
        try:
            held = await asyncio.to_thread(store.count_held)
            metrics.QUARANTINE_HELD.set(held)
        except StoreUnavailable:
            pass
        return Response(metrics.exposition(), media_type="text/plain; version=0.0.4")

    async def health(request: Request) -> Response:
        try:
            await asyncio.to_thread(store.count_held)
        except StoreUnavailable as error:
            return PlainTextResponse(f"quarantine store unavailable: {error}", status_code=503)
        return PlainTextResponse("ok")

    return Starlette(routes=[
        Route("/metrics", metrics_page),
        Route("/healthz", health),
        Mount("/", app=build_app(config, store)),
    ])
