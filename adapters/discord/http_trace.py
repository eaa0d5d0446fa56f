"""Counting the 429s Discord answers. discord.py waits and retries them itself, so they never
reach the adapter; its ``http_trace`` option (an aiohttp ``TraceConfig`` on the client's
session) sees every response, whatever the log level."""

from __future__ import annotations

import re
from collections.abc import Callable
from types import SimpleNamespace
from urllib.parse import urlsplit

import aiohttp

_VERSION = re.compile(r"^.*?/v\d+(?=/)")


def route_of(method: str, url: str) -> str:
    """``PATCH /channels/{id}/messages/{id}``: the API path after the version, ids and tokens
    replaced (a label of bounded cardinality)."""
    path = _VERSION.sub("", urlsplit(url).path)
    parts = [
        "{id}" if part.isdigit() else "{token}" if len(part) >= 40 else part
        for part in path.split("/")
    ]
    return f"{method} {'/'.join(parts)}"


def rate_limit_trace(on_rate_limited: Callable[[str], None]) -> aiohttp.TraceConfig:
    """A trace that tells ``on_rate_limited`` the route of every 429 response."""

    async def on_request_end(
        _session: aiohttp.ClientSession,
        _context: SimpleNamespace,
        params: aiohttp.TraceRequestEndParams,
    ) -> None:
        if params.response.status == 429:
            on_rate_limited(route_of(params.method, str(params.url)))

    trace = aiohttp.TraceConfig()
    trace.on_request_end.append(on_request_end)
    return trace
