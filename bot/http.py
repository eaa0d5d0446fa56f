"""The bot's aiohttp servers: ``/healthz`` (and ``/slack/events`` in HTTP mode) on the public
port, ``/metrics`` on a separate, internal one."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

ReadinessCheck = Callable[[], Awaitable[dict[str, bool]]]


def build_health_app(readiness: ReadinessCheck) -> web.Application:
    """The public app: ``/healthz``; adapters add their own routes."""
    app = web.Application()

    async def healthz(_: web.Request) -> web.Response:
        checks = await readiness()
        status = 200 if checks and all(checks.values()) else 503
        return web.json_response({"ok": status == 200, "checks": checks}, status=status)

    app.router.add_get("/healthz", healthz)
    return app


def build_metrics_app() -> web.Application:
    """Prometheus metrics, served on ``METRICS_HOST:METRICS_PORT`` (internal by default)."""
    app = web.Application()

    async def metrics(_: web.Request) -> web.Response:
        return web.Response(body=generate_latest(), headers={"Content-Type": CONTENT_TYPE_LATEST})

    app.router.add_get("/metrics", metrics)
    return app
