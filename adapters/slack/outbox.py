"""Every Web API call a workspace makes, paced inside Slack's rate limits by all processes.

The budgets live in the injected :class:`core.ports.RateLimiter`: the bot gives every process
the same ``SqlRateLimiter``, so two processes serving one workspace share one budget instead
of each spending Slack's whole limit. Keys (``team`` is the workspace's team id)::

    slack:{team}:{method}                     the methods of DEFAULT_LIMITS (Tier 3 and 4)
    slack:{team}:chat.postMessage:{channel}   posts, per channel (1 a second, burst 3)

``chat.update`` (Tier 3, about 50 a minute per workspace) is shared by counter refreshes and
fallback streaming edits of every interview, so updates are coalesced per message: a slot is
taken first, and only then the message to edit is picked with its latest state, so no slot
is spent on a state that was already replaced. The pick: urgent ones first (in the order
they came), then the message whose last update is the oldest (a fair round-robin: with N
messages waiting, each is updated once every N slots). An update may be given as ``render``,
called when its slot comes, so what is sent is the state at that moment, not when queued.

The budget is split by method: streaming replies use the Tier-4 ``chat.startStream`` /
``appendStream`` / ``stopStream`` (interim appends only via :meth:`SlackOutbox.try_call`, when
a slot is free), so Tier 3's ``chat.update`` is left to the counters (and to replies only
where streaming is unavailable).

A 429 that still happens (Slack's limits are approximate, other apps, clock skew) is retried
by slack_sdk itself: ``AsyncRateLimitErrorRetryHandler`` sleeps ``Retry-After`` (+ up to 1 s
jitter) and tries again; ``AsyncServerErrorRetryHandler`` retries HTTP 500/503 with backoff.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import OrderedDict
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from slack_sdk.http_retry.builtin_async_handlers import (
    AsyncRateLimitErrorRetryHandler,
    AsyncServerErrorRetryHandler,
)
from slack_sdk.http_retry.request import HttpRequest
from slack_sdk.http_retry.response import HttpResponse
from slack_sdk.http_retry.state import RetryState
from slack_sdk.web.async_client import AsyncWebClient

from adapters.slack.limiter import MemoryRateLimiter
from core.ports import RateLimiter

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Limit:
    """``calls`` per window (a minute at Slack) on average, ``burst`` of them at once."""

    calls: int
    burst: int


# Under Slack's documented tiers (50 and 100 a minute, counted in a sliding minute). With GCRA
# any window of W seconds holds at most burst - 1 + ceil(W x calls / 60) of them: Tier 3 at
# 49 with no burst holds 50 in 61.2 s, so a call may reach Slack up to 1.2 s later than the
# one 49 calls before it (latency, a busy loop) and still be inside the limit; Tier 4 holds
# 96 in 61 s.
TIER_3 = Limit(49, 1)
TIER_4 = Limit(90, 5)
# A reply's start and end: a burst of 30 at once (30 candidates asking together all see their
# first words at once), then 68 a minute: any 61 s hold at most 99 of Slack's 100.
STREAM_ENDS = Limit(68, 30)
DEFAULT_LIMITS: dict[str, Limit] = {
    "chat.update": TIER_3,
    "chat.delete": TIER_3,
    "conversations.open": TIER_3,
    "conversations.info": TIER_3,
    "users.info": TIER_4,
    "views.open": TIER_4,
    "chat.postEphemeral": TIER_4,
    "chat.startStream": STREAM_ENDS,
    "chat.appendStream": TIER_4,
    "chat.stopStream": STREAM_ENDS,
    "chat.getPermalink": TIER_4,
}
POST_MESSAGE = "chat.postMessage"
RATE_LIMITED_RETRIES = 3
SERVER_ERROR_RETRIES = 2


class CountingRateLimitHandler(AsyncRateLimitErrorRetryHandler):
    """slack_sdk's 429 handler (waits ``Retry-After``, tries again) that also tells
    ``on_rate_limited`` the method of every 429, the one after the last retry included."""

    def __init__(self, on_rate_limited: Callable[[str], None] | None, max_retry_count: int) -> None:
        super().__init__(max_retry_count=max_retry_count)
        self.on_rate_limited = on_rate_limited

    async def can_retry_async(
        self,
        *,
        state: RetryState,
        request: HttpRequest,
        response: HttpResponse | None = None,
        error: Exception | None = None,
    ) -> bool:
        if response is not None and response.status_code == 429 and self.on_rate_limited:
            self.on_rate_limited(request.url.split("?", 1)[0].rstrip("/").rsplit("/", 1)[-1])
        return await super().can_retry_async(
            state=state, request=request, response=response, error=error
        )


def install_retry_handlers(
    client: AsyncWebClient, on_rate_limited: Callable[[str], None] | None = None
) -> None:
    """Have ``client`` retry 429s after ``Retry-After`` (telling ``on_rate_limited`` the method
    of each) and 500/503 with backoff (once each kind; Bolt copies the handlers into its
    per-request clients)."""
    handlers = client.retry_handlers
    if not any(isinstance(h, AsyncRateLimitErrorRetryHandler) for h in handlers):
        handlers.append(CountingRateLimitHandler(on_rate_limited, RATE_LIMITED_RETRIES))
    if not any(isinstance(h, AsyncServerErrorRetryHandler) for h in handlers):
        handlers.append(AsyncServerErrorRetryHandler(max_retry_count=SERVER_ERROR_RETRIES))


# What ``render`` gives: the message's arguments besides ``channel`` and ``ts``.
Render = Callable[[], Mapping[str, Any]]
# How long the outbox remembers when a message was last updated (for the round-robin).
REMEMBER_SENT_S = 3600.0


@dataclass
class _Update:
    """The latest wanted state of one message, and who waits for it to be sent."""

    args: dict[str, Any]
    urgent: bool
    render: Render | None
    since: float  # when the message was last updated (or first queued): older goes first
    waiters: list[asyncio.Future[None]] = field(default_factory=list)

    def final_args(self) -> dict[str, Any]:
        return self.args if self.render is None else {**self.args, **self.render()}


class SlackOutbox:
    """The only way the adapter talks to one workspace's Web API.

    ``window_s`` is the window the limits count in (Slack: 60 s; tests shrink it, with the
    fake Slack's window). ``team_id`` keys the budgets; the adapter sets it after
    ``auth.test``. ``on_rate_limited`` is told the method of every 429 (the bot's metrics).
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
        on_rate_limited: Callable[[str], None] | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.client = client
        install_retry_handlers(client, on_rate_limited)
        self.limiter: RateLimiter = limiter if limiter is not None else MemoryRateLimiter()
        self.team_id = team_id
        self._window_s = window_s
        self._limits = {**DEFAULT_LIMITS, **(limits or {})}
        self._post_burst, self._post_rate = post_burst, post_rate
        self._clock = clock
        self._updates: OrderedDict[tuple[str, str], _Update] = OrderedDict()
        self._sent: OrderedDict[tuple[str, str], float] = OrderedDict()  # oldest first
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

    async def try_call(self, method: str, **kwargs: Any) -> dict[str, Any] | None:
        """Call ``method`` only if its budget has a slot free right now; None (nothing sent)
        if not. For calls that can wait for a later chance: a streaming reply's appends."""
        channel = kwargs.get("channel")
        budget = self.budget(method, None if channel is None else str(channel))
        if budget is not None:
            try:
                if not await self.limiter.try_acquire(*budget):
                    return None
            except Exception:
                log.warning("rate limiter failed for %s; sending unpaced", method, exc_info=True)
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
        self,
        channel: str,
        ts: str,
        *,
        urgent: bool = False,
        render: Render | None = None,
        **args: Any,
    ) -> asyncio.Future[None]:
        """Queue ``chat.update`` of one message; a newer update replaces a queued one.

        ``render`` (if given) is called when the slot comes and its arguments are added to
        ``args``. The returned future completes when this state (or a newer one) was sent.
        """
        key = (channel, ts)
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        queued = self._updates.get(key)
        full = {"channel": channel, "ts": ts, **args}
        if queued is not None:
            queued.args, queued.render = full, render
            queued.urgent = queued.urgent or urgent
            queued.waiters.append(future)
        else:
            since = self._sent.get(key, self._clock())
            self._updates[key] = _Update(full, urgent, render, since, [future])
        self._idle.clear()
        if self._worker is None or self._worker.done():
            self._worker = asyncio.create_task(self._drain())
        return future

    def _next_update(self) -> _Update | None:
        """The first urgent update, else the message updated longest ago."""
        if not self._updates:
            return None
        key = next((k for k, u in self._updates.items() if u.urgent), None)
        if key is None:
            key = min(self._updates, key=lambda k: self._updates[k].since)
        return self._updates.pop(key)

    def _remember_sent(self, key: tuple[str, str]) -> None:
        now = self._clock()
        self._sent[key] = now
        self._sent.move_to_end(key)
        while self._sent:
            oldest = next(iter(self._sent))
            if self._sent[oldest] >= now - REMEMBER_SENT_S:
                break
            del self._sent[oldest]

    async def _drain(self) -> None:
        while self._updates:
            # The slot first, then the pick (urgent, else the longest waiting) at its latest.
            await self._acquire("chat.update")
            update = self._next_update()
            if update is None:
                break
            key = (str(update.args["channel"]), str(update.args["ts"]))
            try:
                await self._send("chat.update", update.final_args())
                outcome: BaseException | None = None
            except Exception as exc:  # delivered to whoever waits; logged otherwise
                log.warning("chat.update failed: %s", exc)
                outcome = exc
            self._remember_sent(key)
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
