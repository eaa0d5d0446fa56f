"""Every Web API call a workspace makes, paced inside Slack's rate limits.

``chat.update`` (Tier 3, about 50 a minute per workspace) is shared by counter refreshes and
fallback streaming edits of every interview, so updates are coalesced per message (the latest
state wins) and sent in turn, urgent ones first. ``chat.postMessage`` is paced per channel
(about one a second with short bursts). Other methods get a sliding window per method. A 429
that still happens is retried after its ``Retry-After``.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import OrderedDict, deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from slack_sdk.errors import SlackApiError
from slack_sdk.web.async_client import AsyncWebClient

log = logging.getLogger(__name__)

Clock = Callable[[], float]

# Calls per window (60 s), a little under Slack's documented tiers to leave headroom.
DEFAULT_LIMITS = {
    "chat.update": 45,
    "chat.delete": 45,
    "conversations.open": 45,
    "conversations.info": 45,
    "users.info": 90,
    "views.open": 90,
    "chat.postEphemeral": 90,
    "chat.startStream": 90,
    "chat.appendStream": 90,
    "chat.stopStream": 90,
}


class SlidingWindow:
    """At most ``limit`` acquisitions in any ``window_s`` seconds."""

    def __init__(self, limit: int, window_s: float, clock: Clock = time.monotonic) -> None:
        self.limit = limit
        self.window_s = window_s
        self._clock = clock
        self._times: deque[float] = deque()
        self._lock = asyncio.Lock()

    def _prune(self, now: float) -> None:
        while self._times and now - self._times[0] >= self.window_s:
            self._times.popleft()

    async def acquire(self) -> None:
        async with self._lock:
            while True:
                now = self._clock()
                self._prune(now)
                if len(self._times) < self.limit:
                    self._times.append(now)
                    return
                await asyncio.sleep(self._times[0] + self.window_s - now + 0.01)

    def penalize(self, seconds: float) -> None:
        """After a 429: treat the window as full for ``seconds``."""
        now = self._clock()
        self._times = deque([now - self.window_s + seconds] * self.limit)


class TokenBucket:
    """``burst`` calls at once, refilled at ``rate`` per second."""

    def __init__(self, burst: int, rate: float, clock: Clock = time.monotonic) -> None:
        self.burst, self.rate, self._clock = burst, rate, clock
        self._tokens = float(burst)
        self._stamp = clock()
        self._lock = asyncio.Lock()

    async def acquire(self) -> None:
        async with self._lock:
            while True:
                now = self._clock()
                self._tokens = min(self.burst, self._tokens + (now - self._stamp) * self.rate)
                self._stamp = now
                if self._tokens >= 1:
                    self._tokens -= 1
                    return
                await asyncio.sleep((1 - self._tokens) / self.rate + 0.01)


@dataclass
class _Update:
    """The latest wanted state of one message, and who waits for it to be sent."""

    args: dict[str, Any]
    urgent: bool
    waiters: list[asyncio.Future[None]] = field(default_factory=list)


class SlackOutbox:
    """The only way the adapter talks to one workspace's Web API."""

    def __init__(
        self,
        client: AsyncWebClient,
        *,
        window_s: float = 60.0,
        limits: dict[str, int] | None = None,
        post_burst: int = 3,
        post_rate: float = 1.0,
        clock: Clock = time.monotonic,
    ) -> None:
        self.client = client
        self._clock = clock
        self._windows = {
            method: SlidingWindow(limit, window_s, clock)
            for method, limit in {**DEFAULT_LIMITS, **(limits or {})}.items()
        }
        self._post_burst, self._post_rate = post_burst, post_rate
        self._channel_buckets: dict[str, TokenBucket] = {}
        self._updates: OrderedDict[tuple[str, str], _Update] = OrderedDict()
        self._wake = asyncio.Event()
        self._worker: asyncio.Task[None] | None = None
        self._idle = asyncio.Event()
        self._idle.set()

    # -------------------------------------------------------------------- direct calls

    async def call(self, method: str, **kwargs: Any) -> dict[str, Any]:
        """Call ``method`` inside its window; retries a 429 after ``Retry-After``."""
        window = self._windows.get(method)
        if method == "chat.postMessage":
            channel = str(kwargs.get("channel"))
            bucket = self._channel_buckets.setdefault(
                channel, TokenBucket(self._post_burst, self._post_rate, self._clock)
            )
        for attempt in range(4):
            if method == "chat.postMessage":
                await bucket.acquire()
            elif window is not None:
                await window.acquire()
            try:
                # The SDK's own method for each call, so the wire format is exactly Slack's.
                response = await getattr(self.client, method.replace(".", "_"))(**kwargs)
                return dict(response.data) if isinstance(response.data, dict) else {}
            except SlackApiError as exc:
                if exc.response.status_code != 429 or attempt == 3:
                    raise
                delay = float(exc.response.headers.get("Retry-After", "1"))
                log.warning("Slack rate-limited %s; retrying in %.0f s", method, delay)
                if window is not None:
                    window.penalize(delay)
                await asyncio.sleep(delay)
        raise AssertionError("unreachable")

    async def post(self, **kwargs: Any) -> dict[str, Any]:
        """``chat.postMessage``, paced per channel."""
        return await self.call("chat.postMessage", **kwargs)

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
        self._wake.set()
        if self._worker is None or self._worker.done():
            self._worker = asyncio.create_task(self._drain())
        return future

    def _next_update(self) -> tuple[tuple[str, str], _Update] | None:
        for key, update in self._updates.items():
            if update.urgent:
                del self._updates[key]
                return key, update
        if self._updates:
            return self._updates.popitem(last=False)
        return None

    async def _drain(self) -> None:
        while True:
            picked = self._next_update()
            if picked is None:
                self._idle.set()
                return
            _, update = picked
            try:
                await self.call("chat.update", **update.args)
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
