"""The lifecycle every fake shares: an aiohttp app on 127.0.0.1 on a free port."""

from __future__ import annotations

from types import TracebackType
from typing import Any, ClassVar, Self

from aiohttp import web


def client_address(request: web.Request) -> Any:
    """The (host, port) the request came from: one per TCP connection the client used."""
    return request.transport.get_extra_info("peername") if request.transport else None


class LocalServer:
    """Subclasses build their app in :meth:`build_app`; tests ``start``/``stop`` or use
    ``async with``. ``close_connections`` lets a fake end websockets before shutdown."""

    runner_options: ClassVar[dict[str, Any]] = {"access_log": None, "shutdown_timeout": 1.0}

    _runner: web.AppRunner | None = None
    _port: int | None = None

    def build_app(self) -> web.Application:
        raise TypeError(f"{type(self).__name__} must define build_app()")

    async def close_connections(self) -> None:
        """Close long-lived connections (websockets) before the server stops."""

    async def start(self) -> None:
        """Listen on 127.0.0.1 on a free port."""
        self._runner = web.AppRunner(self.build_app(), **self.runner_options)
        await self._runner.setup()
        await web.TCPSite(self._runner, "127.0.0.1", 0).start()
        self._port = int(self._runner.addresses[0][1])

    async def stop(self) -> None:
        """Stop listening (idempotent)."""
        await self.close_connections()
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.stop()

    @property
    def port(self) -> int:
        """The listening port (after :meth:`start`)."""
        if self._port is None:
            raise RuntimeError(f"{type(self).__name__} is not started")
        return self._port
