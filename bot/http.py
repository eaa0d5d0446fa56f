"""The bot's aiohttp servers: ``/healthz`` (and ``/slack/events`` in HTTP mode) on the public
port, ``/metrics`` on a separate, internal one."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

ReadinessCheck = Callable[[], Awaitable[dict[str, bool]]]
# Dependencies that work badly right now, e.g. {"llm": "degraded (circuit open)"}.
DegradedCheck = Callable[[], dict[str, str]]


def build_health_app(
    readiness: ReadinessCheck, degraded: DegradedCheck | None = None
) -> web.Application:
    """The public app: ``/healthz``; adapters add their own routes.

    200 when every check passes, else 503. A dependency that works badly without stopping
    the bot (the LLM's circuit is open: commands, counters and reports still work) keeps
    200 and is named beside the checks with ``"status": "degraded"``
    (``"llm": "degraded (circuit open)"``), so a load balancer or orchestrator does not
    take a replica out of service for an outage every replica shares.
    """
    app = web.Application()

    async def healthz(_: web.Request) -> web.Response:
        checks = await readiness()
        problems = degraded() if degraded is not None else {}
        ready = bool(checks) and all(checks.values())
        state = "down" if not ready else ("degraded" if problems else "ok")
        body: dict[str, object] = {"ok": ready, "status": state, "checks": checks, **problems}
        return web.json_response(body, status=200 if ready else 503)

    app.router.add_get("/healthz", healthz)
    return app


def build_metrics_app() -> web.Application:
    """Prometheus metrics, served on ``METRICS_HOST:METRICS_PORT`` (internal by default)."""
    app = web.Application()

    async def metrics(_: web.Request) -> web.Response:
        return web.Response(body=generate_latest(), headers={"Content-Type": CONTENT_TYPE_LATEST})

    app.router.add_get("/metrics", metrics)
    return app
