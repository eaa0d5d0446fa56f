"""A tiny round-robin HTTP reverse proxy (the fallback when nginx is not on PATH).

    python -m bench.proxy PORT UPSTREAM_PORT [UPSTREAM_PORT ...]

Each request goes to the next upstream on 127.0.0.1 in turn, body and headers as they came
(Slack's signature covers the raw body), the answer back as it came.
"""

from __future__ import annotations

import itertools
import sys
from collections.abc import AsyncIterator

import aiohttp
from aiohttp import web

HOP_BY_HOP = {"connection", "keep-alive", "transfer-encoding", "host", "content-length"}


def build_app(upstreams: list[int]) -> web.Application:
    turn = itertools.cycle(upstreams)
    app = web.Application()

    async def session_ctx(app: web.Application) -> AsyncIterator[None]:
        app["http"] = aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0))
        yield
        await app["http"].close()

    async def forward(request: web.Request) -> web.Response:
        url = f"http://127.0.0.1:{next(turn)}{request.path_qs}"
        headers = {k: v for k, v in request.headers.items() if k.lower() not in HOP_BY_HOP}
        body = await request.read()
        async with app["http"].request(request.method, url, data=body, headers=headers) as answer:
            payload = await answer.read()
            out = {k: v for k, v in answer.headers.items() if k.lower() not in HOP_BY_HOP}
            return web.Response(status=answer.status, body=payload, headers=out)

    app.cleanup_ctx.append(session_ctx)
    app.router.add_route("*", "/{tail:.*}", forward)
    return app


def main() -> None:
    port, *upstreams = (int(a) for a in sys.argv[1:])
    web.run_app(build_app(upstreams), host="127.0.0.1", port=port, access_log=None, print=None)


if __name__ == "__main__":
    main()
