"""Every Web API call a workspace makes, paced inside Slack's rate limits by all processes.

The budgets live in the injected :class:`core.ports.RateLimiter`: the bot gives every process
the same ``SqlRateLimiter``, so two processes serving one workspace share one budget instead
of each spending Slack's whole limit. Keys (``team`` is the workspace's team id)::

    slack:{team}:{method}                     the methods of DEFAULT_LIMITS (Tier 3 and 4)
    slack:{team}:chat.postMessage:{channel}   posts, per channel (1 a second, burst 3)

``chat.update`` (Tier 3, about 50 a minute per workspace) is shared by counter refreshes and
fallback streaming edits of every interview, so updates are coalesced per message: a slot is
taken first, and only then the message to edit is picked (urgent ones first) with its latest
state, so no slot is spent on a state that was already replaced.

A 429 that still happens (Slack's limits are approximate, other apps, clock skew) is retried
by slack_sdk itself: ``AsyncRateLimitErrorRetryHandler`` sleeps ``Retry-After`` (+ up to 1 s
jitter) and tries again; ``AsyncServerErrorRetryHandler`` retries HTTP 500/503 with backoff.
"""

from __future__ import annotations

import asyncio
import logging
from collections import OrderedDict
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from slack_sdk.http_retry.builtin_async_handlers import (
    AsyncRateLimitErrorRetryHandler,
    AsyncServerErrorRetryHandler,
)
from slack_sdk.web.async_client import AsyncWebClient

from adapters.slack.limiter import MemoryRateLimiter
from core.ports import RateLimiter

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Limit:
    """``calls`` per window (a minute at Slack) on average, ``burst`` of them at once."""

    calls: int
    burst: int


# A little under Slack's documented tiers (50 and 100 a minute) to leave headroom: with GCRA
# any window of a minute holds at most calls + burst - 1 of them.
TIER_3 = Limit(45, 3)
TIER_4 = Limit(90, 5)
DEFAULT_LIMITS: dict[str, Limit] = {
    "chat.update": TIER_3,
    "chat.delete": TIER_3,
    "conversations.open": TIER_3,
    "conversations.info": TIER_3,
    "users.info": TIER_4,
    "views.open": TIER_4,
    "chat.postEphemeral": TIER_4,
    "chat.startStream": TIER_4,
    "chat.appendStream": TIER_4,
    "chat.stopStream": TIER_4,
    "chat.getPermalink": TIER_4,
}
POST_MESSAGE = "chat.postMessage"
RATE_LIMITED_RETRIES = 3
SERVER_ERROR_RETRIES = 2


def install_retry_handlers(client: AsyncWebClient) -> None:
    """Have ``client`` retry 429s after ``Retry-After`` and 500/503 with backoff (once each
    kind; Bolt copies the handlers into its per-request clients)."""
    present = {type(handler) for handler in client.retry_handlers}
    if AsyncRateLimitErrorRetryHandler not in present:
        client.retry_handlers.append(
            AsyncRateLimitErrorRetryHandler(max_retry_count=RATE_LIMITED_RETRIES)
        )
    if AsyncServerErrorRetryHandler not in present:
        client.retry_handlers.append(
            AsyncServerErrorRetryHandler(max_retry_count=SERVER_ERROR_RETRIES)
        )


@dataclass
class _Update:
    """The latest wanted state of one message, and who waits for it to be sent."""

    args: dict[str, Any]
    urgent: bool
    waiters: list[asyncio.Future[None]] = field(default_factory=list)


class SlackOutbox:
    """The only way the adapter talks to one workspace's Web API.

    ``window_s`` is the window the limits count in (Slack: 60 s; tests shrink it, with the
    fake Slack's window). ``team_id`` keys the budgets; the adapter sets it after
    ``auth.test``.
    """

    def __init__(
        self,
        client: AsyncWebClient,
        *,
        limiter: RateLimiter | None = None,
        team_id: str | None = None,
        window_s: float = 60.0,
        limits: Mapping[str, Limit] | None = None,
        post_burst: int = 3,
        post_rate: float = 1.0,
    ) -> None:
        self.client = client
        install_retry_handlers(client)
        self.limiter: RateLimiter = limiter if limiter is not None else MemoryRateLimiter()
        self.team_id = team_id
        self._window_s = window_s
        self._limits = {**DEFAULT_LIMITS, **(limits or {})}
        self._post_burst, self._post_rate = post_burst, post_rate
        self._updates: OrderedDict[tuple[str, str], _Update] = OrderedDict()
        self._worker: asyncio.Task[None] | None = None
        self._idle = asyncio.Event()
        self._idle.set()

    # -------------------------------------------------------------------- budgets

    def budget(self, method: str, channel: str | None = None) -> tuple[str, float, int] | None:
        """The limiter key, rate per second and burst of a call (None: not limited here)."""
        team = self.team_id or "-"
        if method == POST_MESSAGE:
            return f"slack:{team}:{POST_MESSAGE}:{channel}", self._post_rate, self._post_burst
        limit = self._limits.get(method)
        if limit is None:
            return None
        return f"slack:{team}:{method}", limit.calls / self._window_s, limit.burst

    async def _acquire(self, method: str, channel: str | None = None) -> None:
        budget = self.budget(method, channel)
        if budget is None:
            return
        try:
            await self.limiter.acquire(*budget)
        except Exception:
            # The shared budget is unreachable (e.g. the database): send anyway; Slack
            # answers 429 if it must, and the SDK waits as told.
            log.warning("rate limiter failed for %s; sending unpaced", method, exc_info=True)

    # -------------------------------------------------------------------- direct calls

    async def call(self, method: str, **kwargs: Any) -> dict[str, Any]:
        """Call ``method`` once its budget allows (429s are retried by the SDK)."""
        channel = kwargs.get("channel")
        await self._acquire(method, None if channel is None else str(channel))
        return await self._send(method, kwargs)

    async def _send(self, method: str, kwargs: dict[str, Any]) -> dict[str, Any]:
        # The SDK's own method for each call, so the wire format is exactly Slack's.
        response = await getattr(self.client, method.replace(".", "_"))(**kwargs)
        return dict(response.data) if isinstance(response.data, dict) else {}

    async def post(self, **kwargs: Any) -> dict[str, Any]:
        """``chat.postMessage``, paced per channel."""
        return await self.call(POST_MESSAGE, **kwargs)

    # -------------------------------------------------------------------- coalesced edits

    def update(
        self, channel: str, ts: str, *, urgent: bool = False, **args: Any
    ) -> asyncio.Future[None]:
        """Queue ``chat.update`` of one message; a newer update replaces a queued one.

        The returned future completes when this state (or a newer one) has been sent.
        """
        key = (channel, ts)
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        queued = self._updates.get(key)
        if queued is not None:
            queued.args = {"channel": channel, "ts": ts, **args}
            queued.urgent = queued.urgent or urgent
            queued.waiters.append(future)
        else:
            self._updates[key] = _Update({"channel": channel, "ts": ts, **args}, urgent, [future])
        self._idle.clear()
        if self._worker is None or self._worker.done():
            self._worker = asyncio.create_task(self._drain())
        return future

    def _next_update(self) -> _Update | None:
        for key, update in self._updates.items():
            if update.urgent:
                del self._updates[key]
                return update
        if self._updates:
            return self._updates.popitem(last=False)[1]
        return None

    async def _drain(self) -> None:
        while self._updates:
            # The slot first, then the pick: the freshest state of the most urgent message.
            await self._acquire("chat.update")
            update = self._next_update()
            if update is None:
                break
            try:
                await self._send("chat.update", update.args)
                outcome: BaseException | None = None
            except Exception as exc:  # delivered to whoever waits; logged otherwise
                log.warning("chat.update failed: %s", exc)
                outcome = exc
            for waiter in update.waiters:
                if not waiter.done():
                    if outcome is None:
                        waiter.set_result(None)
                    else:
                        waiter.set_exception(outcome)
                        waiter.exception()  # mark retrieved: callers may not await it
        self._idle.set()

    @property
    def queued_updates(self) -> int:
        return len(self._updates)

    async def flush(self) -> None:
        """Wait until every queued update has been sent."""
        await self._idle.wait()

    async def close(self) -> None:
        if self._worker is not None:
            self._worker.cancel()
            await asyncio.gather(self._worker, return_exceptions=True)
