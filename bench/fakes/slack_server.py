"""A fake Slack Web API for tests: real HTTP on 127.0.0.1, Slack's wire format and errors.

Point the real SDK (or Bolt's client) at ``fake.api_url``::

    async with FakeSlack() as fake:
        client = AsyncWebClient(token="xoxb-test", base_url=fake.api_url)
        dm = (await client.conversations_open(users="U1,U2"))["channel"]["id"]
        await client.chat_postMessage(channel=dm, text="hi")
        assert [m.text for m in fake.channel_messages(dm)] == ["hi"]

Wire format (checked against slack_sdk 3.47): ``chat.postMessage``, ``chat.update``,
``chat.postEphemeral``, ``chat.*Stream`` and ``views.open`` are sent as JSON bodies;
``conversations.open``, ``chat.delete``, ``files.*External`` and ``auth.test`` as POST with the
arguments in the query string; ``users.info`` and ``conversations.info`` as GET. The fake merges
query string, form (urlencoded or multipart) and JSON bodies. The token is read from
``Authorization: Bearer ...`` (what the SDK sends) or a ``token`` argument; a missing token answers
``not_authed`` and an unknown one ``invalid_auth``, both with HTTP 200 like Slack. Every response
carries ``X-OAuth-Scopes`` (Bolt reads the bot scopes from it on ``auth.test``).

Every Web API call and response-URL post waits ``latency`` seconds (default 0; the
benchmarks use 0.08) before it is answered.

Rate limits, per workspace (team) and per method, in a sliding window of ``window_seconds``
(60) on ``clock`` (``time.monotonic``); calls answered 429 don't count. Defaults
(:data:`DEFAULT_LIMITS`, calls per window): Tier 3 = 50 for ``chat.update``, ``chat.delete``,
``conversations.open``, ``conversations.info``; Tier 4 = 100 for ``users.info``, ``views.open``,
``chat.postEphemeral``, ``chat.startStream`` / ``appendStream`` / ``stopStream`` and
``files.*External``; ``auth.test`` ("special") 600. ``chat.postMessage`` has no workspace window
by default but a token bucket per channel: ``post_message_burst`` (5) messages at once, refilled
at ``post_message_rate`` (1.0) per second ("1 per second per channel, short bursts allowed").
Over a limit: HTTP 429, ``Retry-After: <integer seconds>``, body
``{"ok": false, "error": "ratelimited"}``, and ``(method, channel)`` appended to
``fake.rate_limited``. ``set_limit(method, n)`` changes (``None`` removes) a workspace limit.

How the client sees a 429: ``AsyncWebClient``'s default ``retry_handlers`` are
``slack_sdk.http_retry.builtin_async_handlers.async_default_handlers()`` =
``[AsyncConnectionErrorRetryHandler()]`` (one retry on connection errors only), so by default a
429 is **not** retried: it raises ``SlackApiError`` with ``e.response.status_code == 429``,
``e.response["error"] == "ratelimited"`` and ``e.response.headers["Retry-After"]``. Retrying is
opt-in: ``client.retry_handlers.append(AsyncRateLimitErrorRetryHandler(max_retry_count=n))``
sleeps ``int(Retry-After) + random()`` seconds per retry. Bolt copies the app client's
``retry_handlers`` into each per-request client.

Other approximations (documented, not Slack guarantees): any well-formed user id (``U``/``W``...)
may be used in ``conversations.open`` but ``users.info`` knows only users added with
:meth:`FakeSlack.add_user`; ``thread_ts`` is not validated by ``chat.postMessage``; trigger ids
from :meth:`FakeSlack.new_trigger_id` expire after ``trigger_ttl`` (3 s), other trigger ids are
accepted, and every trigger id works once; ``chat.startStream`` outside a 1:1 DM requires
``recipient_team_id`` and ``recipient_user_id`` (``stream_requires_recipient``), and a stream
leaves the streaming state after ``stream_timeout`` (300 s) or :meth:`FakeSlack.expire_stream`;
a response URL accepts ``response_url_max_uses`` (5) posts within ``response_url_ttl`` (1800 s).

Socket Mode: ``apps.connections.open`` with ``app_token`` (``xapp-test``) answers a
``ws://127.0.0.1:PORT/socket-mode?ticket=...`` URL (a bot token gets ``not_allowed_token_type``,
any other token ``invalid_auth``, none ``not_authed``); the socket greets with ``hello``. Controls:
:meth:`FakeSlack.drop_sockets` closes every connection from the server side,
:meth:`FakeSlack.refuse_sockets` makes new connections fail (``apps.connections.open`` answers an
error, or the WebSocket handshake answers HTTP 503) until :meth:`FakeSlack.accept_sockets`.
Tickets are not checked (the SDK retries a failed handshake with the same URL).
"""

from __future__ import annotations

import asyncio
import itertools
import json
import math
import mimetypes
import re
import secrets
import time
from collections import defaultdict, deque
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, NamedTuple
from zoneinfo import ZoneInfo

from aiohttp import WSCloseCode, web

from bench.fakes.local_server import LocalServer, client_address

TIER_1 = 1
TIER_2 = 20
TIER_3 = 50
TIER_4 = 100

DEFAULT_LIMITS: dict[str, int] = {
    "auth.test": 600,
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
    "files.getUploadURLExternal": TIER_4,
    "files.completeUploadExternal": TIER_4,
    "chat.getPermalink": TIER_4,
}
"""Calls per window (60 s) per workspace and method."""

STREAM_METHODS = frozenset({"chat.startStream", "chat.appendStream", "chat.stopStream"})
DEFAULT_SCOPES = (
    "chat:write,commands,im:write,mpim:write,im:read,mpim:read,im:history,mpim:history,"
    "channels:read,groups:read,users:read,files:write"
)
MAX_TEXT = 40_000
MAX_MARKDOWN = 12_000
MAX_MPIM_USERS = 8

_USER_ID_RE = re.compile(r"^[UW][A-Z0-9]+$")
_TS_START_MICROS = 1_700_000_000_000_100
_TS_STEP_MICROS = 100


class Call(NamedTuple):
    """One recorded Web API call (``params`` without the token; ``at`` on the fake's clock)."""

    method: str
    params: dict[str, Any]
    at: float


@dataclass
class FakeUser:
    """A workspace member as ``users.info`` returns it."""

    id: str
    name: str
    real_name: str = ""
    team_id: str = "T0001"
    is_admin: bool = False
    is_owner: bool = False
    is_primary_owner: bool = False
    is_bot: bool = False
    deleted: bool = False
    tz: str = "UTC"
    email: str | None = None

    def to_api(self) -> dict[str, Any]:
        """The ``user`` object of ``users.info``."""
        zone = ZoneInfo(self.tz)
        now = datetime.now(UTC).astimezone(zone)
        offset = now.utcoffset()
        real_name = self.real_name or self.name
        return {
            "id": self.id,
            "team_id": self.team_id,
            "name": self.name,
            "deleted": self.deleted,
            "color": "9f69e7",
            "real_name": real_name,
            "tz": self.tz,
            "tz_label": now.tzname() or self.tz,
            "tz_offset": int(offset.total_seconds()) if offset is not None else 0,
            "profile": {
                "real_name": real_name,
                "real_name_normalized": real_name,
                "display_name": self.name,
                "display_name_normalized": self.name,
                "avatar_hash": "g000000000",
                "title": "",
                "phone": "",
                "skype": "",
                "status_text": "",
                "status_emoji": "",
                "fields": None,
                "email": self.email,
                "team": self.team_id,
            },
            "is_admin": self.is_admin,
            "is_owner": self.is_owner,
            "is_primary_owner": self.is_primary_owner,
            "is_restricted": False,
            "is_ultra_restricted": False,
            "is_bot": self.is_bot,
            "is_app_user": False,
            "updated": 1_700_000_000,
        }


@dataclass
class FakeChannel:
    """A conversation: ``kind`` is ``"channel"``, ``"private"``, ``"im"`` or ``"mpim"``."""

    id: str
    kind: str
    name: str = ""
    members: list[str] = field(default_factory=list)
    created: int = 1_700_000_000
    creator: str = ""
    is_member: bool = True
    is_archived: bool = False

    def to_api(self, bot_user_id: str) -> dict[str, Any]:
        """The ``channel`` object of ``conversations.info``."""
        if self.kind == "im":
            other = next((m for m in self.members if m != bot_user_id), bot_user_id)
            return {
                "id": self.id,
                "created": self.created,
                "is_archived": False,
                "is_im": True,
                "is_org_shared": False,
                "user": other,
                "is_user_deleted": False,
                "is_open": True,
                "priority": 0,
            }
        return {
            "id": self.id,
            "name": self.name,
            "name_normalized": self.name,
            "created": self.created,
            "creator": self.creator,
            "is_channel": self.kind in ("channel", "private"),
            "is_group": False,
            "is_im": False,
            "is_mpim": self.kind == "mpim",
            "is_private": self.kind != "channel",
            "is_archived": self.is_archived,
            "is_general": False,
            "is_shared": False,
            "is_ext_shared": False,
            "is_org_shared": False,
            "is_member": self.is_member,
            "is_open": True,
            "num_members": len(self.members),
            "topic": {"value": "", "creator": "", "last_set": 0},
            "purpose": {"value": "", "creator": "", "last_set": 0},
        }


@dataclass
class FakeMessage:
    """A message in a channel, with its edit history (``history``, oldest first)."""

    channel: str
    ts: str
    text: str
    user: str
    team: str
    bot_id: str | None = None
    app_id: str | None = None
    blocks: list[Any] | None = None
    attachments: list[Any] | None = None
    thread_ts: str | None = None
    metadata: dict[str, Any] | None = None
    files: list[str] = field(default_factory=list)
    history: list[dict[str, Any]] = field(default_factory=list)
    edited_ts: str | None = None
    reply_count: int = 0
    reply_users: list[str] = field(default_factory=list)
    latest_reply: str | None = None
    streaming: bool = False
    stream_started_at: float | None = None
    chunks: list[dict[str, Any]] = field(default_factory=list)

    @property
    def is_reply(self) -> bool:
        """True for a thread reply (not the thread's parent)."""
        return self.thread_ts is not None and self.thread_ts != self.ts

    @property
    def edited(self) -> bool:
        """True once ``chat.update`` changed the message."""
        return self.edited_ts is not None

    def to_api(self) -> dict[str, Any]:
        """The message object as Slack returns it."""
        data: dict[str, Any] = {"type": "message", "user": self.user, "text": self.text}
        if self.bot_id is not None:
            data["bot_id"] = self.bot_id
            data["app_id"] = self.app_id
        data["ts"] = self.ts
        data["team"] = self.team
        if self.blocks is not None:
            data["blocks"] = self.blocks
        if self.attachments is not None:
            data["attachments"] = self.attachments
        if self.metadata is not None:
            data["metadata"] = self.metadata
        if self.files:
            data["files"] = [{"id": file_id} for file_id in self.files]
        if self.thread_ts is not None:
            data["thread_ts"] = self.thread_ts
            if self.reply_count:
                data["reply_count"] = self.reply_count
                data["reply_users"] = list(self.reply_users)
                data["reply_users_count"] = len(self.reply_users)
                data["latest_reply"] = self.latest_reply
        if self.edited_ts is not None:
            data["edited"] = {"user": self.user, "ts": self.edited_ts}
        return data


@dataclass
class FakeFile:
    """A file of the ``files_upload_v2`` flow (``data`` is None until uploaded)."""

    id: str
    filename: str
    length: int
    upload_key: str
    user: str
    alt_txt: str | None = None
    snippet_type: str | None = None
    data: bytes | None = None
    title: str | None = None
    completed: bool = False
    channels: list[str] = field(default_factory=list)
    thread_ts: str | None = None
    initial_comment: str | None = None
    created: int = field(default_factory=lambda: int(time.time()))

    def to_api(self) -> dict[str, Any]:
        """The file object of ``files.completeUploadExternal``."""
        mimetype = mimetypes.guess_type(self.filename)[0] or "application/octet-stream"
        return {
            "id": self.id,
            "created": self.created,
            "name": self.filename,
            "title": self.title or self.filename,
            "mimetype": mimetype,
            "filetype": self.snippet_type or (self.filename.rsplit(".", 1)[-1].lower()),
            "user": self.user,
            "size": len(self.data or b""),
            "channels": list(self.channels),
        }


@dataclass
class Ephemeral:
    """A ``chat.postEphemeral`` message (visible to ``user`` only)."""

    channel: str
    user: str
    message_ts: str
    text: str
    blocks: list[Any] | None = None
    thread_ts: str | None = None


@dataclass
class OpenedView:
    """A ``views.open`` call: the view as sent and the view object returned."""

    view_id: str
    trigger_id: str
    view: dict[str, Any]
    response: dict[str, Any]


@dataclass
class _Workspace:
    token: str
    team_id: str
    team_name: str
    team_domain: str
    bot_user_id: str
    bot_id: str
    bot_name: str
    app_id: str


@dataclass
class _Fault:
    error: str
    retry_after: int
    status: int = 200


@dataclass
class _ResponseUrl:
    created_at: float
    uses: int = 0


class _ApiError(Exception):
    """An ``{"ok": false, "error": ...}`` answer raised from a handler."""

    def __init__(self, error: str, **extra: Any) -> None:
        super().__init__(error)
        self.error = error
        self.extra = extra


def _invalid_arguments(message: str) -> _ApiError:
    return _ApiError("invalid_arguments", response_metadata={"messages": [f"[ERROR] {message}"]})


def _str_param(params: Mapping[str, Any], name: str) -> str | None:
    value = params.get(name)
    if value is None or value == "":
        return None
    return str(value)


def _bool_param(params: Mapping[str, Any], name: str) -> bool:
    value = params.get(name)
    if isinstance(value, bool):
        return value
    return str(value).lower() in ("1", "true")


def _json_param(params: Mapping[str, Any], name: str, error: str) -> Any:
    """A structured argument sent as JSON (native) or as a JSON string (form/query)."""
    value = params.get(name)
    if value is None or value == "":
        return None
    if isinstance(value, str):
        try:
            return json.loads(value)
        except json.JSONDecodeError as exc:
            raise _ApiError(error) from exc
    return value


def _ts_string(micros: int) -> str:
    return f"{micros // 1_000_000}.{micros % 1_000_000:06d}"


def _ts_micros(ts: str) -> int:
    seconds, _, fraction = ts.partition(".")
    return int(seconds) * 1_000_000 + int((fraction + "000000")[:6])


_Blocks = list[Any] | None
Handler = Callable[[_Workspace, dict[str, Any]], dict[str, Any]]


class FakeSlack(LocalServer):
    """An aiohttp server answering ``/api/<method>`` like the Slack Web API.

    State for assertions: ``calls``, ``messages`` (keyed by ``(channel, ts)``), ``deleted``,
    ``ephemerals``, ``views``, ``files``, ``responses`` (response-URL id -> posted JSON bodies),
    ``users``, ``channels``, ``rate_limited``. Controls: ``streaming_enabled``,
    ``rate_limits_enabled``, ``set_limit``, ``fail_next``, ``hold`` / ``release``,
    ``expire_stream``, plus the constructor's numbers (also plain attributes, changeable at
    any time). Socket Mode:
    ``sockets`` (open connections), ``socket_connections`` (accepted so far),
    ``socket_refusals``, ``tickets_issued`` / ``tickets_used``, ``socket_acks``; controls
    ``drop_sockets``, ``refuse_sockets``, ``accept_sockets``.
    """

    def __init__(
        self,
        *,
        bot_token: str = "xoxb-test",
        team_id: str = "T0001",
        bot_user_id: str = "UBOT",
        bot_id: str = "B0001",
        bot_name: str = "interview-buddy",
        app_id: str = "A0001",
        team_name: str = "Test Team",
        team_domain: str = "test-team",
        scopes: str = DEFAULT_SCOPES,
        limits: Mapping[str, int] | None = None,
        window_seconds: float = 60.0,
        post_message_burst: int = 5,
        post_message_rate: float = 1.0,
        clock: Callable[[], float] = time.monotonic,
        stream_timeout: float = 300.0,
        trigger_ttl: float = 3.0,
        response_url_max_uses: int = 5,
        response_url_ttl: float = 1800.0,
        app_token: str = "xapp-test",
        latency: float = 0.0,
    ) -> None:
        self.latency = latency
        self.bot_token = bot_token
        self.app_token = app_token
        self.sockets: list[web.WebSocketResponse] = []
        self.socket_acks: dict[str, dict[str, Any]] = {}
        self.socket_connections = 0
        self.socket_refusals = 0
        self.tickets_issued: list[str] = []
        self.tickets_used: list[str] = []
        self._socket_open_error: str | None = None
        self._socket_handshake_refused = False
        self._socket_waiters: dict[str, asyncio.Future[dict[str, Any]]] = {}
        self._socket_changed = asyncio.Condition()
        self.team_id = team_id
        self.bot_user_id = bot_user_id
        self.bot_id = bot_id
        self.app_id = app_id
        self.scopes = scopes
        self.limits: dict[str, int] = {**DEFAULT_LIMITS, **(limits or {})}
        self.window_seconds = window_seconds
        self.post_message_burst = post_message_burst
        self.post_message_rate = post_message_rate
        self.rate_limits_enabled = True
        self.streaming_enabled = True
        self.stream_requires_recipient = True
        self.stream_timeout = stream_timeout
        self.trigger_ttl = trigger_ttl
        self.response_url_max_uses = response_url_max_uses
        self.response_url_ttl = response_url_ttl

        self.calls: list[Call] = []
        # each recorded call's client address (host, port): one per TCP connection used
        self.connections: list[Any] = []
        self.response_connections: list[Any] = []  # the same for posts to response URLs
        self.rate_limited: list[tuple[str, str | None]] = []
        self.messages: dict[tuple[str, str], FakeMessage] = {}
        self.deleted: list[FakeMessage] = []
        self.ephemerals: list[Ephemeral] = []
        self.views: list[OpenedView] = []
        self.files: dict[str, FakeFile] = {}
        self.responses: dict[str, list[dict[str, Any]]] = {}
        self.users: dict[str, FakeUser] = {}
        self.channels: dict[str, FakeChannel] = {}

        self._clock = clock
        self._workspaces: dict[str, _Workspace] = {}
        self._conversations: dict[tuple[str, frozenset[str]], str] = {}
        self._ids = itertools.count(1)
        self._ts_micros = _TS_START_MICROS - _TS_STEP_MICROS
        self._windows: dict[tuple[str, str], deque[float]] = defaultdict(deque)
        self._buckets: dict[tuple[str, str], tuple[float, float]] = {}
        self._faults: dict[str, deque[_Fault]] = defaultdict(deque)
        self._holds: dict[str, asyncio.Event] = {}
        self._triggers_issued: dict[str, float] = {}
        self._triggers_used: set[str] = set()
        self._response_urls: dict[str, _ResponseUrl] = {}
        self._uploads: dict[str, str] = {}
        self._handlers: dict[str, Handler] = {
            "auth.test": self._auth_test,
            "conversations.open": self._conversations_open,
            "conversations.info": self._conversations_info,
            "chat.postMessage": self._chat_post_message,
            "chat.update": self._chat_update,
            "chat.postEphemeral": self._chat_post_ephemeral,
            "chat.delete": self._chat_delete,
            "chat.startStream": self._chat_start_stream,
            "chat.appendStream": self._chat_append_stream,
            "chat.stopStream": self._chat_stop_stream,
            "users.info": self._users_info,
            "views.open": self._views_open,
            "files.getUploadURLExternal": self._files_get_upload_url,
            "files.completeUploadExternal": self._files_complete_upload,
            "chat.getPermalink": self._chat_get_permalink,
        }
        self.add_workspace(
            bot_token,
            team_id=team_id,
            bot_user_id=bot_user_id,
            bot_id=bot_id,
            bot_name=bot_name,
            app_id=app_id,
            team_name=team_name,
            team_domain=team_domain,
        )

    # ------------------------------------------------------------------ lifecycle

    def build_app(self) -> web.Application:
        app = web.Application()
        app.router.add_route("*", "/api/{method}", self._handle_api)
        app.router.add_post("/upload/v1/{key}", self._handle_upload)
        app.router.add_post("/response/{rid}", self._handle_response_url)
        app.router.add_get("/socket-mode", self._handle_socket)
        return app

    async def close_connections(self) -> None:
        for method in list(self._holds):
            self.release(method)
        for socket in list(self.sockets):
            await socket.close()

    @property
    def base_url(self) -> str:
        """``http://127.0.0.1:PORT`` (no trailing slash)."""
        return f"http://127.0.0.1:{self.port}"

    @property
    def api_url(self) -> str:
        """``http://127.0.0.1:PORT/api/``: the SDK's ``base_url``."""
        return f"{self.base_url}/api/"

    # ------------------------------------------------------------------ setup helpers

    def add_workspace(
        self,
        token: str,
        *,
        team_id: str,
        bot_user_id: str = "UBOT",
        bot_id: str = "B0001",
        bot_name: str = "interview-buddy",
        app_id: str = "A0001",
        team_name: str | None = None,
        team_domain: str | None = None,
    ) -> None:
        """Accept ``token`` as the bot token of workspace ``team_id`` (own rate limits)."""
        self._workspaces[token] = _Workspace(
            token=token,
            team_id=team_id,
            team_name=team_name or f"Team {team_id}",
            team_domain=team_domain or team_id.lower(),
            bot_user_id=bot_user_id,
            bot_id=bot_id,
            bot_name=bot_name,
            app_id=app_id,
        )
        if bot_user_id not in self.users:
            self.add_user(bot_user_id, name=bot_name, team_id=team_id, is_bot=True)

    def add_user(
        self,
        user_id: str,
        *,
        name: str | None = None,
        real_name: str = "",
        team_id: str | None = None,
        is_admin: bool = False,
        is_owner: bool = False,
        is_primary_owner: bool = False,
        is_bot: bool = False,
        deleted: bool = False,
        tz: str = "UTC",
        email: str | None = None,
    ) -> FakeUser:
        """Register a user for ``users.info`` (``tz`` is an IANA zone name)."""
        ZoneInfo(tz)  # fail early on a bad zone name
        user = FakeUser(
            id=user_id,
            name=name or user_id.lower(),
            real_name=real_name,
            team_id=team_id or self.team_id,
            is_admin=is_admin,
            is_owner=is_owner,
            is_primary_owner=is_primary_owner,
            is_bot=is_bot,
            deleted=deleted,
            tz=tz,
            email=email,
        )
        self.users[user_id] = user
        return user

    def add_channel(
        self,
        channel_id: str | None = None,
        *,
        name: str = "general",
        private: bool = False,
        members: Iterable[str] = (),
        is_member: bool = True,
        is_archived: bool = False,
    ) -> FakeChannel:
        """Create a public (or private) channel; the bot is a member unless ``is_member=False``."""
        channel = FakeChannel(
            id=channel_id or self._new_id("C"),
            kind="private" if private else "channel",
            name=name,
            members=list(members),
            is_member=is_member,
            is_archived=is_archived,
        )
        self.channels[channel.id] = channel
        return channel

    def add_message(
        self,
        channel: str,
        text: str,
        *,
        user: str,
        ts: str | None = None,
        thread_ts: str | None = None,
        blocks: list[Any] | None = None,
    ) -> FakeMessage:
        """Put a message written by ``user`` (a human) into a known channel."""
        if channel not in self.channels:
            raise KeyError(f"unknown channel {channel!r}; open or add it first")
        if ts is None:
            ts = self._next_ts()
        else:
            self._ts_micros = max(self._ts_micros, _ts_micros(ts))
        team = self.team_id
        message = FakeMessage(
            channel=channel,
            ts=ts,
            text=text,
            user=user,
            team=team,
            blocks=blocks,
            thread_ts=thread_ts,
        )
        self._store(message)
        return message

    def new_response_url(self) -> str:
        """A fresh ``response_url`` served by the fake (bodies land in ``responses[id]``)."""
        rid = secrets.token_hex(8)
        self.responses[rid] = []
        self._response_urls[rid] = _ResponseUrl(created_at=self._clock())
        return f"{self.base_url}/response/{rid}"

    def new_trigger_id(self) -> str:
        """A trigger id in Slack's format that ``views.open`` accepts for ``trigger_ttl`` s."""
        trigger = f"{next(self._ids)}.{secrets.randbelow(10**10):010d}.{secrets.token_hex(16)}"
        self._triggers_issued[trigger] = self._clock()
        return trigger

    # ------------------------------------------------------------------ controls

    def set_limit(self, method: str, per_window: int | None) -> None:
        """Allow ``per_window`` calls of ``method`` per workspace per window (None: no limit)."""
        if per_window is None:
            self.limits.pop(method, None)
        else:
            self.limits[method] = per_window

    def reset_rate_limits(self) -> None:
        """Forget all counted calls and refill every ``chat.postMessage`` bucket."""
        self._windows.clear()
        self._buckets.clear()

    def fail_next(
        self, method: str, error: str = "internal_error", *, retry_after: int = 1, status: int = 200
    ) -> None:
        """Answer the next (authorized) call of ``method`` with ``ok: false, error``.

        ``error="ratelimited"`` answers HTTP 429 with ``Retry-After: retry_after``; ``status``
        (e.g. 500 or 503) answers with that HTTP status, as Slack does when it has trouble.
        Faults queue; a faulted call is recorded in ``calls`` but changes nothing.
        """
        self._faults[method].append(_Fault(error=error, retry_after=retry_after, status=status))

    def hold(self, method: str) -> None:
        """Keep calls of ``method`` waiting (recorded in ``calls``, not answered) until
        :meth:`release`: a Slack that is slow to answer, for as long as a test needs."""
        self._holds.setdefault(method, asyncio.Event())

    def release(self, method: str) -> None:
        """Answer the held calls of ``method`` and stop holding new ones."""
        held = self._holds.pop(method, None)
        if held is not None:
            held.set()

    def expire_stream(self, channel: str, ts: str) -> None:
        """Make a streaming message leave the streaming state (as after ~5 minutes)."""
        self.messages[(channel, ts)].streaming = False

    async def drop_sockets(self) -> None:
        """Close every Socket Mode connection from the server side (a network cut, a restart)."""
        for socket in list(self.sockets):
            await socket.close(code=WSCloseCode.GOING_AWAY, message=b"dropped by the fake")

    def refuse_sockets(self, error: str | None = "internal_error") -> None:
        """Make new Socket Mode connections fail until :meth:`accept_sockets`.

        With ``error``, ``apps.connections.open`` (with the right app token) answers
        ``{"ok": false, "error": error}``; with ``None`` it still issues URLs but the WebSocket
        handshake answers HTTP 503. Each refusal counts in ``socket_refusals``. Open
        connections stay open (see :meth:`drop_sockets`).
        """
        self._socket_open_error = error
        self._socket_handshake_refused = error is None

    def accept_sockets(self) -> None:
        """Undo :meth:`refuse_sockets`."""
        self._socket_open_error = None
        self._socket_handshake_refused = False

    # ------------------------------------------------------------------ assertion helpers

    def calls_to(self, method: str) -> list[Call]:
        """The recorded calls of one method, in order."""
        return [call for call in self.calls if call.method == method]

    def channel_messages(self, channel: str, *, include_replies: bool = False) -> list[FakeMessage]:
        """A channel's messages by ts: top level only (like the channel view) unless asked."""
        found = [
            m
            for (ch, _), m in self.messages.items()
            if ch == channel and (include_replies or not m.is_reply)
        ]
        return sorted(found, key=lambda m: _ts_micros(m.ts))

    def thread(self, channel: str, thread_ts: str) -> list[FakeMessage]:
        """A thread: the parent (if present) followed by its replies, by ts."""
        found = [
            m
            for (ch, _), m in self.messages.items()
            if ch == channel and (m.ts == thread_ts or m.thread_ts == thread_ts)
        ]
        return sorted(found, key=lambda m: _ts_micros(m.ts))

    def message(self, channel: str, ts: str) -> FakeMessage:
        """One stored message (KeyError if absent)."""
        return self.messages[(channel, ts)]

    def conversation_with(self, *users: str, team_id: str | None = None) -> str | None:
        """The id of the DM / group DM already opened with exactly these users, if any."""
        bots = {ws.bot_user_id for ws in self._workspaces.values()}
        return self._conversations.get((team_id or self.team_id, frozenset(users) - bots))

    # ------------------------------------------------------------------ HTTP handlers

    async def _handle_api(self, request: web.Request) -> web.Response:
        method = request.match_info["method"]
        try:
            params = await self._read_params(request)
        except _ApiError as exc:
            self.calls.append(Call(method, {}, self._clock()))
            return self._error(exc.error)
        header = request.headers.get("Authorization", "")
        body_token = params.pop("token", None)
        token = header[7:].strip() if header.startswith("Bearer ") else body_token
        self.calls.append(Call(method, params, self._clock()))
        self.connections.append(client_address(request))
        held = self._holds.get(method)
        if held is not None:
            await held.wait()
        if self.latency:
            await asyncio.sleep(self.latency)

        if method == "apps.connections.open":
            return self._apps_connections_open(token)
        handler = self._handlers.get(method)
        if handler is None or (method in STREAM_METHODS and not self.streaming_enabled):
            return self._error("unknown_method", req_method=method)
        if not token:
            return self._error("not_authed")
        workspace = self._workspaces.get(str(token))
        if workspace is None:
            return self._error("invalid_auth")

        retry_after = self._admit(workspace, method, params)
        if retry_after is not None:
            return self._ratelimited(method, params, retry_after)
        faults = self._faults.get(method)
        if faults:
            fault = faults.popleft()
            if fault.error == "ratelimited":
                return self._ratelimited(method, params, fault.retry_after)
            if fault.status != 200:
                return web.json_response({"ok": False, "error": fault.error}, status=fault.status)
            return self._error(fault.error, scoped=True)
        try:
            body = handler(workspace, params)
        except _ApiError as exc:
            return self._error(exc.error, scoped=True, **exc.extra)
        return web.json_response({"ok": True, **body}, headers={"X-OAuth-Scopes": self.scopes})

    # ------------------------------------------------------------------ Socket Mode

    def _apps_connections_open(self, token: str | None) -> web.Response:
        """Socket Mode: only the app-level token may open a connection."""
        if not token:
            return self._error("not_authed")
        if token != self.app_token:
            return self._error(
                "not_allowed_token_type" if token.startswith("xoxb-") else "invalid_auth"
            )
        if self._socket_open_error is not None:
            self.socket_refusals += 1
            return self._error(self._socket_open_error)
        ticket = secrets.token_hex(8)
        self.tickets_issued.append(ticket)
        url = f"ws://127.0.0.1:{self.port}/socket-mode?ticket={ticket}"
        return web.json_response({"ok": True, "url": url})

    async def _handle_socket(self, request: web.Request) -> web.StreamResponse:
        if self._socket_handshake_refused:
            self.socket_refusals += 1
            return web.Response(status=503, text="service_unavailable")
        socket = web.WebSocketResponse(autoping=True)
        await socket.prepare(request)
        self.tickets_used.append(request.query.get("ticket", ""))
        self.sockets.append(socket)
        await socket.send_json(
            {
                "type": "hello",
                "num_connections": len(self.sockets),
                "debug_info": {"host": "fake-slack", "approximate_connection_time": 18060},
                "connection_info": {"app_id": self.app_id},
            }
        )
        async with self._socket_changed:
            self.socket_connections += 1
            self._socket_changed.notify_all()
        try:
            async for frame in socket:
                if frame.type != web.WSMsgType.TEXT:
                    continue
                ack = json.loads(frame.data)
                envelope_id = str(ack.get("envelope_id", ""))
                self.socket_acks[envelope_id] = ack
                waiter = self._socket_waiters.pop(envelope_id, None)
                if waiter is not None and not waiter.done():
                    waiter.set_result(ack)
        finally:
            self.sockets.remove(socket)
        return socket

    async def wait_socket(self, timeout: float = 5.0, *, connections: int = 1) -> None:  # noqa: ASYNC109
        """Wait until ``connections`` Socket Mode connections have been accepted in all
        (``2`` after one reconnect)."""

        async def reached() -> None:
            async with self._socket_changed:
                await self._socket_changed.wait_for(lambda: self.socket_connections >= connections)

        await asyncio.wait_for(reached(), timeout)

    async def socket_send(
        self,
        envelope_type: str,
        payload: Mapping[str, Any],
        *,
        retry_attempt: int = 0,
        retry_reason: str = "",
        ack_timeout: float = 3.0,
    ) -> dict[str, Any]:
        """Deliver an envelope (``slash_commands``, ``interactive``, ``events_api``) over the
        newest open connection and return the app's acknowledgement; like Slack, an ack later
        than 3 s is a failure."""
        envelope_id = secrets.token_hex(8)
        waiter: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
        self._socket_waiters[envelope_id] = waiter
        live = [socket for socket in self.sockets if not socket.closed]
        if not live:
            raise RuntimeError("no Socket Mode connection is open")
        await live[-1].send_json(
            {
                "envelope_id": envelope_id,
                "type": envelope_type,
                "payload": dict(payload),
                "accepts_response_payload": envelope_type != "events_api",
                "retry_attempt": retry_attempt,
                "retry_reason": retry_reason,
            }
        )
        return await asyncio.wait_for(waiter, ack_timeout)

    async def _read_params(self, request: web.Request) -> dict[str, Any]:
        params: dict[str, Any] = dict(request.query)
        if request.method != "POST" or not request.body_exists:
            return params
        ctype = request.content_type
        if ctype == "application/json":
            try:
                data = json.loads(await request.text())
            except json.JSONDecodeError as exc:
                raise _ApiError("invalid_json") from exc
            if not isinstance(data, dict):
                raise _ApiError("json_not_object")
            params.update(data)
        elif ctype in ("application/x-www-form-urlencoded", "multipart/form-data"):
            form = await request.post()
            params.update({k: v for k, v in form.items() if isinstance(v, str)})
        elif await request.read():
            raise _ApiError("invalid_post_type")
        return params

    async def _handle_upload(self, request: web.Request) -> web.Response:
        file_id = self._uploads.get(request.match_info["key"])
        if file_id is None:
            return web.Response(status=404, text="not_found", content_type="text/plain")
        fake_file = self.files[file_id]
        if request.content_type == "multipart/form-data":
            form = await request.post()
            part = next((v for v in form.values() if isinstance(v, web.FileField)), None)
            data = part.file.read() if part is not None else b""
        else:
            data = await request.read()
        fake_file.data = data
        return web.Response(text=f"OK - {len(data)}", content_type="text/plain")

    async def _handle_response_url(self, request: web.Request) -> web.Response:
        rid = request.match_info["rid"]
        self.response_connections.append(client_address(request))
        if self.latency:
            await asyncio.sleep(self.latency)
        state = self._response_urls.get(rid)
        if state is None:
            return web.Response(status=404, text="no_service", content_type="text/plain")
        if self._clock() - state.created_at > self.response_url_ttl:
            return web.Response(status=404, text="expired_url", content_type="text/plain")
        if state.uses >= self.response_url_max_uses:
            return web.Response(status=404, text="used_url", content_type="text/plain")
        try:
            body = json.loads(await request.text())
        except json.JSONDecodeError:
            return web.Response(status=400, text="invalid_payload", content_type="text/plain")
        if not isinstance(body, dict):
            return web.Response(status=400, text="invalid_payload", content_type="text/plain")
        if not (body.get("text") or body.get("blocks") or body.get("delete_original")):
            return web.Response(status=400, text="no_text", content_type="text/plain")
        state.uses += 1
        self.responses[rid].append(body)
        return web.Response(text="ok", content_type="text/plain")

    # ------------------------------------------------------------------ responses

    def _error(self, error: str, *, scoped: bool = False, **extra: Any) -> web.Response:
        headers = {"X-OAuth-Scopes": self.scopes} if scoped else None
        return web.json_response({"ok": False, "error": error, **extra}, headers=headers)

    def _ratelimited(
        self, method: str, params: Mapping[str, Any], retry_after: int
    ) -> web.Response:
        self.rate_limited.append((method, _str_param(params, "channel")))
        return web.json_response(
            {"ok": False, "error": "ratelimited"},
            status=429,
            headers={"Retry-After": str(retry_after)},
        )

    # ------------------------------------------------------------------ rate limits

    def _admit(self, ws: _Workspace, method: str, params: Mapping[str, Any]) -> int | None:
        """Count the call, or return the Retry-After seconds if it is over a limit."""
        if not self.rate_limits_enabled:
            return None
        now = self._clock()
        window: deque[float] | None = None
        limit = self.limits.get(method)
        if limit is not None:
            window = self._windows[(ws.team_id, method)]
            while window and window[0] <= now - self.window_seconds:
                window.popleft()
            if len(window) >= limit:
                if not window:
                    return max(1, math.ceil(self.window_seconds))
                return max(1, math.ceil(window[0] + self.window_seconds - now))
        if method == "chat.postMessage":
            key = (ws.team_id, self._bucket_channel(ws, params))
            tokens, last = self._buckets.get(key, (float(self.post_message_burst), now))
            tokens = min(
                float(self.post_message_burst), tokens + (now - last) * self.post_message_rate
            )
            if tokens < 1.0:
                self._buckets[key] = (tokens, now)
                return max(1, math.ceil((1.0 - tokens) / self.post_message_rate))
            self._buckets[key] = (tokens - 1.0, now)
        if window is not None:
            window.append(now)
        return None

    def _bucket_channel(self, ws: _Workspace, params: Mapping[str, Any]) -> str:
        raw = _str_param(params, "channel") or ""
        if _USER_ID_RE.match(raw):
            return self._conversations.get((ws.team_id, frozenset({raw})), raw)
        found = self._find_channel(raw)
        return found.id if found is not None else raw

    # ------------------------------------------------------------------ state helpers

    def _new_id(self, prefix: str) -> str:
        return f"{prefix}FAKE{next(self._ids):05d}"

    def _next_ts(self) -> str:
        self._ts_micros += _TS_STEP_MICROS
        return _ts_string(self._ts_micros)

    def _store(self, message: FakeMessage) -> None:
        self.messages[(message.channel, message.ts)] = message
        if message.is_reply and message.thread_ts is not None:
            parent = self.messages.get((message.channel, message.thread_ts))
            if parent is not None:
                parent.thread_ts = parent.ts
                parent.reply_count += 1
                parent.latest_reply = message.ts
                if message.user not in parent.reply_users:
                    parent.reply_users.append(message.user)

    def _find_channel(self, raw: str) -> FakeChannel | None:
        if raw in self.channels:
            return self.channels[raw]
        name = raw.removeprefix("#")
        return next((c for c in self.channels.values() if c.name == name and c.kind != "im"), None)

    def _channel(self, ws: _Workspace, params: Mapping[str, Any], *, dm_users: bool) -> FakeChannel:
        raw = _str_param(params, "channel")
        if raw is None:
            raise _ApiError("channel_not_found")
        found = self._find_channel(raw)
        if found is not None:
            return found
        if dm_users and _USER_ID_RE.match(raw) and raw != ws.bot_user_id:
            return self._open(ws, [raw])[0]
        raise _ApiError("channel_not_found")

    def _open(self, ws: _Workspace, users: list[str]) -> tuple[FakeChannel, bool]:
        others = frozenset(users) - {ws.bot_user_id}
        key = (ws.team_id, others)
        existing = self._conversations.get(key)
        if existing is not None:
            return self.channels[existing], True
        members = [ws.bot_user_id, *sorted(others)]
        if len(others) == 1:
            channel = FakeChannel(id=self._new_id("D"), kind="im", members=members)
        else:
            names = [self.users[u].name if u in self.users else u.lower() for u in members]
            channel = FakeChannel(
                id=self._new_id("G"),
                kind="mpim",
                name="mpdm-" + "--".join(names) + "-1",
                members=members,
                creator=ws.bot_user_id,
            )
        self.channels[channel.id] = channel
        self._conversations[key] = channel.id
        return channel, False

    def _bot_message(self, ws: _Workspace, channel: str, text: str) -> FakeMessage:
        return FakeMessage(
            channel=channel,
            ts=self._next_ts(),
            text=text,
            user=ws.bot_user_id,
            team=ws.team_id,
            bot_id=ws.bot_id,
            app_id=ws.app_id,
        )

    def _own_message(self, ws: _Workspace, params: Mapping[str, Any], error: str) -> FakeMessage:
        channel = self._channel(ws, params, dm_users=False)
        ts = _str_param(params, "ts")
        message = self.messages.get((channel.id, ts or ""))
        if message is None:
            raise _ApiError("message_not_found")
        if message.bot_id != ws.bot_id:
            raise _ApiError(error)
        return message

    def _streaming_message(self, ws: _Workspace, params: Mapping[str, Any]) -> FakeMessage:
        message = self._own_message(ws, params, "message_not_in_streaming_state")
        started = message.stream_started_at
        if started is not None and self._clock() - started > self.stream_timeout:
            message.streaming = False
        if not message.streaming:
            raise _ApiError("message_not_in_streaming_state")
        return message

    @staticmethod
    def _content(
        params: Mapping[str, Any],
    ) -> tuple[str | None, list[Any] | None, list[Any] | None]:
        text = _str_param(params, "text") or _str_param(params, "markdown_text")
        blocks = _json_param(params, "blocks", "invalid_blocks")
        attachments = _json_param(params, "attachments", "invalid_attachments")
        if blocks is not None and not isinstance(blocks, list):
            raise _ApiError("invalid_blocks")
        if attachments is not None and not isinstance(attachments, list):
            raise _ApiError("invalid_attachments")
        if text is not None and len(text) > MAX_TEXT:
            raise _ApiError("msg_too_long")
        return text, blocks, attachments

    @staticmethod
    def _stream_input(params: Mapping[str, Any]) -> tuple[str, list[dict[str, Any]]]:
        """The text a stream call adds (``markdown_text`` + markdown chunks) and its chunks."""
        chunks: list[dict[str, Any]] = []
        markdown = _str_param(params, "markdown_text")
        if markdown is not None:
            chunks.append({"type": "markdown_text", "text": markdown})
        given = _json_param(params, "chunks", "invalid_chunks") or []
        if not isinstance(given, list) or not all(isinstance(c, dict) for c in given):
            raise _ApiError("invalid_chunks")
        chunks.extend(given)
        text = "".join(str(c.get("text", "")) for c in chunks if c.get("type") == "markdown_text")
        if len(text) > MAX_MARKDOWN:
            raise _ApiError("msg_too_long")
        return text, chunks

    # ------------------------------------------------------------------ methods

    def _auth_test(self, ws: _Workspace, params: dict[str, Any]) -> dict[str, Any]:
        return {
            "url": f"https://{ws.team_domain}.slack.com/",
            "team": ws.team_name,
            "user": ws.bot_name,
            "team_id": ws.team_id,
            "user_id": ws.bot_user_id,
            "bot_id": ws.bot_id,
            "is_enterprise_install": False,
        }

    def _conversations_open(self, ws: _Workspace, params: dict[str, Any]) -> dict[str, Any]:
        return_im = _bool_param(params, "return_im")
        raw_channel = _str_param(params, "channel")
        if raw_channel is not None:
            channel = self.channels.get(raw_channel)
            if channel is None:
                raise _ApiError("channel_not_found")
            if channel.kind not in ("im", "mpim"):
                raise _ApiError("method_not_supported_for_channel_type")
            return {"no_op": True, "already_open": True, "channel": {"id": channel.id}}
        raw_users = _str_param(params, "users")
        if raw_users is None:
            raise _ApiError("users_list_not_supplied")
        users = [u.strip() for u in raw_users.split(",") if u.strip()]
        for user in users:
            if not _USER_ID_RE.match(user):
                raise _ApiError("user_not_found")
            known = self.users.get(user)
            if known is not None and known.deleted:
                raise _ApiError("user_disabled")
        others = set(users) - {ws.bot_user_id}
        if not others:
            raise _ApiError("not_enough_users")
        if len(others) > MAX_MPIM_USERS:
            raise _ApiError("too_many_users")
        channel, existed = self._open(ws, users)
        if channel.kind == "im" and not return_im:
            view: dict[str, Any] = {"id": channel.id}
        else:
            view = channel.to_api(ws.bot_user_id)
        body: dict[str, Any] = {"channel": view}
        if existed:
            body = {"no_op": True, "already_open": True, **body}
        return body

    def _conversations_info(self, ws: _Workspace, params: dict[str, Any]) -> dict[str, Any]:
        channel = self._channel(ws, params, dm_users=False)
        return {"channel": channel.to_api(ws.bot_user_id)}

    def _chat_post_message(self, ws: _Workspace, params: dict[str, Any]) -> dict[str, Any]:
        channel = self._channel(ws, params, dm_users=True)
        text, blocks, attachments = self._content(params)
        if text is None and blocks is None and attachments is None:
            raise _ApiError("no_text")
        if channel.is_archived:
            raise _ApiError("is_archived")
        if not channel.is_member:
            raise _ApiError("not_in_channel")
        message = self._bot_message(ws, channel.id, text or "")
        message.blocks = blocks
        message.attachments = attachments
        message.thread_ts = _str_param(params, "thread_ts")
        metadata = _json_param(params, "metadata", "invalid_metadata_format")
        message.metadata = metadata if isinstance(metadata, dict) else None
        self._store(message)
        return {"channel": channel.id, "ts": message.ts, "message": message.to_api()}

    def _chat_update(self, ws: _Workspace, params: dict[str, Any]) -> dict[str, Any]:
        message = self._own_message(ws, params, "cant_update_message")
        text, blocks, attachments = self._content(params)
        if text is None and blocks is None and attachments is None:
            raise _ApiError("no_text")
        message.history.append(
            {
                "text": message.text,
                "blocks": message.blocks,
                "attachments": message.attachments,
                "replaced_at": self._clock(),
            }
        )
        message.text = text or ""
        if blocks is not None:
            message.blocks = blocks or None
        if attachments is not None:
            message.attachments = attachments or None
        metadata = _json_param(params, "metadata", "invalid_metadata_format")
        if isinstance(metadata, dict):
            message.metadata = metadata
        message.edited_ts = self._next_ts()
        return {
            "channel": message.channel,
            "ts": message.ts,
            "text": message.text,
            "message": message.to_api(),
        }

    def _chat_post_ephemeral(self, ws: _Workspace, params: dict[str, Any]) -> dict[str, Any]:
        channel = self._channel(ws, params, dm_users=False)
        user = _str_param(params, "user")
        if user is None:
            raise _ApiError("user_not_in_channel")
        text, blocks, attachments = self._content(params)
        if text is None and blocks is None and attachments is None:
            raise _ApiError("no_text")
        if channel.members and user not in channel.members:
            raise _ApiError("user_not_in_channel")
        ts = self._next_ts()
        self.ephemerals.append(
            Ephemeral(
                channel=channel.id,
                user=user,
                message_ts=ts,
                text=text or "",
                blocks=blocks,
                thread_ts=_str_param(params, "thread_ts"),
            )
        )
        return {"message_ts": ts}

    def _chat_delete(self, ws: _Workspace, params: dict[str, Any]) -> dict[str, Any]:
        message = self._own_message(ws, params, "cant_delete_message")
        del self.messages[(message.channel, message.ts)]
        self.deleted.append(message)
        if message.is_reply and message.thread_ts is not None:
            parent = self.messages.get((message.channel, message.thread_ts))
            if parent is not None and parent.reply_count:
                parent.reply_count -= 1
        return {"channel": message.channel, "ts": message.ts}

    def _chat_start_stream(self, ws: _Workspace, params: dict[str, Any]) -> dict[str, Any]:
        channel = self._channel(ws, params, dm_users=False)
        thread_ts = _str_param(params, "thread_ts")
        if thread_ts is None:
            raise _invalid_arguments("missing required field: thread_ts")
        if self.stream_requires_recipient and channel.kind != "im":
            if _str_param(params, "recipient_team_id") is None:
                raise _ApiError("missing_recipient_team_id")
            if _str_param(params, "recipient_user_id") is None:
                raise _ApiError("missing_recipient_user_id")
        text, chunks = self._stream_input(params)
        message = self._bot_message(ws, channel.id, text)
        message.thread_ts = thread_ts
        message.streaming = True
        message.stream_started_at = self._clock()
        message.chunks.extend(chunks)
        self._store(message)
        return {"channel": channel.id, "ts": message.ts}

    def _chat_append_stream(self, ws: _Workspace, params: dict[str, Any]) -> dict[str, Any]:
        message = self._streaming_message(ws, params)
        text, chunks = self._stream_input(params)
        if not chunks:
            raise _invalid_arguments("missing required field: markdown_text")
        message.text += text
        message.chunks.extend(chunks)
        return {"channel": message.channel, "ts": message.ts}

    def _chat_stop_stream(self, ws: _Workspace, params: dict[str, Any]) -> dict[str, Any]:
        message = self._streaming_message(ws, params)
        text, chunks = self._stream_input(params)
        message.text += text
        message.chunks.extend(chunks)
        blocks = _json_param(params, "blocks", "invalid_blocks")
        if blocks is not None:
            if not isinstance(blocks, list):
                raise _ApiError("invalid_blocks")
            message.blocks = blocks
        metadata = _json_param(params, "metadata", "invalid_metadata_format")
        if isinstance(metadata, dict):
            message.metadata = metadata
        message.streaming = False
        return {"channel": message.channel, "ts": message.ts, "message": message.to_api()}

    def _users_info(self, ws: _Workspace, params: dict[str, Any]) -> dict[str, Any]:
        user = self.users.get(_str_param(params, "user") or "")
        if user is None:
            raise _ApiError("user_not_found")
        return {"user": user.to_api()}

    def _views_open(self, ws: _Workspace, params: dict[str, Any]) -> dict[str, Any]:
        trigger = _str_param(params, "trigger_id") or _str_param(params, "interactivity_pointer")
        if trigger is None:
            raise _invalid_arguments("missing required field: trigger_id")
        view = _json_param(params, "view", "invalid_arguments")
        if not isinstance(view, dict):
            raise _invalid_arguments("missing required field: view")
        if view.get("type") != "modal" or "title" not in view or "blocks" not in view:
            raise _invalid_arguments("view must be a modal with title and blocks")
        if trigger in self._triggers_used:
            raise _ApiError("exchanged_trigger_id")
        issued = self._triggers_issued.get(trigger)
        if issued is not None and self._clock() - issued > self.trigger_ttl:
            raise _ApiError("expired_trigger_id")
        self._triggers_used.add(trigger)
        view_id = self._new_id("V")
        response = {
            "id": view_id,
            "team_id": ws.team_id,
            "type": "modal",
            "blocks": view["blocks"],
            "private_metadata": view.get("private_metadata", ""),
            "callback_id": view.get("callback_id", ""),
            "state": {"values": {}},
            "hash": f"{int(time.time())}.{secrets.token_hex(4)}",
            "title": view["title"],
            "clear_on_close": bool(view.get("clear_on_close", False)),
            "notify_on_close": bool(view.get("notify_on_close", False)),
            "close": view.get("close"),
            "submit": view.get("submit"),
            "previous_view_id": None,
            "root_view_id": view_id,
            "app_id": ws.app_id,
            "external_id": view.get("external_id", ""),
            "app_installed_team_id": ws.team_id,
            "bot_id": ws.bot_id,
        }
        self.views.append(OpenedView(view_id, trigger, view, response))
        return {"view": response}

    def _files_get_upload_url(self, ws: _Workspace, params: dict[str, Any]) -> dict[str, Any]:
        filename = _str_param(params, "filename")
        length = _str_param(params, "length")
        if filename is None:
            raise _invalid_arguments("missing required field: filename")
        if length is None or not length.isdigit():
            raise _invalid_arguments("missing required field: length")
        key = secrets.token_hex(12)
        fake_file = FakeFile(
            id=self._new_id("F"),
            filename=filename,
            length=int(length),
            upload_key=key,
            user=ws.bot_user_id,
            alt_txt=_str_param(params, "alt_txt"),
            snippet_type=_str_param(params, "snippet_type"),
        )
        self.files[fake_file.id] = fake_file
        self._uploads[key] = fake_file.id
        return {"upload_url": f"{self.base_url}/upload/v1/{key}", "file_id": fake_file.id}

    def _chat_get_permalink(self, ws: _Workspace, params: dict[str, Any]) -> dict[str, Any]:
        """``https://<domain>.slack.com/archives/<channel>/p<ts without the dot>``, with
        ``thread_ts`` and ``cid`` for a thread reply, as Slack answers."""
        channel = self._channel(ws, params, dm_users=False)
        ts = _str_param(params, "message_ts")
        message = self.messages.get((channel.id, ts or ""))
        if message is None:
            raise _ApiError("message_not_found")
        digits = message.ts.replace(".", "")
        link = f"https://{ws.team_domain}.slack.com/archives/{channel.id}/p{digits}"
        if message.is_reply:
            link += f"?thread_ts={message.thread_ts}&cid={channel.id}"
        return {"channel": channel.id, "permalink": link}

    def _files_complete_upload(self, ws: _Workspace, params: dict[str, Any]) -> dict[str, Any]:
        entries = _json_param(params, "files", "invalid_arguments")
        if not isinstance(entries, list) or not entries:
            raise _invalid_arguments("missing required field: files")
        targets: list[FakeFile] = []
        for entry in entries:
            fake_file = self.files.get(str(entry.get("id"))) if isinstance(entry, dict) else None
            if fake_file is None or fake_file.data is None:
                raise _ApiError("file_not_found")
            fake_file.title = entry.get("title") or fake_file.title
            targets.append(fake_file)
        channel_ids: list[str] = []
        raw_channels = _str_param(params, "channels")
        if _str_param(params, "channel_id") is not None:
            channel_ids.append(
                self._channel(ws, {"channel": params["channel_id"]}, dm_users=False).id
            )
        elif raw_channels is not None:
            for raw in raw_channels.split(","):
                channel_ids.append(self._channel(ws, {"channel": raw.strip()}, dm_users=False).id)
        thread_ts = _str_param(params, "thread_ts")
        comment = _str_param(params, "initial_comment")
        for fake_file in targets:
            fake_file.completed = True
            fake_file.channels = channel_ids
            fake_file.thread_ts = thread_ts
            fake_file.initial_comment = comment
        for channel_id in channel_ids:
            message = self._bot_message(ws, channel_id, comment or "")
            message.files = [f.id for f in targets]
            message.thread_ts = thread_ts
            self._store(message)
        return {"files": [f.to_api() for f in targets]}
