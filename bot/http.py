"""The bot's aiohttp server: ``/healthz``, ``/metrics`` and, when Slack runs over HTTP,
``/slack/events``."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

ReadinessCheck = Callable[[], Awaitable[dict[str, bool]]]


def build_http_app(readiness: ReadinessCheck) -> web.Application:
    """An app with health and metrics routes; adapters may add their own routes."""
    app = web.Application()

    async def healthz(_: web.Request) -> web.Response:
        checks = await readiness()
        status = 200 if checks and all(checks.values()) else 503
        return web.json_response({"ok": status == 200, "checks": checks}, status=status)

    async def metrics(_: web.Request) -> web.Response:
        return web.Response(body=generate_latest(), headers={"Content-Type": CONTENT_TYPE_LATEST})

    app.router.add_get("/healthz", healthz)
    app.router.add_get("/metrics", metrics)
    return app
