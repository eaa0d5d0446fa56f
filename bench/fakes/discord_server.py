"""A fake Discord (REST API v10 + gateway websocket) for tests: real HTTP, real wire format.

discord.py connects to it for real::

    async with FakeDiscord() as fake:
        ids = fake.seed()                          # guild, #interviews, admin, candidate
        with discord_py_pointed_at(fake):          # Route.BASE + fallback gateway URL
            client = discord.AutoShardedClient(intents=..., guild_ready_timeout=0.05)
            task = asyncio.create_task(client.start("test-token"))
            await fake.wait_ready()                # then sync the tree; commands must be synced
            iid = await fake.send_slash_command(ids.guild_id, ids.channel_id, ids.admin_id,
                                                name="interview", subcommand="start")
            response = await fake.wait_interaction_response(iid)   # {"type": 4, "data": ...}
            await client.close()
            await task

``GET /gateway/bot`` hands out :attr:`FakeDiscord.gateway_url`; the gateway sends TEXT frames
(discord.py only inflates binary frames, so ``compress=zlib-stream`` is accepted and ignored).
discord.py falls back to the hard-coded ``wss://gateway.discord.gg/`` after INVALID_SESSION and
when ``shard_count`` is passed: :func:`discord_py_pointed_at` patches that URL too. discord.py
also sleeps 5 s before every IDENTIFY but the first (``Client.before_identify_hook``): resumes are
instant, re-identifies and extra shards are not.

Every REST call waits ``latency`` seconds (default 0; the benchmarks use 0.08) before it is
answered (after its rate-limit bucket was taken).

Rules the fake enforces like Discord does:

* ``Authorization: Bot <token>`` on every route except ``GET /gateway``, interaction callbacks
  and ``/webhooks/{app}/{token}`` (401 ``{"message": "401: Unauthorized", "code": 0}``).
* Per-route rate-limit buckets (fixed windows, per major parameter: channel, guild or webhook).
  Every limited response carries ``X-RateLimit-Limit/Remaining/Reset/Reset-After/Bucket``; when a
  bucket is empty: 429 with ``X-RateLimit-Scope: user``, ``Retry-After`` and ``{"message": "You
  are being rate limited.", "retry_after": <float>, "global": false}``. Every response carries
  ``Via: 1.1 google``: discord.py treats a 429 without ``Via`` as a Cloudflare ban and does not
  retry. Defaults (:data:`DEFAULT_RATE_LIMITS`, change with :meth:`FakeDiscord.set_rate_limit`):
  message create / edit / delete 5 per 5 s per channel, thread create and thread-member add
  10 per 10 s, channel edit 10 per 10 s, webhook (follow-up) execute / edit 5 per 2 s,
  everything else 50 per 1 s; interaction callbacks are not limited. Optional global limit.
* Interactions: the first callback must arrive within ``interaction_ack_timeout`` (3 s) of the
  dispatch, else 404 10062 "Unknown interaction"; a second callback gets 400 40060; follow-ups
  before the first callback get 404 10015; tokens expire after 15 minutes (401 50027).
* Slash-command options: :meth:`FakeDiscord.send_slash_command` with named options refuses
  (``ValueError``) what Discord's client would not let a user submit: a value that is not
  one of the option's ``choices``, a number outside ``min_value``/``max_value``, a string
  outside ``min_length``/``max_length``. A raw option list is sent as it is.
* Messages: 2000 characters (400 50035), no empty messages (50006), at most 10 embeds / 6000
  embed characters, 5 action rows of 5 components. Edits to messages older than
  ``old_message_age`` (1 h; lower it to refuse earlier) are refused with 400 30046 once
  ``old_message_edit_limit`` such edits were made (default 0: every edit of an hour-old message
  fails). Age messages with :meth:`FakeDiscord.age_message` or move the whole fake clock with
  :meth:`advance_clock`; :meth:`FakeDiscord.refuse_edits` makes one message answer 30046 at once
  (Discord's clock or limits are not the bot's). :meth:`FakeDiscord.delete_message` is someone
  else deleting a message (10008 afterwards).
* Attachments (multipart ``files[n]`` with ``payload_json``) on messages, follow-ups and webhook
  edits keep their bytes: :meth:`FakeDiscord.attachment_content`.
* ``nonce`` with ``enforce_nonce: true`` (discord.py sends both on every ``send``): a second
  message by the same author in the same channel with the same nonce within
  ``nonce_window`` (Discord: "the past few minutes"; 5 minutes here) is not created: the first
  one is returned (200), and no event is dispatched. ``nonce`` longer than 25 characters is
  refused (400 50035).
* Permissions (roles, ``@everyone``, overwrites, owner, administrator): 50001 / 50013 like
  Discord, private threads visible to members and ``Manage Threads`` only, archived threads.
* Gateway intents: privileged intents must be enabled on the fake application (else close 4014);
  ``MESSAGE_CONTENT`` missing blanks other users' message content; ``GUILD_CREATE`` lists only the
  bot as member unless ``GUILD_PRESENCES`` is requested (discord.py chunks with op 8 otherwise).
* Outages: :meth:`FakeDiscord.drop_connections` closes every socket (sessions stay resumable);
  :meth:`FakeDiscord.take_gateway_down` also refuses new connections until
  :meth:`FakeDiscord.bring_gateway_up`: ``"close"`` accepts and closes them at once (discord.py
  retries a RESUME immediately, no backoff), ``"http"`` refuses the upgrade with an HTTP error
  (discord.py backs off up to 2**n s, then re-identifies at ``DEFAULT_GATEWAY`` after its 5 s
  identify delay), ``"stall"`` sends HELLO and then ignores the client (no READY / RESUMED, no
  heartbeat ACK). ``refused_gateway_connections`` counts the refused attempts.
* Shards and sessions: ``FakeDiscord(shard_count=N)`` accepts IDENTIFY only with
  ``shard: [i, N]``; a guild belongs to shard ``(guild_id >> 22) % N`` (``add_guild(shard=i)``
  picks such an id). A session gets READY / GUILD_CREATE and every event only for its shard's
  guilds. Every session on a shard gets each event (two processes of one bot, e.g. during a
  rolling restart, both see the same MESSAGE_CREATE); interactions too, unless
  ``interactions_to_every_session`` is False (then the first session on the shard gets it):
  the first callback wins and the other process gets 400 40060, as with two instances of a
  real bot.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import enum
import hashlib
import itertools
import json
import math
import re
import secrets
import time
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import discord.gateway
import discord.http
import yarl
from aiohttp import WSMsgType, web

from bench.fakes.local_server import LocalServer

API_VERSION = 10
DISCORD_EPOCH_MS = 1_420_070_400_000
MAX_CONTENT = 2000


class Perm(enum.IntFlag):
    """Discord permission bits (the subset a bot needs)."""

    CREATE_INSTANT_INVITE = 1 << 0
    KICK_MEMBERS = 1 << 1
    BAN_MEMBERS = 1 << 2
    ADMINISTRATOR = 1 << 3
    MANAGE_CHANNELS = 1 << 4
    MANAGE_GUILD = 1 << 5
    ADD_REACTIONS = 1 << 6
    VIEW_AUDIT_LOG = 1 << 7
    VIEW_CHANNEL = 1 << 10
    SEND_MESSAGES = 1 << 11
    SEND_TTS_MESSAGES = 1 << 12
    MANAGE_MESSAGES = 1 << 13
    EMBED_LINKS = 1 << 14
    ATTACH_FILES = 1 << 15
    READ_MESSAGE_HISTORY = 1 << 16
    MENTION_EVERYONE = 1 << 17
    USE_EXTERNAL_EMOJIS = 1 << 18
    CONNECT = 1 << 20
    SPEAK = 1 << 21
    CHANGE_NICKNAME = 1 << 26
    MANAGE_ROLES = 1 << 28
    USE_APPLICATION_COMMANDS = 1 << 31
    MANAGE_THREADS = 1 << 34
    CREATE_PUBLIC_THREADS = 1 << 35
    CREATE_PRIVATE_THREADS = 1 << 36
    SEND_MESSAGES_IN_THREADS = 1 << 38


ALL_PERMISSIONS = (1 << 51) - 1
DEFAULT_EVERYONE_PERMISSIONS = int(
    Perm.CREATE_INSTANT_INVITE
    | Perm.ADD_REACTIONS
    | Perm.VIEW_CHANNEL
    | Perm.SEND_MESSAGES
    | Perm.EMBED_LINKS
    | Perm.ATTACH_FILES
    | Perm.READ_MESSAGE_HISTORY
    | Perm.USE_EXTERNAL_EMOJIS
    | Perm.CONNECT
    | Perm.SPEAK
    | Perm.CHANGE_NICKNAME
    | Perm.USE_APPLICATION_COMMANDS
    | Perm.CREATE_PUBLIC_THREADS
    | Perm.CREATE_PRIVATE_THREADS
    | Perm.SEND_MESSAGES_IN_THREADS
)
DEFAULT_BOT_PERMISSIONS = DEFAULT_EVERYONE_PERMISSIONS | int(
    Perm.MANAGE_MESSAGES | Perm.MANAGE_THREADS | Perm.MANAGE_CHANNELS | Perm.MANAGE_ROLES
)


class Intent(enum.IntFlag):
    """Gateway intents the fake looks at."""

    GUILDS = 1 << 0
    GUILD_MEMBERS = 1 << 1
    GUILD_PRESENCES = 1 << 8
    GUILD_MESSAGES = 1 << 9
    DIRECT_MESSAGES = 1 << 12
    MESSAGE_CONTENT = 1 << 15


PRIVILEGED_INTENTS = int(Intent.GUILD_MEMBERS | Intent.GUILD_PRESENCES | Intent.MESSAGE_CONTENT)
_APP_FLAG_FOR_INTENT = {
    int(Intent.GUILD_PRESENCES): 1 << 13,  # GATEWAY_PRESENCE_LIMITED
    int(Intent.GUILD_MEMBERS): 1 << 15,  # GATEWAY_GUILD_MEMBERS_LIMITED
    int(Intent.MESSAGE_CONTENT): 1 << 19,  # GATEWAY_MESSAGE_CONTENT_LIMITED
}

# Channel types.
GUILD_TEXT, DM, GUILD_ANNOUNCEMENT = 0, 1, 5
ANNOUNCEMENT_THREAD, PUBLIC_THREAD, PRIVATE_THREAD = 10, 11, 12
THREAD_TYPES = frozenset({ANNOUNCEMENT_THREAD, PUBLIC_THREAD, PRIVATE_THREAD})

# Message flags.
FLAG_SUPPRESS_EMBEDS, FLAG_EPHEMERAL, FLAG_LOADING = 1 << 2, 1 << 6, 1 << 7
FLAG_SUPPRESS_NOTIFICATIONS, FLAG_COMPONENTS_V2 = 1 << 12, 1 << 15

# Interaction types -> callback types Discord accepts for them.
_ALLOWED_CALLBACKS: dict[int, frozenset[int]] = {
    1: frozenset({1}),
    2: frozenset({4, 5, 9}),
    3: frozenset({4, 5, 6, 7, 9}),
    4: frozenset({8}),
    5: frozenset({4, 5, 6, 7}),
}
_OPTION_SUBCOMMAND, _OPTION_GROUP = 1, 2


@dataclass(frozen=True)
class RateLimit:
    """``limit`` requests per ``per`` seconds in one bucket."""

    limit: int
    per: float


DEFAULT_RATE_LIMITS: dict[str, RateLimit | None] = {
    "POST /channels/{channel_id}/messages": RateLimit(5, 5.0),
    "PATCH /channels/{channel_id}/messages/{message_id}": RateLimit(5, 5.0),
    "DELETE /channels/{channel_id}/messages/{message_id}": RateLimit(5, 5.0),
    "POST /channels/{channel_id}/threads": RateLimit(10, 10.0),
    "POST /channels/{channel_id}/messages/{message_id}/threads": RateLimit(10, 10.0),
    "PUT /channels/{channel_id}/thread-members/{user_id}": RateLimit(10, 10.0),
    "PATCH /channels/{channel_id}": RateLimit(10, 10.0),
    "POST /webhooks/{webhook_id}/{webhook_token}": RateLimit(5, 2.0),
    "PATCH /webhooks/{webhook_id}/{webhook_token}/messages/{message_id}": RateLimit(5, 2.0),
    "POST /interactions/{interaction_id}/{interaction_token}/callback": None,
}
DEFAULT_ROUTE_LIMIT = RateLimit(50, 1.0)
_MAJOR_PARAMS = ("channel_id", "guild_id", "webhook_id", "webhook_token", "interaction_id")


class ApiError(Exception):
    """A Discord JSON error: ``{"message": ..., "code": ...[, "errors": ...]}``."""

    def __init__(
        self, status: int, code: int, message: str, errors: dict[str, Any] | None = None
    ) -> None:
        super().__init__(f"{status} {code} {message}")
        self.status, self.code, self.message, self.errors = status, code, message, errors

    def body(self) -> dict[str, Any]:
        """The JSON body Discord sends."""
        out: dict[str, Any] = {"message": self.message, "code": self.code}
        if self.errors is not None:
            out["errors"] = self.errors
        return out


def _form_error(path: str, code: str, message: str) -> ApiError:
    """400 50035 Invalid Form Body with one nested field error (``a.b.0.c`` paths)."""
    errors: dict[str, Any] = {"_errors": [{"code": code, "message": message}]}
    for part in reversed(path.split(".")):
        errors = {part: errors}
    return ApiError(400, 50035, "Invalid Form Body", errors)


def _unknown(code: int, what: str) -> ApiError:
    return ApiError(404, code, f"Unknown {what}")


MISSING_ACCESS = ApiError(403, 50001, "Missing Access")
MISSING_PERMISSIONS = ApiError(403, 50013, "Missing Permissions")


class _RateLimited(Exception):
    def __init__(self, retry_after: float, headers: dict[str, str], is_global: bool) -> None:
        super().__init__(retry_after)
        self.retry_after, self.headers, self.is_global = retry_after, headers, is_global


@dataclass
class FakeUser:
    """A Discord user."""

    id: int
    username: str
    global_name: str | None = None
    bot: bool = False
    discriminator: str = "0"
    accepts_dms: bool = True


@dataclass
class FakeRole:
    """A guild role (``id == guild_id`` is ``@everyone``)."""

    id: int
    guild_id: int
    name: str
    permissions: int
    position: int = 0
    color: int = 0
    hoist: bool = False
    managed: bool = False
    mentionable: bool = False
    bot_id: int | None = None


@dataclass
class FakeMember:
    """A guild member."""

    guild_id: int
    user_id: int
    roles: list[int]
    joined_at: float
    nick: str | None = None


@dataclass
class FakeChannel:
    """A guild text channel, a thread, or a DM channel."""

    id: int
    type: int
    name: str | None
    guild_id: int | None
    position: int = 0
    parent_id: int | None = None
    topic: str | None = None
    nsfw: bool = False
    rate_limit_per_user: int = 0
    overwrites: list[dict[str, Any]] = field(default_factory=list)
    last_message_id: int | None = None
    owner_id: int | None = None
    archived: bool = False
    locked: bool = False
    invitable: bool = True
    auto_archive_duration: int = 1440
    archive_timestamp: float = 0.0
    create_timestamp: float | None = None
    members: dict[int, float] = field(default_factory=dict)
    message_count: int = 0
    total_message_sent: int = 0
    recipient_id: int | None = None


@dataclass
class FakeGuild:
    """A guild the bot is in."""

    id: int
    name: str
    owner_id: int
    joined_at: float
    roles: dict[int, FakeRole] = field(default_factory=dict)
    members: dict[int, FakeMember] = field(default_factory=dict)
    channel_ids: list[int] = field(default_factory=list)
    features: list[str] = field(default_factory=list)


@dataclass
class FakeMessage:
    """A message in a channel (ephemeral interaction messages included, flag 64)."""

    id: int
    channel_id: int
    guild_id: int | None
    author_id: int
    content: str
    created_at: float
    embeds: list[dict[str, Any]] = field(default_factory=list)
    components: list[dict[str, Any]] = field(default_factory=list)
    attachments: list[dict[str, Any]] = field(default_factory=list)
    flags: int = 0
    type: int = 0
    tts: bool = False
    mentions: list[int] = field(default_factory=list)
    mention_roles: list[int] = field(default_factory=list)
    mention_everyone: bool = False
    message_reference: dict[str, Any] | None = None
    edited_at: float | None = None
    edit_count: int = 0
    old_edits: int = 0
    webhook_id: int | None = None
    application_id: int | None = None
    interaction_id: int | None = None
    position: int | None = None
    thread_id: int | None = None
    nonce: str | int | None = None
    deleted: bool = False
    edits_refused: bool = False


@dataclass
class FakeInteraction:
    """An interaction the fake dispatched, and what the bot answered."""

    id: int
    token: str
    type: int
    guild_id: int | None
    channel_id: int
    user_id: int
    dispatched_at: float
    name: str | None = None
    message_id: int | None = None
    response_type: int | None = None
    original_message_id: int | None = None
    followup_ids: list[int] = field(default_factory=list)
    # When the bot's first callback request arrived (on the fake's clock, before the fake's
    # ``latency`` and before any check): dispatched_at -> callback_at is the bot's ack time.
    callback_at: float | None = None


@dataclass
class RecordedCall:
    """One REST request as the fake saw it."""

    method: str
    path: str
    query: dict[str, str]
    json: Any
    headers: dict[str, str]
    at: float
    route: str | None = None
    status: int = 0


@dataclass(frozen=True)
class SeedIds:
    """Ids created by :meth:`FakeDiscord.seed`."""

    guild_id: int
    channel_id: int
    owner_id: int
    admin_id: int
    member_id: int
    admin_role_id: int


@dataclass
class _Session:
    id: str
    intents: int
    shard: tuple[int, int]
    large_threshold: int
    ws: web.WebSocketResponse | None = None
    seq: int = 0
    buffer: deque[dict[str, Any]] = field(default_factory=lambda: deque(maxlen=1000))
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    ready: bool = False


@dataclass(frozen=True)
class _Route:
    method: str
    template: str
    regex: re.Pattern[str]
    handler: str
    auth: bool = True


@dataclass
class _Request:
    params: dict[str, str]
    query: Mapping[str, str]
    json: Any
    files: list[dict[str, Any]]


@dataclass
class _Bucket:
    remaining: int
    reset_at: float


_ROUTES: tuple[tuple[str, str, str, bool], ...] = (
    ("GET", "/gateway", "_get_gateway", False),
    ("GET", "/gateway/bot", "_get_gateway_bot", True),
    ("GET", "/users/@me", "_get_me", True),
    ("POST", "/users/@me/channels", "_create_dm", True),
    ("GET", "/users/{user_id}", "_get_user", True),
    ("GET", "/oauth2/applications/@me", "_get_application", True),
    ("GET", "/applications/@me", "_get_application", True),
    ("GET", "/applications/{application_id}/commands", "_get_commands", True),
    ("PUT", "/applications/{application_id}/commands", "_put_commands", True),
    ("GET", "/applications/{application_id}/guilds/{guild_id}/commands", "_get_commands", True),
    ("PUT", "/applications/{application_id}/guilds/{guild_id}/commands", "_put_commands", True),
    ("POST", "/interactions/{interaction_id}/{interaction_token}/callback", "_callback", False),
    ("POST", "/webhooks/{webhook_id}/{webhook_token}", "_followup", False),
    ("GET", "/webhooks/{webhook_id}/{webhook_token}/messages/{message_id}", "_wh_get", False),
    ("PATCH", "/webhooks/{webhook_id}/{webhook_token}/messages/{message_id}", "_wh_edit", False),
    ("DELETE", "/webhooks/{webhook_id}/{webhook_token}/messages/{message_id}", "_wh_del", False),
    ("GET", "/channels/{channel_id}", "_get_channel", True),
    ("PATCH", "/channels/{channel_id}", "_edit_channel", True),
    ("GET", "/channels/{channel_id}/messages", "_list_messages", True),
    ("POST", "/channels/{channel_id}/messages", "_create_message", True),
    ("GET", "/channels/{channel_id}/messages/{message_id}", "_get_message", True),
    ("PATCH", "/channels/{channel_id}/messages/{message_id}", "_edit_message", True),
    ("DELETE", "/channels/{channel_id}/messages/{message_id}", "_delete_message", True),
    ("POST", "/channels/{channel_id}/messages/{message_id}/threads", "_thread_from_msg", True),
    ("POST", "/channels/{channel_id}/typing", "_typing", True),
    ("POST", "/channels/{channel_id}/threads", "_create_thread", True),
    ("GET", "/channels/{channel_id}/thread-members", "_list_thread_members", True),
    ("GET", "/channels/{channel_id}/thread-members/{user_id}", "_get_thread_member", True),
    ("PUT", "/channels/{channel_id}/thread-members/{user_id}", "_add_thread_member", True),
    ("DELETE", "/channels/{channel_id}/thread-members/{user_id}", "_remove_thread_member", True),
    ("GET", "/guilds/{guild_id}", "_get_guild", True),
    ("GET", "/guilds/{guild_id}/channels", "_get_guild_channels", True),
    ("GET", "/guilds/{guild_id}/members/{user_id}", "_get_member", True),
    ("GET", "/guilds/{guild_id}/roles", "_get_roles", True),
)


def _compile(template: str) -> re.Pattern[str]:
    pattern = re.sub(r"\\\{(\w+)\\\}", r"(?P<\1>[^/]+)", re.escape(template))
    return re.compile(pattern + r"\Z")


def _iso(ts: float) -> str:
    return datetime.fromtimestamp(ts, UTC).isoformat()


def _json_response(
    body: Any, status: int = 200, headers: Mapping[str, str] | None = None
) -> web.Response:
    """JSON with ``Content-Type`` exactly ``application/json`` (discord.py checks equality)."""
    merged = {"Content-Type": "application/json", "Via": "1.1 google"}
    merged.update(headers or {})
    return web.Response(status=status, body=json.dumps(body).encode(), headers=merged)


def _no_content() -> web.Response:
    return web.Response(status=204, headers={"Via": "1.1 google"})


def _ceil_ms(seconds: float) -> float:
    """Round up to whole milliseconds (never tell a client to come back too early)."""
    return max(math.ceil(seconds * 1000), 1) / 1000


def _truthy(value: str | None) -> bool:
    return value is not None and value.lower() in {"1", "true"}


def _as_id(value: Any, what: str = "snowflake") -> int:
    try:
        return int(value)
    except (TypeError, ValueError):
        raise _form_error(
            what, "NUMBER_TYPE_COERCE", f'Value "{value}" is not snowflake.'
        ) from None


@contextlib.contextmanager
def discord_py_pointed_at(fake: FakeDiscord) -> Iterator[None]:
    """Point discord.py at the fake (``Route.BASE`` and ``DEFAULT_GATEWAY``); restore on exit."""
    socket_cls = discord.gateway.DiscordWebSocket
    old_base, old_gateway = discord.http.Route.BASE, socket_cls.DEFAULT_GATEWAY
    discord.http.Route.BASE = fake.api_base
    socket_cls.DEFAULT_GATEWAY = yarl.URL(fake.gateway_url)
    try:
        yield
    finally:
        discord.http.Route.BASE = old_base
        socket_cls.DEFAULT_GATEWAY = old_gateway


class FakeDiscord(LocalServer):
    """In-process Discord: REST API v10 under ``/api/v10`` and a gateway websocket."""

    def __init__(
        self,
        *,
        token: str = "test-token",
        bot_name: str = "Interview Buddy",
        shard_count: int = 1,
        heartbeat_interval_ms: int = 41250,
        interaction_ack_timeout: float = 3.0,
        interaction_token_ttl: float = 900.0,
        old_message_age: float = 3600.0,
        old_message_edit_limit: int = 0,
        rate_limits: Mapping[str, RateLimit | None] | None = None,
        default_rate_limit: RateLimit | None = DEFAULT_ROUTE_LIMIT,
        global_rate_limit: RateLimit | None = None,
        enabled_privileged_intents: int = PRIVILEGED_INTENTS,
        echo_bot_messages: bool = True,
        interactions_to_every_session: bool = True,
        nonce_window: float = 300.0,
        latency: float = 0.0,
    ) -> None:
        self.latency = latency
        self.token = token
        self.shard_count = shard_count
        self.heartbeat_interval_ms = heartbeat_interval_ms
        self.interaction_ack_timeout = interaction_ack_timeout
        self.interaction_token_ttl = interaction_token_ttl
        self.old_message_age = old_message_age
        self.old_message_edit_limit = old_message_edit_limit
        self.rate_limits: dict[str, RateLimit | None] = dict(DEFAULT_RATE_LIMITS)
        self.rate_limits.update(rate_limits or {})
        self.default_rate_limit = default_rate_limit
        self.global_rate_limit = global_rate_limit
        self.enabled_privileged_intents = enabled_privileged_intents
        self.echo_bot_messages = echo_bot_messages
        self.interactions_to_every_session = interactions_to_every_session
        self.nonce_window = nonce_window
        self.clock_offset = 0.0

        self._increment = itertools.count()
        self.users: dict[int, FakeUser] = {}
        self.guilds: dict[int, FakeGuild] = {}
        self.channels: dict[int, FakeChannel] = {}
        self.messages: dict[int, FakeMessage] = {}
        self.attachment_data: dict[str, bytes] = {}  # attachment id -> the uploaded bytes
        self.interactions: dict[int, FakeInteraction] = {}
        self.global_commands: list[dict[str, Any]] = []
        self.guild_commands: dict[int, list[dict[str, Any]]] = {}

        self.calls: list[RecordedCall] = []
        self.rate_limited = 0
        self.identify_payloads: list[dict[str, Any]] = []
        self.presence_updates: list[Any] = []
        self.gateway_connections: list[dict[str, Any]] = []
        self.dispatched: list[tuple[str, Any]] = []
        self.interaction_responses: dict[int, list[dict[str, Any]]] = {}
        self.resumes = 0
        self.refused_gateway_connections = 0
        self._gateway_down: tuple[str, int, int] | None = None  # (mode, http status, close code)
        self._stalled: set[web.WebSocketResponse] = set()

        owner = self.add_user("app-owner", global_name="App Owner")
        self.owner_id = owner
        self.application_id = self._snowflake()
        self.bot_user_id = self.application_id  # Discord: the bot user id is the app id
        self.users[self.bot_user_id] = FakeUser(
            self.bot_user_id, bot_name, None, bot=True, discriminator="0001"
        )

        self._routes = [_Route(m, t, _compile(t), h, a) for m, t, h, a in _ROUTES]
        self._buckets: dict[str, _Bucket] = {}
        self._sessions: dict[str, _Session] = {}
        self._sockets: set[web.WebSocketResponse] = set()
        self._dropping: set[web.WebSocketResponse] = set()
        self._changed: asyncio.Event | None = None

    # ------------------------------------------------------------------ lifecycle

    def build_app(self) -> web.Application:
        app = web.Application(client_max_size=32 * 1024 * 1024)
        app.router.add_route("*", "/api/v10/{tail:.*}", self._handle_api)
        app.router.add_get("/gateway", self._handle_gateway)
        app.router.add_get("/gateway-resume", self._handle_gateway)
        return app

    async def close_connections(self) -> None:
        """Close every gateway connection before the HTTP server stops."""
        for ws in [*self._sockets, *self._stalled]:
            with contextlib.suppress(Exception):
                await ws.close(code=1001, message=b"server shutting down")

    @property
    def api_base(self) -> str:
        """Value for ``discord.http.Route.BASE``."""
        return f"http://127.0.0.1:{self.port}/api/v{API_VERSION}"

    @property
    def gateway_url(self) -> str:
        """The gateway URL ``GET /gateway/bot`` returns."""
        return f"ws://127.0.0.1:{self.port}/gateway"

    @property
    def resume_gateway_url(self) -> str:
        """The ``resume_gateway_url`` READY carries (a different path, to tell them apart)."""
        return f"ws://127.0.0.1:{self.port}/gateway-resume"

    # ------------------------------------------------------------------ clock & ids

    def now(self) -> float:
        """The fake's wall clock (epoch seconds, shifted by :meth:`advance_clock`)."""
        return time.time() + self.clock_offset

    def advance_clock(self, seconds: float) -> None:
        """Move the fake clock forward: messages age, interactions and tokens expire."""
        self.clock_offset += seconds

    def age_message(self, channel_id: int | str, message_id: int | str, seconds: float) -> None:
        """Make one message ``seconds`` older (for the 30046 edit rule)."""
        msg = self._message_in(int(channel_id), int(message_id))
        msg.created_at -= seconds

    def refuse_edits(self, channel_id: int | str, message_id: int | str) -> None:
        """Answer every further edit of one message with 400 30046, as Discord does once its
        edit limit for an old message is reached, whatever the bot believes the age is."""
        self._message_in(int(channel_id), int(message_id)).edits_refused = True

    def _snowflake(self) -> int:
        ms = int(self.now() * 1000) - DISCORD_EPOCH_MS
        return (ms << 22) | (1 << 17) | (next(self._increment) % 4096)

    # ------------------------------------------------------------------ setup helpers

    def add_user(
        self,
        username: str,
        *,
        global_name: str | None = None,
        bot: bool = False,
        accepts_dms: bool = True,
        user_id: int | None = None,
    ) -> int:
        """Create a user; returns its id."""
        uid = user_id or self._snowflake()
        self.users[uid] = FakeUser(uid, username, global_name, bot=bot, accepts_dms=accepts_dms)
        return uid

    def add_guild(
        self,
        name: str = "Test Guild",
        *,
        owner_id: int | None = None,
        everyone_permissions: int = DEFAULT_EVERYONE_PERMISSIONS,
        bot_permissions: int = DEFAULT_BOT_PERMISSIONS,
        shard: int | None = None,
    ) -> int:
        """Create a guild with ``@everyone``, the bot's managed role and the bot as member;
        with ``shard``, one whose id falls on that shard."""
        gid = self._snowflake()
        if shard is not None:
            if not 0 <= shard < self.shard_count:
                raise ValueError(f"shard {shard} is not below shard_count {self.shard_count}")
            ms = gid >> 22  # an id a few milliseconds older, on the wanted shard
            gid = ((ms - (ms - shard) % self.shard_count) << 22) | (gid & ((1 << 22) - 1))
        owner = owner_id if owner_id is not None else self.add_user(f"{name}-owner")
        guild = FakeGuild(gid, name, owner, joined_at=self.now())
        self.guilds[gid] = guild
        guild.roles[gid] = FakeRole(gid, gid, "@everyone", everyone_permissions)
        bot_role = FakeRole(
            self._snowflake(),
            gid,
            self.users[self.bot_user_id].username,
            bot_permissions,
            position=1,
            managed=True,
            bot_id=self.bot_user_id,
        )
        guild.roles[bot_role.id] = bot_role
        self.add_member(gid, self.bot_user_id, roles=[bot_role.id])
        self.add_member(gid, owner)
        return gid

    def add_role(
        self,
        guild_id: int,
        name: str,
        permissions: int = 0,
        *,
        position: int | None = None,
        mentionable: bool = False,
    ) -> int:
        """Create a role; returns its id."""
        guild = self.guilds[int(guild_id)]
        rid = self._snowflake()
        pos = position if position is not None else len(guild.roles)
        guild.roles[rid] = FakeRole(
            rid, guild.id, name, int(permissions), position=pos, mentionable=mentionable
        )
        return rid

    def add_member(
        self,
        guild_id: int,
        user_id: int | None = None,
        *,
        username: str | None = None,
        roles: Iterable[int] = (),
        nick: str | None = None,
    ) -> int:
        """Add a member (creating the user when ``user_id`` is None); returns the user id."""
        guild = self.guilds[int(guild_id)]
        uid = int(user_id) if user_id is not None else self.add_user(username or "member")
        if uid not in self.users:
            raise KeyError(f"unknown user {uid}")
        guild.members[uid] = FakeMember(guild.id, uid, [int(r) for r in roles], self.now(), nick)
        return uid

    def set_member_roles(self, guild_id: int, user_id: int, roles: Iterable[int]) -> None:
        """Replace a member's roles."""
        self.guilds[int(guild_id)].members[int(user_id)].roles = [int(r) for r in roles]

    def add_text_channel(
        self,
        guild_id: int,
        name: str,
        *,
        topic: str | None = None,
        announcement: bool = False,
    ) -> int:
        """Create a text (or announcement) channel; returns its id."""
        guild = self.guilds[int(guild_id)]
        cid = self._snowflake()
        kind = GUILD_ANNOUNCEMENT if announcement else GUILD_TEXT
        self.channels[cid] = FakeChannel(
            cid, kind, name, guild.id, position=len(guild.channel_ids), topic=topic
        )
        guild.channel_ids.append(cid)
        return cid

    def set_permission_overwrite(
        self,
        channel_id: int,
        target_id: int,
        *,
        allow: int = 0,
        deny: int = 0,
        member: bool = False,
    ) -> None:
        """Set a role (or member) permission overwrite on a channel."""
        channel = self.channels[int(channel_id)]
        channel.overwrites = [o for o in channel.overwrites if int(o["id"]) != int(target_id)]
        channel.overwrites.append(
            {
                "id": str(target_id),
                "type": 1 if member else 0,
                "allow": str(allow),
                "deny": str(deny),
            }
        )

    def seed(self, *, shard: int | None = None) -> SeedIds:
        """A guild with an owner, an "Admin" role (Manage Server), an admin, a plain member
        and a ``#interviews`` text channel (on ``shard``, when given)."""
        owner = self.add_user("owner", global_name="Guild Owner")
        gid = self.add_guild("Interview Buddy Test", owner_id=owner, shard=shard)
        admin_role = self.add_role(gid, "Admin", int(Perm.MANAGE_GUILD))
        admin = self.add_member(
            gid, self.add_user("alice", global_name="Alice"), roles=[admin_role]
        )
        member = self.add_member(gid, self.add_user("bob", global_name="Bob"))
        channel = self.add_text_channel(gid, "interviews")
        return SeedIds(gid, channel, owner, admin, member, admin_role)

    def ensure_dm_channel(self, user_id: int) -> int:
        """The DM channel between the bot and a user (created on first use)."""
        uid = int(user_id)
        for channel in self.channels.values():
            if channel.type == DM and channel.recipient_id == uid:
                return channel.id
        cid = self._snowflake()
        self.channels[cid] = FakeChannel(cid, DM, None, None, recipient_id=uid)
        return cid

    # ------------------------------------------------------------------ state views

    def calls_matching(self, method: str | None, path_regex: str) -> list[RecordedCall]:
        """Recorded calls with this method (None: any) whose path fully matches the regex.

        Paths are relative to the API base, e.g. ``r"/channels/\\d+/messages"``.
        """
        pattern = re.compile(path_regex)
        return [
            c
            for c in self.calls
            if (method is None or c.method == method.upper()) and pattern.fullmatch(c.path)
        ]

    def channel_messages(self, channel_id: int | str) -> list[dict[str, Any]]:
        """Live messages of a channel, oldest first (ephemeral ones flagged)."""
        cid = int(channel_id)
        return [
            {
                "id": m.id,
                "author_id": m.author_id,
                "content": m.content,
                "embeds": m.embeds,
                "components": m.components,
                "attachments": m.attachments,
                "flags": m.flags,
                "ephemeral": bool(m.flags & FLAG_EPHEMERAL),
                "edit_count": m.edit_count,
                "message_reference": m.message_reference,
                "interaction_id": m.interaction_id,
            }
            for m in sorted(self.messages.values(), key=lambda m: m.id)
            if m.channel_id == cid and not m.deleted
        ]

    def attachment_content(self, attachment: Mapping[str, Any] | str) -> bytes:
        """The bytes uploaded for an attachment (its payload, or its id)."""
        aid = attachment if isinstance(attachment, str) else str(attachment["id"])
        return self.attachment_data[aid]

    def dm_messages(self, user_id: int | str) -> list[dict[str, Any]]:
        """What the bot sent a user directly (their DM channel, oldest first)."""
        uid = int(user_id)
        for channel in self.channels.values():
            if channel.type == DM and channel.recipient_id == uid:
                return self.channel_messages(channel.id)
        return []

    @property
    def threads(self) -> dict[int, dict[str, Any]]:
        """Every thread as its API payload, by id."""
        return {
            c.id: self.channel_payload(c.id)
            for c in self.channels.values()
            if c.type in THREAD_TYPES
        }

    def thread_members(self, thread_id: int | str) -> list[int]:
        """User ids in a thread."""
        return sorted(self.channels[int(thread_id)].members)

    def get_message_payload(self, message_id: int | str) -> dict[str, Any]:
        """A stored message as its API payload."""
        return self.message_payload(self.messages[int(message_id)])

    async def wait_for(
        self,
        predicate: Callable[[], bool],
        timeout: float = 5.0,  # noqa: ASYNC109 - the test-facing API takes a timeout
    ) -> None:
        """Wait until ``predicate()`` about the fake's state is true.

        It is re-checked whenever the fake's state changes (a REST call answered, a gateway
        connection opened or closed), so it must not depend on state outside the fake.
        """
        async with asyncio.timeout(timeout):
            while not predicate():
                await self._change_event().wait()

    async def wait_ready(self, timeout: float = 5.0) -> None:  # noqa: ASYNC109
        """Wait until a client identified and got every GUILD_CREATE."""
        await self.wait_for(lambda: any(s.ready for s in self._sessions.values()), timeout)

    async def wait_interaction_response(
        self,
        interaction_id: int | str,
        timeout: float = 5.0,  # noqa: ASYNC109
    ) -> dict[str, Any]:
        """The accepted interaction callback: ``{"kind", "type", "data", "at", "message_id"}``."""
        iid = int(interaction_id)

        def first() -> dict[str, Any] | None:
            return next(
                (r for r in self.interaction_responses.get(iid, []) if r["kind"] == "callback"),
                None,
            )

        await self.wait_for(lambda: first() is not None, timeout)
        found = first()
        assert found is not None
        return found

    async def wait_for_call(
        self,
        method: str | None,
        path_regex: str,
        count: int = 1,
        timeout: float = 5.0,  # noqa: ASYNC109
    ) -> list[RecordedCall]:
        """Wait until ``count`` matching calls were answered; returns them."""
        await self.wait_for(
            lambda: sum(1 for c in self.calls_matching(method, path_regex) if c.status) >= count,
            timeout,
        )
        return self.calls_matching(method, path_regex)

    def _change_event(self) -> asyncio.Event:
        if self._changed is None:
            self._changed = asyncio.Event()
        return self._changed

    def _notify(self) -> None:
        if self._changed is not None:
            self._changed.set()
            self._changed = None

    # ------------------------------------------------------------------ rate limits

    def set_rate_limit(self, route: str, limit: int | None, per: float = 1.0) -> None:
        """Set a route's bucket, e.g. ``("POST /channels/{channel_id}/messages", 2, 0.5)``;
        ``limit=None`` removes the limit."""
        self.rate_limits[route] = None if limit is None else RateLimit(limit, per)
        self._buckets = {k: v for k, v in self._buckets.items() if not k.startswith(route + ":")}

    def exhaust_bucket(self, route: str, **major: int | str) -> None:
        """Empty a bucket as if another process had used it (the next call gets a 429)."""
        limit = self._limit_for(route)
        if limit is None:
            raise ValueError(f"{route} has no rate limit")
        key = self._bucket_key(route, {k: str(v) for k, v in major.items()})
        self._buckets[key] = _Bucket(0, time.monotonic() + limit.per)

    def _limit_for(self, route: str) -> RateLimit | None:
        if route in self.rate_limits:
            return self.rate_limits[route]
        return self.default_rate_limit

    @staticmethod
    def _bucket_key(route: str, params: Mapping[str, str]) -> str:
        major = "+".join(params[k] for k in _MAJOR_PARAMS if k in params)
        return f"{route}:{major}"

    def _take(self, route: str, params: Mapping[str, str], user_scope: bool) -> dict[str, str]:
        """Consume a token; returns the rate-limit headers or raises :class:`_RateLimited`."""
        now = time.monotonic()
        if user_scope and self.global_rate_limit is not None:
            gkey = "<global>"
            bucket = self._buckets.get(gkey)
            if bucket is None or now >= bucket.reset_at:
                bucket = self._buckets[gkey] = _Bucket(
                    self.global_rate_limit.limit, now + self.global_rate_limit.per
                )
            if bucket.remaining <= 0:
                wait = _ceil_ms(bucket.reset_at - now)
                raise _RateLimited(wait, {"X-RateLimit-Global": "true"}, True)
            bucket.remaining -= 1
        limit = self._limit_for(route)
        if limit is None:
            return {}
        key = self._bucket_key(route, params)
        bucket = self._buckets.get(key)
        if bucket is None or now >= bucket.reset_at:
            bucket = self._buckets[key] = _Bucket(limit.limit, now + limit.per)
        reset_after = _ceil_ms(bucket.reset_at - now)
        headers = {
            "X-RateLimit-Limit": str(limit.limit),
            "X-RateLimit-Reset": f"{time.time() + reset_after:.3f}",
            "X-RateLimit-Reset-After": f"{reset_after:.3f}",
            "X-RateLimit-Bucket": hashlib.sha1(route.encode()).hexdigest()[:32],
        }
        if bucket.remaining <= 0:
            headers["X-RateLimit-Remaining"] = "0"
            raise _RateLimited(reset_after, headers, False)
        bucket.remaining -= 1
        headers["X-RateLimit-Remaining"] = str(bucket.remaining)
        return headers

    # ------------------------------------------------------------------ REST plumbing

    async def _handle_api(self, request: web.Request) -> web.StreamResponse:
        path = "/" + request.match_info["tail"]
        call = RecordedCall(
            request.method, path, dict(request.query), None, dict(request.headers), self.now()
        )
        self.calls.append(call)
        rl_headers: dict[str, str] = {}
        try:
            body, files = await self._read_body(request)
            call.json = body
            route, params = self._match(request.method, path)
            call.route = f"{route.method} {route.template}"
            if route.handler == "_callback":
                self._note_callback(params["interaction_id"], call.at)
            if route.auth and request.headers.get("Authorization") != f"Bot {self.token}":
                raise ApiError(401, 0, "401: Unauthorized")
            rl_headers = self._take(call.route, params, route.auth)
            if self.latency:
                await asyncio.sleep(self.latency)
            handler = getattr(self, route.handler)
            response: web.Response = await handler(_Request(params, request.query, body, files))
        except ApiError as exc:
            response = _json_response(exc.body(), exc.status)
        except _RateLimited as exc:
            self.rate_limited += 1
            rl_headers = {
                **exc.headers,
                "X-RateLimit-Scope": "global" if exc.is_global else "user",
                "Retry-After": str(math.ceil(exc.retry_after)),
            }
            body_429 = {
                "message": "You are being rate limited.",
                "retry_after": exc.retry_after,
                "global": exc.is_global,
            }
            response = _json_response(body_429, 429)
        response.headers.update(rl_headers)
        call.status = response.status
        self._notify()
        return response

    def _note_callback(self, raw_id: str, at: float) -> None:
        inter = self.interactions.get(int(raw_id)) if raw_id.isdigit() else None
        if inter is not None and inter.callback_at is None:
            inter.callback_at = at

    async def _read_body(self, request: web.Request) -> tuple[Any, list[dict[str, Any]]]:
        if not request.can_read_body:
            return None, []
        if request.content_type.startswith("multipart/"):
            form = await request.post()
            payload: Any = None
            files: list[dict[str, Any]] = []
            for name, value in form.items():
                if isinstance(value, web.FileField):
                    data = value.file.read()
                    files.append(
                        {
                            "field": name,
                            "filename": value.filename,
                            "size": len(data),
                            "content_type": value.content_type,
                            "data": data,
                        }
                    )
                elif name == "payload_json":
                    payload = json.loads(str(value))
            return payload, files
        raw = await request.text()
        if not raw:
            return None, []
        try:
            return json.loads(raw), []
        except json.JSONDecodeError as exc:
            raise ApiError(400, 50109, "The request body contains invalid JSON.") from exc

    def _match(self, method: str, path: str) -> tuple[_Route, dict[str, str]]:
        path_known = False
        for route in self._routes:
            m = route.regex.match(path)
            if m is None:
                continue
            if route.method == method:
                return route, m.groupdict()
            path_known = True
        if path_known:
            raise ApiError(405, 0, "405: Method Not Allowed")
        raise ApiError(404, 0, "404: Not Found")

    # ------------------------------------------------------------------ payloads

    def user_payload(self, user_id: int) -> dict[str, Any]:
        """A user object."""
        u = self.users[user_id]
        return {
            "id": str(u.id),
            "username": u.username,
            "discriminator": u.discriminator,
            "global_name": u.global_name,
            "avatar": None,
            "bot": u.bot,
            "public_flags": 0,
            "flags": 0,
            "banner": None,
            "accent_color": None,
            "avatar_decoration_data": None,
            "collectibles": None,
            "primary_guild": None,
        }

    def member_payload(
        self, guild_id: int, user_id: int, *, with_user: bool = True
    ) -> dict[str, Any]:
        """A guild member object."""
        m = self.guilds[guild_id].members[user_id]
        out: dict[str, Any] = {
            "roles": [str(r) for r in m.roles],
            "nick": m.nick,
            "avatar": None,
            "banner": None,
            "joined_at": _iso(m.joined_at),
            "premium_since": None,
            "deaf": False,
            "mute": False,
            "flags": 0,
            "pending": False,
            "communication_disabled_until": None,
        }
        if with_user:
            out["user"] = self.user_payload(user_id)
        return out

    @staticmethod
    def role_payload(role: FakeRole) -> dict[str, Any]:
        """A role object."""
        out: dict[str, Any] = {
            "id": str(role.id),
            "name": role.name,
            "permissions": str(role.permissions),
            "position": role.position,
            "color": role.color,
            "colors": {
                "primary_color": role.color,
                "secondary_color": None,
                "tertiary_color": None,
            },
            "hoist": role.hoist,
            "managed": role.managed,
            "mentionable": role.mentionable,
            "icon": None,
            "unicode_emoji": None,
            "flags": 0,
        }
        if role.bot_id is not None:
            out["tags"] = {"bot_id": str(role.bot_id)}
        return out

    def channel_payload(self, channel_id: int) -> dict[str, Any]:
        """A channel object (text channel, thread or DM)."""
        c = self.channels[channel_id]
        last = str(c.last_message_id) if c.last_message_id else None
        if c.type == DM:
            assert c.recipient_id is not None
            return {
                "id": str(c.id),
                "type": DM,
                "last_message_id": last,
                "flags": 0,
                "recipients": [self.user_payload(c.recipient_id)],
            }
        out: dict[str, Any] = {
            "id": str(c.id),
            "type": c.type,
            "guild_id": str(c.guild_id),
            "name": c.name,
            "last_message_id": last,
            "rate_limit_per_user": c.rate_limit_per_user,
            "flags": 0,
        }
        if c.type in THREAD_TYPES:
            metadata: dict[str, Any] = {
                "archived": c.archived,
                "archive_timestamp": _iso(c.archive_timestamp),
                "auto_archive_duration": c.auto_archive_duration,
                "locked": c.locked,
                "create_timestamp": _iso(c.create_timestamp or c.archive_timestamp),
            }
            if c.type == PRIVATE_THREAD:
                metadata["invitable"] = c.invitable
            out.update(
                parent_id=str(c.parent_id),
                owner_id=str(c.owner_id),
                thread_metadata=metadata,
                message_count=c.message_count,
                member_count=min(len(c.members), 50),
                total_message_sent=c.total_message_sent,
                applied_tags=[],
            )
            return out
        out.update(
            position=c.position,
            permission_overwrites=list(c.overwrites),
            parent_id=str(c.parent_id) if c.parent_id else None,
            topic=c.topic,
            nsfw=c.nsfw,
            default_auto_archive_duration=1440,
            default_thread_rate_limit_per_user=0,
            last_pin_timestamp=None,
        )
        return out

    def _thread_member_payload(self, thread: FakeChannel, user_id: int) -> dict[str, Any]:
        return {
            "id": str(thread.id),
            "user_id": str(user_id),
            "join_timestamp": _iso(thread.members[user_id]),
            "flags": 0,
        }

    def guild_payload(self, guild_id: int, *, intents: int | None = None) -> dict[str, Any]:
        """A full GUILD_CREATE payload as a client with ``intents`` would receive it."""
        g = self.guilds[guild_id]
        full_members = intents is None or bool(intents & Intent.GUILD_PRESENCES)
        large = len(g.members) > 250
        member_ids = [
            uid for uid in g.members if uid == self.bot_user_id or (full_members and not large)
        ]
        visible_threads = [
            c.id
            for c in self.channels.values()
            if c.type in THREAD_TYPES
            and c.guild_id == g.id
            and not c.archived
            and self._can_view(c, self.bot_user_id)
        ]
        return {
            **self._guild_rest_payload(g),
            "joined_at": _iso(g.joined_at),
            "large": large,
            "unavailable": False,
            "member_count": len(g.members),
            "members": [self.member_payload(g.id, uid) for uid in member_ids],
            "channels": [self.channel_payload(cid) for cid in g.channel_ids],
            "threads": [self.channel_payload(tid) for tid in visible_threads],
            "presences": [],
            "voice_states": [],
            "stage_instances": [],
            "guild_scheduled_events": [],
            "soundboard_sounds": [],
            "embedded_activities": [],
            "lazy": True,
        }

    def _guild_rest_payload(self, g: FakeGuild) -> dict[str, Any]:
        return {
            "id": str(g.id),
            "name": g.name,
            "icon": None,
            "splash": None,
            "discovery_splash": None,
            "banner": None,
            "owner_id": str(g.owner_id),
            "afk_channel_id": None,
            "afk_timeout": 300,
            "verification_level": 0,
            "default_message_notifications": 0,
            "explicit_content_filter": 0,
            "roles": [self.role_payload(r) for r in g.roles.values()],
            "emojis": [],
            "stickers": [],
            "features": list(g.features),
            "mfa_level": 0,
            "application_id": None,
            "system_channel_id": None,
            "system_channel_flags": 0,
            "rules_channel_id": None,
            "public_updates_channel_id": None,
            "safety_alerts_channel_id": None,
            "max_members": 500000,
            "vanity_url_code": None,
            "description": None,
            "premium_tier": 0,
            "premium_subscription_count": 0,
            "preferred_locale": "en-US",
            "nsfw_level": 0,
            "premium_progress_bar_enabled": False,
            "widget_enabled": False,
        }

    def message_payload(self, m: FakeMessage, *, gateway: bool = False) -> dict[str, Any]:
        """A message object (``gateway=True`` adds ``guild_id`` and ``member`` like events do)."""
        out: dict[str, Any] = {
            "id": str(m.id),
            "channel_id": str(m.channel_id),
            "type": m.type,
            "content": m.content,
            "author": self.user_payload(m.author_id),
            "mentions": [self.user_payload(u) for u in m.mentions if u in self.users],
            "mention_roles": [str(r) for r in m.mention_roles],
            "mention_everyone": m.mention_everyone,
            "attachments": list(m.attachments),
            "embeds": list(m.embeds),
            "components": list(m.components),
            "timestamp": _iso(m.created_at),
            "edited_timestamp": _iso(m.edited_at) if m.edited_at else None,
            "tts": m.tts,
            "pinned": False,
            "flags": m.flags,
        }
        if m.nonce is not None:
            out["nonce"] = m.nonce
        if m.position is not None:
            out["position"] = m.position
        if m.webhook_id is not None:
            out["webhook_id"] = str(m.webhook_id)
        if m.application_id is not None:
            out["application_id"] = str(m.application_id)
        if m.interaction_id is not None and m.interaction_id in self.interactions:
            out["interaction_metadata"] = self._interaction_metadata(m)
        if m.message_reference is not None:
            out["message_reference"] = m.message_reference
            ref = self.messages.get(int(m.message_reference.get("message_id", 0)))
            if ref is not None and not ref.deleted:
                out["referenced_message"] = self.message_payload(ref)
        if m.thread_id is not None:
            out["thread"] = self.channel_payload(m.thread_id)
        if gateway and m.guild_id is not None:
            out["guild_id"] = str(m.guild_id)
            guild = self.guilds.get(m.guild_id)
            if guild is not None and m.author_id in guild.members and m.webhook_id is None:
                out["member"] = self.member_payload(m.guild_id, m.author_id, with_user=False)
        return out

    def _interaction_metadata(self, m: FakeMessage) -> dict[str, Any]:
        assert m.interaction_id is not None
        inter = self.interactions[m.interaction_id]
        meta: dict[str, Any] = {
            "id": str(inter.id),
            "type": inter.type,
            "user": self.user_payload(inter.user_id),
            "authorizing_integration_owners": self._integration_owners(inter.guild_id),
        }
        if inter.type == 2:
            meta["name"] = inter.name
            meta["command_type"] = 1
        if inter.original_message_id is not None and inter.original_message_id != m.id:
            meta["original_response_message_id"] = str(inter.original_message_id)
        if inter.type == 3 and inter.message_id is not None:
            meta["interacted_message_id"] = str(inter.message_id)
        return meta

    def _integration_owners(self, guild_id: int | None) -> dict[str, str]:
        return {"0": str(guild_id) if guild_id is not None else "0"}

    # ------------------------------------------------------------------ permissions

    def permissions_for(self, user_id: int, channel_id: int) -> int:
        """Effective permissions of a user in a channel (threads use their parent)."""
        channel = self.channels[int(channel_id)]
        if channel.guild_id is None:
            return int(
                Perm.VIEW_CHANNEL
                | Perm.SEND_MESSAGES
                | Perm.READ_MESSAGE_HISTORY
                | Perm.EMBED_LINKS
                | Perm.ATTACH_FILES
                | Perm.ADD_REACTIONS
            )
        guild = self.guilds[channel.guild_id]
        member = guild.members.get(int(user_id))
        if member is None:
            return 0
        base = self.guild_permissions(guild.id, member.user_id)
        if base & Perm.ADMINISTRATOR:
            return ALL_PERMISSIONS
        source = self.channels[channel.parent_id] if channel.parent_id else channel
        overwrites = {int(o["id"]): o for o in source.overwrites}
        perms = base
        everyone = overwrites.get(guild.id)
        if everyone is not None:
            perms = (perms & ~int(everyone["deny"])) | int(everyone["allow"])
        allow = deny = 0
        for rid in member.roles:
            o = overwrites.get(rid)
            if o is not None and o["type"] == 0:
                allow |= int(o["allow"])
                deny |= int(o["deny"])
        perms = (perms & ~deny) | allow
        own = overwrites.get(member.user_id)
        if own is not None and own["type"] == 1:
            perms = (perms & ~int(own["deny"])) | int(own["allow"])
        if not perms & Perm.VIEW_CHANNEL:
            return 0
        return perms

    def guild_permissions(self, guild_id: int, user_id: int) -> int:
        """Guild-level permissions (owner and administrator get everything)."""
        guild = self.guilds[int(guild_id)]
        if guild.owner_id == int(user_id):
            return ALL_PERMISSIONS
        member = guild.members.get(int(user_id))
        if member is None:
            return 0
        perms = guild.roles[guild.id].permissions
        for rid in member.roles:
            role = guild.roles.get(rid)
            if role is not None:
                perms |= role.permissions
        return ALL_PERMISSIONS if perms & Perm.ADMINISTRATOR else perms

    def _can_view(self, channel: FakeChannel, user_id: int) -> bool:
        if channel.type == DM:
            return user_id in (channel.recipient_id, self.bot_user_id)
        perms = self.permissions_for(user_id, channel.id)
        if not perms & Perm.VIEW_CHANNEL:
            return False
        if channel.type == PRIVATE_THREAD:
            return user_id in channel.members or bool(perms & Perm.MANAGE_THREADS)
        return True

    def _require(self, channel: FakeChannel, perm: int) -> None:
        if not self._can_view(channel, self.bot_user_id):
            raise MISSING_ACCESS
        if (
            channel.type != DM
            and (self.permissions_for(self.bot_user_id, channel.id) & perm) != perm
        ):
            raise MISSING_PERMISSIONS

    # ------------------------------------------------------------------ lookups

    def _channel(self, raw: str) -> FakeChannel:
        try:
            channel = self.channels.get(int(raw))
        except ValueError:
            channel = None
        if channel is None:
            raise _unknown(10003, "Channel")
        if channel.guild_id is not None and channel.guild_id not in self.guilds:
            raise MISSING_ACCESS
        return channel

    def _message_in(self, channel_id: int, message_id: int) -> FakeMessage:
        msg = self.messages.get(message_id)
        if msg is None or msg.deleted or msg.channel_id != channel_id:
            raise _unknown(10008, "Message")
        return msg

    def _guild(self, raw: str) -> FakeGuild:
        try:
            guild = self.guilds.get(int(raw))
        except ValueError:
            guild = None
        if guild is None:
            raise _unknown(10004, "Guild")
        return guild

    # ------------------------------------------------------------------ message rules

    @staticmethod
    def _validate_message(body: Mapping[str, Any], *, creating: bool, has_files: bool) -> None:
        content = body.get("content")
        if content is not None and not isinstance(content, str):
            raise _form_error("content", "STRING_TYPE_CONVERT", "Could not interpret as string.")
        if content and len(content) > MAX_CONTENT:
            raise _form_error(
                "content", "BASE_TYPE_MAX_LENGTH", f"Must be {MAX_CONTENT} or fewer in length."
            )
        embeds = body.get("embeds") or []
        if len(embeds) > 10:
            raise _form_error("embeds", "BASE_TYPE_MAX_LENGTH", "Must be 10 or fewer in length.")
        total = 0
        limits = {"title": 256, "description": 4096}
        for i, embed in enumerate(embeds):
            for key, maximum in limits.items():
                text = embed.get(key) or ""
                total += len(text)
                if len(text) > maximum:
                    raise _form_error(
                        f"embeds.{i}.{key}",
                        "BASE_TYPE_MAX_LENGTH",
                        f"Must be {maximum} or fewer in length.",
                    )
            fields = embed.get("fields") or []
            if len(fields) > 25:
                raise _form_error(
                    f"embeds.{i}.fields", "BASE_TYPE_MAX_LENGTH", "Must be 25 or fewer in length."
                )
            for j, fld in enumerate(fields):
                for key, maximum in (("name", 256), ("value", 1024)):
                    text = str(fld.get(key) or "")
                    total += len(text)
                    if len(text) > maximum:
                        raise _form_error(
                            f"embeds.{i}.fields.{j}.{key}",
                            "BASE_TYPE_MAX_LENGTH",
                            f"Must be {maximum} or fewer in length.",
                        )
            total += len((embed.get("footer") or {}).get("text") or "")
            total += len((embed.get("author") or {}).get("name") or "")
        if total > 6000:
            raise _form_error(
                "embeds", "MAX_EMBED_SIZE_EXCEEDED", "Embed size exceeds maximum size of 6000"
            )
        components = body.get("components") or []
        if not int(body.get("flags") or 0) & FLAG_COMPONENTS_V2:
            if len(components) > 5:
                raise _form_error(
                    "components", "BASE_TYPE_MAX_LENGTH", "Must be 5 or fewer in length."
                )
            for i, row in enumerate(components):
                if row.get("type") != 1:
                    raise _form_error(
                        f"components.{i}.type",
                        "UNION_TYPE_CHOICES",
                        'Value of field "type" must be one of (1,).',
                    )
                if len(row.get("components") or []) > 5:
                    raise _form_error(
                        f"components.{i}.components",
                        "BASE_TYPE_BAD_LENGTH",
                        "Must be between 1 and 5 in length.",
                    )
        if creating and not (
            content
            or embeds
            or components
            or has_files
            or body.get("sticker_ids")
            or body.get("poll")
        ):
            raise ApiError(400, 50006, "Cannot send an empty message")

    def _same_nonce(
        self, channel: FakeChannel, author_id: int, body: Mapping[str, Any]
    ) -> FakeMessage | None:
        """With ``enforce_nonce``, the recent message of this author here with this nonce."""
        nonce = body.get("nonce")
        if nonce is None:
            return None
        if len(str(nonce)) > 25:
            raise _form_error("nonce", "BASE_TYPE_MAX_LENGTH", "Must be 25 or fewer in length.")
        if not body.get("enforce_nonce"):
            return None
        since = self.now() - self.nonce_window
        return next(
            (
                m
                for m in self.messages.values()
                if m.channel_id == channel.id
                and m.author_id == author_id
                and m.nonce is not None
                and str(m.nonce) == str(nonce)
                and m.created_at >= since
                and not m.deleted
            ),
            None,
        )

    def _attachments_from(
        self, channel_id: int, files: list[dict[str, Any]]
    ) -> list[dict[str, Any]]:
        out = []
        for f in files:
            aid = self._snowflake()
            url = f"https://cdn.discordapp.com/attachments/{channel_id}/{aid}/{f['filename']}"
            self.attachment_data[str(aid)] = bytes(f.get("data") or b"")
            out.append(
                {
                    "id": str(aid),
                    "filename": f["filename"],
                    "size": f["size"],
                    "url": url,
                    "proxy_url": url.replace("cdn.discordapp.com", "media.discordapp.net"),
                    "content_type": f["content_type"],
                }
            )
        return out

    def _mentions(self, content: str) -> tuple[list[int], list[int], bool]:
        users = [int(u) for u in re.findall(r"<@!?(\d+)>", content)]
        roles = [int(r) for r in re.findall(r"<@&(\d+)>", content)]
        return users, roles, "@everyone" in content or "@here" in content

    def _store_message(
        self,
        channel: FakeChannel,
        author_id: int,
        body: Mapping[str, Any],
        files: list[dict[str, Any]],
        *,
        message_id: int | None = None,
        **extra: Any,
    ) -> FakeMessage:
        content = body.get("content") or ""
        users, roles, everyone = self._mentions(content)
        msg = FakeMessage(
            id=message_id or self._snowflake(),
            channel_id=channel.id,
            guild_id=channel.guild_id,
            author_id=author_id,
            content=content,
            created_at=self.now(),
            embeds=list(body.get("embeds") or []),
            components=list(body.get("components") or []),
            attachments=self._attachments_from(channel.id, files),
            tts=bool(body.get("tts")),
            mentions=users,
            mention_roles=roles,
            mention_everyone=everyone,
            nonce=body.get("nonce"),
            **extra,
        )
        if channel.type in THREAD_TYPES:
            msg.position = channel.total_message_sent
            channel.message_count += 1
            channel.total_message_sent += 1
        if not msg.flags & FLAG_EPHEMERAL:
            channel.last_message_id = msg.id
        self.messages[msg.id] = msg
        return msg

    def _apply_edit(
        self, msg: FakeMessage, body: Mapping[str, Any], files: list[dict[str, Any]]
    ) -> None:
        """Validate and apply a message edit (all or nothing)."""
        merged: dict[str, Any] = {
            "content": msg.content,
            "embeds": msg.embeds,
            "components": msg.components,
            "flags": msg.flags,
        }
        merged.update({k: body[k] for k in ("content", "embeds", "components") if k in body})
        self._validate_message(merged, creating=False, has_files=bool(files))
        attachments = list(msg.attachments)
        if body.get("attachments") is not None:
            keep = {str(a.get("id")) for a in body["attachments"]}
            attachments = [a for a in attachments if a["id"] in keep]
        visible = merged["content"] or merged["embeds"] or merged["components"]
        if not (visible or attachments or files):
            raise ApiError(400, 50006, "Cannot send an empty message")
        msg.content = merged["content"] or ""
        msg.mentions, msg.mention_roles, msg.mention_everyone = self._mentions(msg.content)
        msg.embeds = list(merged["embeds"] or [])
        msg.components = list(merged["components"] or [])
        msg.attachments = attachments + self._attachments_from(msg.channel_id, files)
        if body.get("flags") is not None:
            toggled = int(body["flags"]) & FLAG_SUPPRESS_EMBEDS
            msg.flags = (msg.flags & ~FLAG_SUPPRESS_EMBEDS) | toggled
        msg.flags &= ~FLAG_LOADING
        msg.edited_at = self.now()
        msg.edit_count += 1

    async def _echo_message(self, event: str, msg: FakeMessage) -> None:
        if msg.flags & FLAG_EPHEMERAL or not self.echo_bot_messages:
            return
        if event == "MESSAGE_DELETE":
            data: dict[str, Any] = {"id": str(msg.id), "channel_id": str(msg.channel_id)}
            if msg.guild_id is not None:
                data["guild_id"] = str(msg.guild_id)
            await self._dispatch_each(
                event, lambda s: data, self._message_intent(msg), msg.guild_id
            )
            return
        await self._dispatch_message(event, msg)

    def _message_intent(self, msg: FakeMessage) -> int:
        return int(Intent.GUILD_MESSAGES if msg.guild_id is not None else Intent.DIRECT_MESSAGES)

    async def _dispatch_message(self, event: str, msg: FakeMessage) -> int:
        def build(session: _Session) -> dict[str, Any]:
            payload = self.message_payload(msg, gateway=True)
            hidden = (
                not session.intents & Intent.MESSAGE_CONTENT
                and msg.guild_id is not None
                and msg.author_id != self.bot_user_id
                and self.bot_user_id not in msg.mentions
            )
            if hidden:
                payload.update(content="", embeds=[], attachments=[], components=[])
            return payload

        return await self._dispatch_each(event, build, self._message_intent(msg), msg.guild_id)

    # ------------------------------------------------------------------ REST: meta

    async def _get_gateway(self, req: _Request) -> web.Response:
        return _json_response({"url": self.gateway_url})

    async def _get_gateway_bot(self, req: _Request) -> web.Response:
        identified = len(self.identify_payloads)
        return _json_response(
            {
                "url": self.gateway_url,
                "shards": self.shard_count,
                "session_start_limit": {
                    "total": 1000,
                    "remaining": max(1000 - identified, 0),
                    "reset_after": 14_400_000,
                    "max_concurrency": 1,
                },
            }
        )

    async def _get_me(self, req: _Request) -> web.Response:
        payload = self.user_payload(self.bot_user_id)
        payload.update(verified=True, mfa_enabled=False, locale="en-US", email=None)
        return _json_response(payload)

    async def _get_user(self, req: _Request) -> web.Response:
        uid = _as_id(req.params["user_id"], "user_id")
        if uid not in self.users:
            raise _unknown(10013, "User")
        return _json_response(self.user_payload(uid))

    def application_flags(self) -> int:
        """Application flags for the enabled privileged intents."""
        flags = 0
        for intent, flag in _APP_FLAG_FOR_INTENT.items():
            if self.enabled_privileged_intents & intent:
                flags |= flag
        return flags | (1 << 23)  # APPLICATION_COMMAND_BADGE

    async def _get_application(self, req: _Request) -> web.Response:
        bot = self.user_payload(self.bot_user_id)
        return _json_response(
            {
                "id": str(self.application_id),
                "name": bot["username"],
                "icon": None,
                "description": "",
                "summary": "",
                "type": None,
                "hook": True,
                "bot_public": True,
                "bot_require_code_grant": False,
                "verify_key": hashlib.sha256(str(self.application_id).encode()).hexdigest(),
                "flags": self.application_flags(),
                "owner": self.user_payload(self.owner_id),
                "team": None,
                "bot": bot,
                "redirect_uris": [],
                "interactions_endpoint_url": None,
                "role_connections_verification_url": None,
                "event_webhooks_url": None,
                "event_webhooks_status": 1,
                "tags": [],
                "approximate_guild_count": len(self.guilds),
                "approximate_user_install_count": 0,
                "integration_types_config": {"0": {}},
                "explicit_content_filter": 0,
            }
        )

    # ------------------------------------------------------------------ REST: commands

    def _command_scope(self, req: _Request) -> tuple[int | None, list[dict[str, Any]]]:
        if req.params["application_id"] != str(self.application_id):
            raise MISSING_ACCESS
        if "guild_id" not in req.params:
            return None, self.global_commands
        gid = _as_id(req.params["guild_id"], "guild_id")
        if gid not in self.guilds:
            raise MISSING_ACCESS
        return gid, self.guild_commands.get(gid, [])

    async def _get_commands(self, req: _Request) -> web.Response:
        _, commands = self._command_scope(req)
        return _json_response(commands)

    async def _put_commands(self, req: _Request) -> web.Response:
        guild_id, existing = self._command_scope(req)
        if not isinstance(req.json, list):
            raise _form_error("_root", "LIST_TYPE_CONVERT", "Must be an array.")
        if len(req.json) > 100:
            raise ApiError(400, 30032, "Maximum number of application commands reached (100)")
        seen: set[tuple[str, int]] = set()
        stored = []
        for i, raw in enumerate(req.json):
            cmd = self._validate_command(raw, f"{i}")
            key = (cmd["name"], cmd["type"])
            if key in seen:
                raise _form_error(
                    f"{i}.name",
                    "APPLICATION_COMMANDS_DUPLICATE_NAME",
                    "Application command names must be unique",
                )
            seen.add(key)
            old = next((c for c in existing if (c["name"], c["type"]) == key), None)
            cmd["id"] = old["id"] if old else str(self._snowflake())
            cmd["version"] = str(self._snowflake())
            cmd["application_id"] = str(self.application_id)
            if guild_id is not None:
                cmd["guild_id"] = str(guild_id)
            stored.append(cmd)
        if guild_id is None:
            self.global_commands = stored
        else:
            self.guild_commands[guild_id] = stored
        return _json_response(stored)

    def _validate_command(self, raw: Any, path: str) -> dict[str, Any]:
        if not isinstance(raw, dict):
            raise _form_error(
                path, "DICT_TYPE_CONVERT", "Only dictionaries may be used in a DictType"
            )
        ctype = int(raw.get("type") or 1)
        name = raw.get("name")
        if not isinstance(name, str) or not re.fullmatch(r"[-_\w]{1,32}", name):
            raise _form_error(
                f"{path}.name", "APPLICATION_COMMAND_INVALID_NAME", "Command name is invalid"
            )
        if ctype == 1 and name != name.lower():
            raise _form_error(
                f"{path}.name", "APPLICATION_COMMAND_INVALID_NAME", "Command name is invalid"
            )
        description = raw.get("description") or ""
        if ctype == 1 and not 1 <= len(description) <= 100:
            raise _form_error(
                f"{path}.description",
                "BASE_TYPE_BAD_LENGTH",
                "Must be between 1 and 100 in length.",
            )
        options = raw.get("options") or []
        self._validate_options(options, f"{path}.options")
        perms = raw.get("default_member_permissions")
        cmd: dict[str, Any] = {
            "type": ctype,
            "name": name,
            "name_localizations": raw.get("name_localizations"),
            "description": description,
            "description_localizations": raw.get("description_localizations"),
            "default_member_permissions": None if perms is None else str(perms),
            "nsfw": bool(raw.get("nsfw", False)),
            "contexts": raw.get("contexts"),
            "integration_types": raw.get("integration_types") or [0],
        }
        if "dm_permission" in raw:
            cmd["dm_permission"] = raw["dm_permission"]
        if options:
            cmd["options"] = options
        return cmd

    def _validate_options(self, options: list[dict[str, Any]], path: str) -> None:
        if len(options) > 25:
            raise _form_error(path, "BASE_TYPE_MAX_LENGTH", "Must be 25 or fewer in length.")
        optional_seen = False
        for i, opt in enumerate(options):
            name = opt.get("name")
            if (
                not isinstance(name, str)
                or not re.fullmatch(r"[-_\w]{1,32}", name)
                or name != name.lower()
            ):
                raise _form_error(
                    f"{path}.{i}.name",
                    "APPLICATION_COMMAND_INVALID_NAME",
                    "Command name is invalid",
                )
            if not 1 <= len(opt.get("description") or "") <= 100:
                raise _form_error(
                    f"{path}.{i}.description",
                    "BASE_TYPE_BAD_LENGTH",
                    "Must be between 1 and 100 in length.",
                )
            if opt.get("type") in (_OPTION_SUBCOMMAND, _OPTION_GROUP):
                self._validate_options(opt.get("options") or [], f"{path}.{i}.options")
                continue
            if opt.get("required"):
                if optional_seen:
                    raise _form_error(
                        f"{path}",
                        "APPLICATION_COMMAND_OPTIONS_REQUIRED_INVALID",
                        "Required options must be placed before non-required options",
                    )
            else:
                optional_seen = True

    # ------------------------------------------------------------------ REST: channels

    async def _get_channel(self, req: _Request) -> web.Response:
        channel = self._channel(req.params["channel_id"])
        if not self._can_view(channel, self.bot_user_id):
            raise MISSING_ACCESS
        return _json_response(self.channel_payload(channel.id))

    async def _edit_channel(self, req: _Request) -> web.Response:
        channel = self._channel(req.params["channel_id"])
        body = req.json if isinstance(req.json, dict) else {}
        if not self._can_view(channel, self.bot_user_id):
            raise MISSING_ACCESS
        if "name" in body and not 1 <= len(body["name"] or "") <= 100:
            raise _form_error(
                "name", "BASE_TYPE_BAD_LENGTH", "Must be between 1 and 100 in length."
            )
        if channel.type not in THREAD_TYPES:
            self._require(channel, int(Perm.MANAGE_CHANNELS))
            for key in ("name", "topic", "nsfw", "rate_limit_per_user", "position"):
                if key in body:
                    setattr(channel, key, body[key])
            if "permission_overwrites" in body:
                channel.overwrites = list(body["permission_overwrites"] or [])
            await self._dispatch_each(
                "CHANNEL_UPDATE",
                lambda s: self.channel_payload(channel.id),
                int(Intent.GUILDS),
                channel.guild_id,
            )
            return _json_response(self.channel_payload(channel.id))
        perms = self.permissions_for(self.bot_user_id, channel.id)
        moderator = bool(perms & Perm.MANAGE_THREADS)
        owner = channel.owner_id == self.bot_user_id
        if channel.archived and body.get("archived") is not False:
            raise ApiError(400, 50083, "Thread is archived")
        if "locked" in body and bool(body["locked"]) != channel.locked and not moderator:
            raise MISSING_PERMISSIONS
        if channel.locked and not moderator and body.get("archived") is False:
            raise MISSING_PERMISSIONS
        if not (moderator or owner) and set(body) & {
            "name",
            "archived",
            "auto_archive_duration",
            "invitable",
        }:
            raise MISSING_PERMISSIONS
        if "archived" in body and bool(body["archived"]) != channel.archived:
            channel.archived = bool(body["archived"])
            channel.archive_timestamp = self.now()
        for key in ("name", "locked", "invitable", "auto_archive_duration", "rate_limit_per_user"):
            if key in body and body[key] is not None:
                setattr(channel, key, body[key])
        await self._dispatch_each(
            "THREAD_UPDATE",
            lambda s: self.channel_payload(channel.id),
            int(Intent.GUILDS),
            channel.guild_id,
        )
        return _json_response(self.channel_payload(channel.id))

    async def _typing(self, req: _Request) -> web.Response:
        channel = self._channel(req.params["channel_id"])
        self._require(channel, self._send_permission(channel))
        return _no_content()

    def _send_permission(self, channel: FakeChannel) -> int:
        if channel.type in THREAD_TYPES:
            return int(Perm.SEND_MESSAGES_IN_THREADS)
        return int(Perm.SEND_MESSAGES)

    async def _check_can_send(self, channel: FakeChannel) -> None:
        self._require(channel, self._send_permission(channel))
        if channel.type == DM:
            assert channel.recipient_id is not None
            if not self.users[channel.recipient_id].accepts_dms:
                raise ApiError(403, 50007, "Cannot send messages to this user")
        if channel.type in THREAD_TYPES and channel.archived:
            if channel.locked:
                raise ApiError(400, 50083, "Thread is archived")
            channel.archived = False
            channel.archive_timestamp = self.now()
            await self._dispatch_each(
                "THREAD_UPDATE",
                lambda s: self.channel_payload(channel.id),
                int(Intent.GUILDS),
                channel.guild_id,
            )

    async def _create_message(self, req: _Request) -> web.Response:
        channel = self._channel(req.params["channel_id"])
        body = req.json if isinstance(req.json, dict) else {}
        await self._check_can_send(channel)
        self._validate_message(body, creating=True, has_files=bool(req.files))
        earlier = self._same_nonce(channel, self.bot_user_id, body)
        if earlier is not None:
            return _json_response(self.message_payload(earlier))
        reference = body.get("message_reference")
        if reference:
            ref_id = _as_id(reference.get("message_id"), "message_reference.message_id")
            ref_channel = int(reference.get("channel_id") or channel.id)
            ref = self.messages.get(ref_id)
            missing = ref is None or ref.deleted or ref.channel_id != ref_channel
            if missing and reference.get("fail_if_not_exists", True):
                raise _form_error(
                    "message_reference", "MESSAGE_REFERENCE_UNKNOWN_MESSAGE", "Unknown message"
                )
            reference = (
                None
                if missing
                else {
                    "type": int(reference.get("type") or 0),
                    "message_id": str(ref_id),
                    "channel_id": str(ref_channel),
                    **({"guild_id": str(channel.guild_id)} if channel.guild_id else {}),
                }
            )
        flags = int(body.get("flags") or 0) & (
            FLAG_SUPPRESS_EMBEDS | FLAG_SUPPRESS_NOTIFICATIONS | FLAG_COMPONENTS_V2
        )
        msg = self._store_message(
            channel,
            self.bot_user_id,
            body,
            req.files,
            flags=flags,
            type=19 if reference else 0,
            message_reference=reference,
        )
        await self._echo_message("MESSAGE_CREATE", msg)
        return _json_response(self.message_payload(msg))

    async def _list_messages(self, req: _Request) -> web.Response:
        channel = self._channel(req.params["channel_id"])
        if not self._can_view(channel, self.bot_user_id):
            raise MISSING_ACCESS
        if channel.type != DM and not (
            self.permissions_for(self.bot_user_id, channel.id) & Perm.READ_MESSAGE_HISTORY
        ):
            return _json_response([])
        limit = int(req.query.get("limit", "50"))
        if not 1 <= limit <= 100:
            raise _form_error("limit", "NUMBER_TYPE_MAX", "int value should be between 1 and 100.")
        found = [
            m
            for m in self.messages.values()
            if m.channel_id == channel.id and not m.deleted and not m.flags & FLAG_EPHEMERAL
        ]
        if "before" in req.query:
            found = [m for m in found if m.id < int(req.query["before"])]
        if "after" in req.query:
            found = sorted((m for m in found if m.id > int(req.query["after"])), key=lambda m: m.id)
            found = found[:limit]
        found = sorted(found, key=lambda m: m.id, reverse=True)[:limit]
        return _json_response([self.message_payload(m) for m in found])

    def _visible_message(self, req: _Request) -> tuple[FakeChannel, FakeMessage]:
        channel = self._channel(req.params["channel_id"])
        if not self._can_view(channel, self.bot_user_id):
            raise MISSING_ACCESS
        msg = self._message_in(channel.id, _as_id(req.params["message_id"], "message_id"))
        if msg.flags & FLAG_EPHEMERAL:
            raise _unknown(10008, "Message")
        return channel, msg

    async def _get_message(self, req: _Request) -> web.Response:
        _, msg = self._visible_message(req)
        return _json_response(self.message_payload(msg))

    async def _edit_message(self, req: _Request) -> web.Response:
        channel, msg = self._visible_message(req)
        body = req.json if isinstance(req.json, dict) else {}
        if msg.author_id != self.bot_user_id:
            raise ApiError(403, 50005, "Cannot edit a message authored by another user")
        if channel.type in THREAD_TYPES and channel.archived:
            raise ApiError(400, 50083, "Thread is archived")
        old = self.now() - msg.created_at > self.old_message_age
        if msg.edits_refused or (old and msg.old_edits >= self.old_message_edit_limit):
            raise ApiError(
                400, 30046, "Maximum number of edits to messages older than 1 hour reached."
            )
        if old:
            msg.old_edits += 1
        self._apply_edit(msg, body, req.files)
        await self._echo_message("MESSAGE_UPDATE", msg)
        return _json_response(self.message_payload(msg))

    async def _delete_message(self, req: _Request) -> web.Response:
        channel, msg = self._visible_message(req)
        if msg.author_id != self.bot_user_id:
            if channel.type == DM:
                raise ApiError(403, 50003, "Cannot execute action on a DM channel")
            self._require(channel, int(Perm.MANAGE_MESSAGES))
        if channel.type in THREAD_TYPES and channel.archived:
            raise ApiError(400, 50083, "Thread is archived")
        msg.deleted = True
        if channel.type in THREAD_TYPES:
            channel.message_count = max(channel.message_count - 1, 0)
        await self._echo_message("MESSAGE_DELETE", msg)
        return _no_content()

    # ------------------------------------------------------------------ REST: threads

    async def _create_thread(self, req: _Request) -> web.Response:
        parent = self._channel(req.params["channel_id"])
        body = req.json if isinstance(req.json, dict) else {}
        if parent.type not in (GUILD_TEXT, GUILD_ANNOUNCEMENT):
            raise ApiError(400, 50024, "Cannot execute action on this channel type")
        kind = int(body.get("type") or PRIVATE_THREAD)
        allowed = (
            {ANNOUNCEMENT_THREAD}
            if parent.type == GUILD_ANNOUNCEMENT
            else {PUBLIC_THREAD, PRIVATE_THREAD}
        )
        if kind not in allowed:
            raise _form_error(
                "type", "BASE_TYPE_CHOICES", f"Value must be one of {sorted(allowed)}."
            )
        needed = (
            Perm.CREATE_PRIVATE_THREADS if kind == PRIVATE_THREAD else Perm.CREATE_PUBLIC_THREADS
        )
        self._require(parent, int(needed))
        thread = self._new_thread(parent, kind, body)
        return await self._announce_thread(thread)

    async def _thread_from_msg(self, req: _Request) -> web.Response:
        parent = self._channel(req.params["channel_id"])
        body = req.json if isinstance(req.json, dict) else {}
        if parent.type not in (GUILD_TEXT, GUILD_ANNOUNCEMENT):
            raise ApiError(400, 50024, "Cannot execute action on this channel type")
        msg = self._message_in(parent.id, _as_id(req.params["message_id"], "message_id"))
        if msg.thread_id is not None:
            raise ApiError(400, 160004, "A thread has already been created for this message")
        self._require(parent, int(Perm.CREATE_PUBLIC_THREADS))
        kind = ANNOUNCEMENT_THREAD if parent.type == GUILD_ANNOUNCEMENT else PUBLIC_THREAD
        thread = self._new_thread(parent, kind, body, thread_id=msg.id)
        msg.thread_id = thread.id
        return await self._announce_thread(thread)

    def _new_thread(
        self, parent: FakeChannel, kind: int, body: Mapping[str, Any], thread_id: int | None = None
    ) -> FakeChannel:
        name = body.get("name")
        if not isinstance(name, str) or not 1 <= len(name) <= 100:
            raise _form_error(
                "name", "BASE_TYPE_BAD_LENGTH", "Must be between 1 and 100 in length."
            )
        duration = int(body.get("auto_archive_duration") or 1440)
        if duration not in (60, 1440, 4320, 10080):
            raise _form_error(
                "auto_archive_duration",
                "BASE_TYPE_CHOICES",
                "Value must be one of {60, 1440, 4320, 10080}.",
            )
        now = self.now()
        tid = thread_id or self._snowflake()
        thread = FakeChannel(
            tid,
            kind,
            name,
            parent.guild_id,
            parent_id=parent.id,
            owner_id=self.bot_user_id,
            invitable=bool(body.get("invitable", True)) if kind == PRIVATE_THREAD else True,
            auto_archive_duration=duration,
            archive_timestamp=now,
            create_timestamp=now,
            rate_limit_per_user=int(body.get("rate_limit_per_user") or 0),
        )
        thread.members[self.bot_user_id] = now
        self.channels[tid] = thread
        return thread

    async def _announce_thread(self, thread: FakeChannel) -> web.Response:
        payload = self.channel_payload(thread.id)
        payload["member"] = self._thread_member_payload(thread, self.bot_user_id)
        event = {**payload, "newly_created": True}
        await self._dispatch_each(
            "THREAD_CREATE", lambda s: event, int(Intent.GUILDS), thread.guild_id
        )
        return _json_response(payload, 201)

    def _thread(self, raw: str) -> FakeChannel:
        thread = self._channel(raw)
        if thread.type not in THREAD_TYPES:
            raise ApiError(400, 50024, "Cannot execute action on this channel type")
        if not self._can_view(thread, self.bot_user_id):
            raise MISSING_ACCESS
        return thread

    def _thread_user(self, thread: FakeChannel, raw: str) -> int:
        uid = self.bot_user_id if raw == "@me" else _as_id(raw, "user_id")
        assert thread.guild_id is not None
        if uid not in self.guilds[thread.guild_id].members:
            raise _unknown(10007, "Member")
        return uid

    async def _list_thread_members(self, req: _Request) -> web.Response:
        thread = self._thread(req.params["channel_id"])
        return _json_response([self._thread_member_payload(thread, u) for u in thread.members])

    async def _get_thread_member(self, req: _Request) -> web.Response:
        thread = self._thread(req.params["channel_id"])
        uid = self._thread_user(thread, req.params["user_id"])
        if uid not in thread.members:
            raise _unknown(10007, "Member")
        return _json_response(self._thread_member_payload(thread, uid))

    async def _add_thread_member(self, req: _Request) -> web.Response:
        thread = self._thread(req.params["channel_id"])
        uid = self._thread_user(thread, req.params["user_id"])
        if thread.archived:
            raise ApiError(400, 50083, "Thread is archived")
        if uid != self.bot_user_id:
            self._require(thread, int(Perm.SEND_MESSAGES_IN_THREADS))
        if uid in thread.members:
            return _no_content()
        thread.members[uid] = self.now()
        assert thread.guild_id is not None
        added = self._thread_member_payload(thread, uid)
        added["member"] = self.member_payload(thread.guild_id, uid)
        await self._thread_members_update(thread, uid, {"added_members": [added]})
        return _no_content()

    async def _remove_thread_member(self, req: _Request) -> web.Response:
        thread = self._thread(req.params["channel_id"])
        uid = self._thread_user(thread, req.params["user_id"])
        if thread.archived:
            raise ApiError(400, 50083, "Thread is archived")
        perms = self.permissions_for(self.bot_user_id, thread.id)
        is_owner = thread.owner_id == self.bot_user_id and thread.type == PRIVATE_THREAD
        if uid != self.bot_user_id and not (perms & Perm.MANAGE_THREADS or is_owner):
            raise MISSING_PERMISSIONS
        if thread.members.pop(uid, None) is not None:
            await self._thread_members_update(thread, uid, {"removed_member_ids": [str(uid)]})
        return _no_content()

    async def _thread_members_update(
        self, thread: FakeChannel, uid: int, change: dict[str, Any]
    ) -> None:
        data = {
            "id": str(thread.id),
            "guild_id": str(thread.guild_id),
            "member_count": min(len(thread.members), 50),
            **change,
        }
        # Without GUILD_MEMBERS, Discord only tells the bot about its own membership changes.
        intent = None if uid == self.bot_user_id else int(Intent.GUILD_MEMBERS)
        await self._dispatch_each("THREAD_MEMBERS_UPDATE", lambda s: data, intent, thread.guild_id)

    # ------------------------------------------------------------------ REST: users & guilds

    async def _create_dm(self, req: _Request) -> web.Response:
        body = req.json if isinstance(req.json, dict) else {}
        uid = _as_id(body.get("recipient_id"), "recipient_id")
        if uid not in self.users:
            raise _unknown(10013, "User")
        return _json_response(self.channel_payload(self.ensure_dm_channel(uid)))

    async def _get_guild(self, req: _Request) -> web.Response:
        guild = self._guild(req.params["guild_id"])
        payload = self._guild_rest_payload(guild)
        if _truthy(req.query.get("with_counts")):
            payload["approximate_member_count"] = len(guild.members)
            payload["approximate_presence_count"] = 0
        return _json_response(payload)

    async def _get_guild_channels(self, req: _Request) -> web.Response:
        guild = self._guild(req.params["guild_id"])
        return _json_response([self.channel_payload(c) for c in guild.channel_ids])

    async def _get_member(self, req: _Request) -> web.Response:
        guild = self._guild(req.params["guild_id"])
        uid = _as_id(req.params["user_id"], "user_id")
        if uid not in guild.members:
            raise _unknown(10007, "Member")
        return _json_response(self.member_payload(guild.id, uid))

    async def _get_roles(self, req: _Request) -> web.Response:
        guild = self._guild(req.params["guild_id"])
        return _json_response([self.role_payload(r) for r in guild.roles.values()])

    # ------------------------------------------------------------------ REST: interactions

    async def _callback(self, req: _Request) -> web.Response:
        try:
            inter = self.interactions.get(int(req.params["interaction_id"]))
        except ValueError:
            inter = None
        if inter is None or inter.token != req.params["interaction_token"]:
            raise _unknown(10062, "interaction")
        if inter.response_type is not None:
            raise ApiError(400, 40060, "Interaction has already been acknowledged.")
        if self.now() - inter.dispatched_at > self.interaction_ack_timeout:
            raise _unknown(10062, "interaction")
        body = req.json if isinstance(req.json, dict) else {}
        rtype = body.get("type")
        if not isinstance(rtype, int) or rtype not in _ALLOWED_CALLBACKS.get(inter.type, ()):
            raise _form_error(
                "type", "INTERACTION_RESPONSE_TYPE_INVALID", "Invalid interaction response type"
            )
        data = body.get("data") or {}
        channel = self.channels[inter.channel_id]
        message: FakeMessage | None = None
        if rtype == 4:
            self._validate_message(data, creating=True, has_files=bool(req.files))
            flags = int(data.get("flags") or 0) & (
                FLAG_EPHEMERAL
                | FLAG_SUPPRESS_EMBEDS
                | FLAG_SUPPRESS_NOTIFICATIONS
                | FLAG_COMPONENTS_V2
            )
            message = self._interaction_message(inter, channel, data, req.files, flags)
        elif rtype == 5:
            flags = FLAG_LOADING | (int(data.get("flags") or 0) & FLAG_EPHEMERAL)
            message = self._interaction_message(inter, channel, {}, [], flags)
        elif rtype == 7:
            message = self.messages.get(inter.message_id or 0)
            if message is None or message.deleted:
                raise _unknown(10008, "Message")
            self._apply_edit(message, data, req.files)
        elif rtype == 8 and len(data.get("choices") or []) > 25:
            raise _form_error(
                "data.choices", "BASE_TYPE_MAX_LENGTH", "Must be 25 or fewer in length."
            )
        elif rtype == 9:
            self._validate_modal(data)
        inter.response_type = rtype
        if message is not None and rtype in (4, 5):
            inter.original_message_id = message.id
        self._record_response(inter, "callback", rtype, data, message)
        if message is not None:
            await self._echo_message("MESSAGE_UPDATE" if rtype == 7 else "MESSAGE_CREATE", message)
        if not _truthy(req.query.get("with_response")):
            return _no_content()
        summary: dict[str, Any] = {"id": str(inter.id), "type": inter.type}
        out: dict[str, Any] = {"interaction": summary}
        if message is not None:
            summary.update(
                response_message_id=str(message.id),
                response_message_loading=bool(message.flags & FLAG_LOADING),
                response_message_ephemeral=bool(message.flags & FLAG_EPHEMERAL),
            )
            out["resource"] = {"type": rtype, "message": self.message_payload(message)}
        return _json_response(out)

    @staticmethod
    def _validate_modal(data: Mapping[str, Any]) -> None:
        if not data.get("custom_id") or len(data["custom_id"]) > 100:
            raise _form_error(
                "data.custom_id", "BASE_TYPE_BAD_LENGTH", "Must be between 1 and 100 in length."
            )
        if not 1 <= len(data.get("title") or "") <= 45:
            raise _form_error(
                "data.title", "BASE_TYPE_BAD_LENGTH", "Must be between 1 and 45 in length."
            )
        if not 1 <= len(data.get("components") or []) <= 5:
            raise _form_error(
                "data.components", "BASE_TYPE_BAD_LENGTH", "Must be between 1 and 5 in length."
            )

    def _interaction_message(
        self,
        inter: FakeInteraction,
        channel: FakeChannel,
        data: Mapping[str, Any],
        files: list[dict[str, Any]],
        flags: int,
    ) -> FakeMessage:
        return self._store_message(
            channel,
            self.bot_user_id,
            data,
            files,
            flags=flags,
            type=20 if inter.type == 2 else 0,
            webhook_id=self.application_id,
            application_id=self.application_id,
            interaction_id=inter.id,
        )

    def _record_response(
        self,
        inter: FakeInteraction,
        kind: str,
        rtype: int | None,
        data: Any,
        message: FakeMessage | None,
    ) -> None:
        self.interaction_responses.setdefault(inter.id, []).append(
            {
                "kind": kind,
                "type": rtype,
                "data": data,
                "at": self.now(),
                "message_id": message.id if message is not None else None,
            }
        )

    def _webhook_interaction(self, req: _Request) -> FakeInteraction:
        if req.params["webhook_id"] != str(self.application_id):
            raise _unknown(10015, "Webhook")
        token = req.params["webhook_token"]
        inter = next((i for i in self.interactions.values() if i.token == token), None)
        if inter is None:
            raise _unknown(10015, "Webhook")
        if self.now() - inter.dispatched_at > self.interaction_token_ttl:
            raise ApiError(401, 50027, "Invalid Webhook Token")
        if inter.response_type is None:
            raise _unknown(10015, "Webhook")
        return inter

    def _webhook_message(self, inter: FakeInteraction, raw: str) -> FakeMessage:
        if raw == "@original":
            mid = inter.original_message_id
            if mid is None and inter.response_type in (6, 7):
                mid = inter.message_id
        else:
            mid = _as_id(raw, "message_id")
            if mid not in inter.followup_ids and mid != inter.original_message_id:
                mid = None
        msg = self.messages.get(mid or 0)
        if msg is None or msg.deleted:
            raise _unknown(10008, "Message")
        return msg

    async def _followup(self, req: _Request) -> web.Response:
        inter = self._webhook_interaction(req)
        body = req.json if isinstance(req.json, dict) else {}
        self._validate_message(body, creating=True, has_files=bool(req.files))
        channel = self.channels[inter.channel_id]
        original = self.messages.get(inter.original_message_id or 0)
        if original is not None and original.flags & FLAG_LOADING and not inter.followup_ids:
            # The first follow-up after a "thinking" defer replaces the loading message.
            self._apply_edit(original, body, req.files)
            msg = original
            await self._echo_message("MESSAGE_UPDATE", msg)
        else:
            flags = int(body.get("flags") or 0) & (
                FLAG_EPHEMERAL
                | FLAG_SUPPRESS_EMBEDS
                | FLAG_SUPPRESS_NOTIFICATIONS
                | FLAG_COMPONENTS_V2
            )
            msg = self._interaction_message(inter, channel, body, req.files, flags)
            await self._echo_message("MESSAGE_CREATE", msg)
        inter.followup_ids.append(msg.id)
        self._record_response(inter, "followup", None, body, msg)
        if not _truthy(req.query.get("wait")):
            return _no_content()
        return _json_response(self.message_payload(msg))

    async def _wh_get(self, req: _Request) -> web.Response:
        inter = self._webhook_interaction(req)
        return _json_response(
            self.message_payload(self._webhook_message(inter, req.params["message_id"]))
        )

    async def _wh_edit(self, req: _Request) -> web.Response:
        inter = self._webhook_interaction(req)
        msg = self._webhook_message(inter, req.params["message_id"])
        body = req.json if isinstance(req.json, dict) else {}
        self._apply_edit(msg, body, req.files)
        kind = "edit_original" if req.params["message_id"] == "@original" else "edit_followup"
        self._record_response(inter, kind, None, body, msg)
        await self._echo_message("MESSAGE_UPDATE", msg)
        return _json_response(self.message_payload(msg))

    async def _wh_del(self, req: _Request) -> web.Response:
        inter = self._webhook_interaction(req)
        msg = self._webhook_message(inter, req.params["message_id"])
        msg.deleted = True
        self._record_response(inter, "delete", None, None, msg)
        await self._echo_message("MESSAGE_DELETE", msg)
        return _no_content()

    # ------------------------------------------------------------------ gateway

    async def _handle_gateway(self, request: web.Request) -> web.StreamResponse:
        self.gateway_connections.append({"path": request.path, "query": dict(request.query)})
        down = self._gateway_down
        if down is not None and down[0] == "http":
            self.refused_gateway_connections += 1
            self._notify()
            return web.Response(status=down[1], text="gateway unavailable")
        ws = web.WebSocketResponse(max_msg_size=0)
        await ws.prepare(request)
        if down is not None and down[0] == "close":
            self.refused_gateway_connections += 1
            await ws.close(code=down[2], message=b"fake: gateway down")
            self._notify()
            return ws
        if down is not None:
            return await self._stall(ws)
        self._sockets.add(ws)
        session: _Session | None = None
        try:
            if request.query.get("encoding", "json") != "json":
                await ws.close(code=4002, message=b"Error while decoding payload.")
                return ws
            await self._send_frame(
                ws,
                {
                    "op": 10,
                    "s": None,
                    "t": None,
                    "d": {
                        "heartbeat_interval": self.heartbeat_interval_ms,
                        "_trace": ["fake-gateway"],
                    },
                },
            )
            async for msg in ws:
                if msg.type is not WSMsgType.TEXT:
                    await ws.close(code=4002, message=b"Error while decoding payload.")
                    break
                try:
                    frame = json.loads(msg.data)
                except json.JSONDecodeError:
                    await ws.close(code=4002, message=b"Error while decoding payload.")
                    break
                session = await self._gateway_op(ws, frame, session)
        finally:
            self._sockets.discard(ws)
            dropped = ws in self._dropping
            self._dropping.discard(ws)
            if session is not None and session.ws is ws:
                session.ws = None
                if not dropped and ws.close_code in (1000, 1001):
                    self._sessions.pop(session.id, None)
            self._notify()
        return ws

    async def _stall(self, ws: web.WebSocketResponse) -> web.WebSocketResponse:
        """HELLO, then silence: IDENTIFY / RESUME count as refused and get no answer."""
        self._stalled.add(ws)
        try:
            hello = {"heartbeat_interval": self.heartbeat_interval_ms, "_trace": ["fake-stall"]}
            await self._send_frame(ws, {"op": 10, "s": None, "t": None, "d": hello})
            async for msg in ws:
                with contextlib.suppress(json.JSONDecodeError, TypeError, AttributeError):
                    if json.loads(msg.data).get("op") in (2, 6):
                        self.refused_gateway_connections += 1
                        self._notify()
        finally:
            self._stalled.discard(ws)
        return ws

    async def _gateway_op(
        self, ws: web.WebSocketResponse, frame: dict[str, Any], session: _Session | None
    ) -> _Session | None:
        op, data = frame.get("op"), frame.get("d")
        if op == 1:
            await self._send_frame(ws, {"op": 11, "s": None, "t": None, "d": None})
        elif op == 2:
            if session is not None:
                await ws.close(code=4005, message=b"Already authenticated.")
                return session
            return await self._identify(ws, data if isinstance(data, dict) else {})
        elif op == 6:
            return await self._resume(ws, data if isinstance(data, dict) else {})
        elif op == 3:
            self.presence_updates.append(data)
        elif op == 8:
            if session is None:
                await ws.close(code=4003, message=b"Not authenticated.")
            else:
                await self._members_chunk(session, data if isinstance(data, dict) else {})
        elif op == 4:
            pass  # op 4 (voice state update) is accepted and ignored: the bot uses no voice
        else:
            await ws.close(code=4001, message=b"Unknown opcode.")
        return session

    async def _identify(self, ws: web.WebSocketResponse, data: dict[str, Any]) -> _Session | None:
        if data.get("token") != self.token:
            await ws.close(code=4004, message=b"Authentication failed.")
            return None
        intents = data.get("intents")
        if not isinstance(intents, int) or intents < 0:
            await ws.close(code=4013, message=b"Invalid intent(s).")
            return None
        if intents & PRIVILEGED_INTENTS & ~self.enabled_privileged_intents:
            await ws.close(code=4014, message=b"Disallowed intent(s).")
            return None
        shard = data.get("shard") or [0, 1]
        if len(shard) != 2 or shard[1] != self.shard_count or not 0 <= shard[0] < shard[1]:
            await ws.close(code=4010, message=b"Invalid shard.")
            return None
        self.identify_payloads.append(data)
        session = _Session(
            secrets.token_hex(16),
            intents,
            (shard[0], shard[1]),
            int(data.get("large_threshold") or 50),
        )
        session.ws = ws
        self._sessions[session.id] = session
        guild_ids = [g for g in self.guilds if self._shard_of(g) == session.shard[0]]
        ready = {
            "v": API_VERSION,
            "user": {**self.user_payload(self.bot_user_id), "verified": True, "mfa_enabled": False},
            "guilds": [{"id": str(g), "unavailable": True} for g in guild_ids],
            "session_id": session.id,
            "session_type": "normal",
            "resume_gateway_url": self.resume_gateway_url,
            "shard": list(session.shard),
            "application": {"id": str(self.application_id), "flags": self.application_flags()},
            "private_channels": [],
            "relationships": [],
            "presences": [],
            "guild_join_requests": [],
            "geo_ordered_rtc_regions": ["us-east"],
            "user_settings": {},
            "auth": {},
            "_trace": ["fake-gateway"],
        }
        await self._emit(session, "READY", ready)
        for gid in guild_ids:
            await self._emit(session, "GUILD_CREATE", self.guild_payload(gid, intents=intents))
        session.ready = True
        self._notify()
        return session

    async def _resume(self, ws: web.WebSocketResponse, data: dict[str, Any]) -> _Session | None:
        session = self._sessions.get(str(data.get("session_id")))
        seq = data.get("seq")
        can_replay = (
            session is not None
            and data.get("token") == self.token
            and isinstance(seq, int)
            and (seq == session.seq or any(f["s"] == seq + 1 for f in session.buffer))
        )
        if not can_replay or session is None:
            await self._send_frame(ws, {"op": 9, "s": None, "t": None, "d": False})
            return None
        assert isinstance(seq, int)
        async with session.lock:
            session.ws = ws
            for frame in list(session.buffer):
                if frame["s"] > seq:
                    await self._send_frame(ws, frame)
        self.resumes += 1
        await self._emit(session, "RESUMED", {"_trace": ["fake-gateway"]})
        self._notify()
        return session

    async def _members_chunk(self, session: _Session, data: dict[str, Any]) -> None:
        gid = int(data.get("guild_id") or 0)
        guild = self.guilds.get(gid)
        if guild is None:
            return
        if data.get("user_ids"):
            wanted = {int(u) for u in data["user_ids"]}
            uids = [u for u in guild.members if u in wanted]
        elif session.intents & Intent.GUILD_MEMBERS:
            query = str(data.get("query") or "").lower()
            uids = [u for u in guild.members if self.users[u].username.lower().startswith(query)]
            if data.get("limit"):
                uids = uids[: int(data["limit"])]
        else:
            uids = []
        chunk: dict[str, Any] = {
            "guild_id": str(gid),
            "members": [self.member_payload(gid, u) for u in uids],
            "chunk_index": 0,
            "chunk_count": 1,
            "not_found": [],
        }
        if data.get("nonce") is not None:
            chunk["nonce"] = data["nonce"]
        await self._emit(session, "GUILD_MEMBERS_CHUNK", chunk)

    def _shard_of(self, guild_id: int) -> int:
        return (guild_id >> 22) % self.shard_count

    @staticmethod
    async def _send_frame(ws: web.WebSocketResponse, frame: dict[str, Any]) -> None:
        if ws.closed:
            return
        with contextlib.suppress(ConnectionError, RuntimeError):
            await ws.send_str(json.dumps(frame))

    async def _emit(self, session: _Session, event: str, data: Any) -> None:
        async with session.lock:
            session.seq += 1
            frame = {"op": 0, "t": event, "s": session.seq, "d": data}
            session.buffer.append(frame)
            if session.ws is not None:
                await self._send_frame(session.ws, frame)

    async def _dispatch_each(
        self,
        event: str,
        build: Callable[[_Session], Any],
        intent: int | None,
        guild_id: int | None,
    ) -> int:
        delivered = 0
        for session in list(self._sessions.values()):
            if intent is not None and not session.intents & intent:
                continue
            if guild_id is not None and self._shard_of(guild_id) != session.shard[0]:
                continue
            data = build(session)
            if not delivered:
                self.dispatched.append((event, data))
            await self._emit(session, event, data)
            delivered += 1
        return delivered

    async def dispatch(self, event: str, data: Any, *, intent: int | None = None) -> int:
        """Send an op-0 dispatch to every identified client; returns how many got it."""
        gid = data.get("guild_id") if isinstance(data, dict) else None
        return await self._dispatch_each(event, lambda s: data, intent, int(gid) if gid else None)

    async def drop_connections(self, code: int = 4000) -> None:
        """Close every gateway socket from the server side; sessions stay resumable."""
        for ws in list(self._sockets):
            self._dropping.add(ws)
            with contextlib.suppress(Exception):
                await ws.close(code=code, message=b"fake: dropped")

    async def take_gateway_down(
        self, mode: str = "close", *, http_status: int = 503, close_code: int = 4000
    ) -> None:
        """Drop every gateway connection (sessions stay resumable) and refuse new ones until
        :meth:`bring_gateway_up`: ``"close"`` accepts them and closes at once with
        ``close_code``, ``"http"`` answers the upgrade with ``http_status``, ``"stall"`` says
        HELLO and then nothing."""
        if mode not in ("close", "http", "stall"):
            raise ValueError(f"unknown gateway outage mode {mode!r}")
        self._gateway_down = (mode, http_status, close_code)
        await self.drop_connections(code=close_code)

    async def bring_gateway_up(self) -> None:
        """Accept gateway connections again (resumes and identifies work as before); stalled
        ones are closed (4000) so that the client reconnects now."""
        self._gateway_down = None
        for ws in list(self._stalled):
            with contextlib.suppress(Exception):
                await ws.close(code=4000, message=b"fake: gateway back")

    async def delete_message(self, channel_id: int | str, message_id: int | str) -> None:
        """Someone else (a moderator) deletes a message: MESSAGE_DELETE; 10008 afterwards."""
        msg = self._message_in(int(channel_id), int(message_id))
        msg.deleted = True
        channel = self.channels[msg.channel_id]
        if channel.type in THREAD_TYPES:
            channel.message_count = max(channel.message_count - 1, 0)
        data: dict[str, Any] = {"id": str(msg.id), "channel_id": str(msg.channel_id)}
        if msg.guild_id is not None:
            data["guild_id"] = str(msg.guild_id)
        await self._dispatch_each(
            "MESSAGE_DELETE", lambda s: data, self._message_intent(msg), msg.guild_id
        )
        self._notify()

    # ------------------------------------------------------------------ user-side events

    async def send_message(
        self,
        channel_id: int | str,
        author_id: int | str,
        content: str,
        message_id: int | str | None = None,
        *,
        embeds: list[dict[str, Any]] | None = None,
        reply_to: int | str | None = None,
    ) -> int:
        """A user posts a message: MESSAGE_CREATE with a full message object; returns its id.

        Passing an existing ``message_id`` re-dispatches that message (duplicate delivery).
        """
        self._require_client()
        channel = self.channels[int(channel_id)]
        uid = int(author_id)
        if message_id is not None and int(message_id) in self.messages:
            msg = self.messages[int(message_id)]
        else:
            self._check_user_can_post(channel, uid)
            reference = None
            if reply_to is not None:
                reference = {"type": 0, "message_id": str(reply_to), "channel_id": str(channel.id)}
                if channel.guild_id is not None:
                    reference["guild_id"] = str(channel.guild_id)
            msg = self._store_message(
                channel,
                uid,
                {"content": content, "embeds": embeds or []},
                [],
                message_id=int(message_id) if message_id is not None else None,
                type=19 if reference else 0,
                message_reference=reference,
            )
            if channel.type in (PUBLIC_THREAD, ANNOUNCEMENT_THREAD):
                channel.members.setdefault(uid, self.now())
        await self._dispatch_message("MESSAGE_CREATE", msg)
        return msg.id

    def _check_user_can_post(self, channel: FakeChannel, uid: int) -> None:
        if uid not in self.users:
            raise KeyError(f"unknown user {uid}")
        if channel.type == DM:
            if channel.recipient_id != uid:
                raise PermissionError(f"user {uid} is not in DM channel {channel.id}")
            return
        if not self._can_view(channel, uid):
            raise PermissionError(f"user {uid} cannot see channel {channel.id}")
        if not self.permissions_for(uid, channel.id) & self._send_permission(channel):
            raise PermissionError(f"user {uid} cannot post in channel {channel.id}")
        if channel.type in THREAD_TYPES and channel.locked:
            raise PermissionError(f"thread {channel.id} is locked")

    def _require_client(self) -> None:
        if not any(s.ws is not None for s in self._sessions.values()):
            raise RuntimeError("no gateway client is connected to the fake")

    def find_command(
        self, name: str, guild_id: int | None = None, ctype: int = 1
    ) -> dict[str, Any]:
        """A synced command (guild commands first, then global); LookupError if not synced."""
        pools = []
        if guild_id is not None:
            pools.append(self.guild_commands.get(int(guild_id), []))
        pools.append(self.global_commands)
        for pool in pools:
            for cmd in pool:
                if cmd["name"] == name and cmd["type"] == ctype:
                    return cmd
        raise LookupError(f"command {name!r} was never synced to the fake")

    async def send_slash_command(
        self,
        guild_id: int | str | None,
        channel_id: int | str,
        user_id: int | str,
        name: str = "interview",
        subcommand: str | None = "start",
        options: Mapping[str, Any] | list[dict[str, Any]] | None = None,
        *,
        group: str | None = None,
        locale: str = "en-US",
        check_permissions: bool = True,
    ) -> int:
        """A user runs ``/name [group] subcommand options``: type-2 INTERACTION_CREATE.

        ``options`` maps option names to values (types come from the synced command; users,
        members, roles and channels are resolved) or is a raw option list. Returns the
        interaction id.
        """
        gid = int(guild_id) if guild_id is not None else None
        cmd = self.find_command(name, gid)
        uid = int(user_id)
        if check_permissions and gid is not None and cmd.get("default_member_permissions"):
            needed = int(cmd["default_member_permissions"])
            if (self.permissions_for(uid, int(channel_id)) & needed) != needed:
                raise PermissionError(
                    f"user {uid} may not use /{name} (default_member_permissions)"
                )
        leaf, resolved = self._build_options(cmd, group, subcommand, options, gid, focused=None)
        data: dict[str, Any] = {"id": cmd["id"], "name": name, "type": 1, "options": leaf}
        if resolved:
            data["resolved"] = resolved
        if cmd.get("guild_id"):
            data["guild_id"] = cmd["guild_id"]
        return await self._send_interaction(
            2, gid, int(channel_id), uid, data, name=name, locale=locale
        )

    async def send_autocomplete(
        self,
        guild_id: int | str | None,
        channel_id: int | str,
        user_id: int | str,
        name: str,
        subcommand: str | None,
        options: Mapping[str, Any],
        focused: str,
        *,
        group: str | None = None,
    ) -> int:
        """A user types in option ``focused``: type-4 INTERACTION_CREATE; returns its id."""
        gid = int(guild_id) if guild_id is not None else None
        cmd = self.find_command(name, gid)
        leaf, _ = self._build_options(cmd, group, subcommand, options, gid, focused=focused)
        data: dict[str, Any] = {"id": cmd["id"], "name": name, "type": 1, "options": leaf}
        if cmd.get("guild_id"):
            data["guild_id"] = cmd["guild_id"]
        return await self._send_interaction(4, gid, int(channel_id), int(user_id), data, name=name)

    def _build_options(
        self,
        cmd: dict[str, Any],
        group: str | None,
        subcommand: str | None,
        options: Mapping[str, Any] | list[dict[str, Any]] | None,
        guild_id: int | None,
        focused: str | None,
    ) -> tuple[list[dict[str, Any]], dict[str, Any]]:
        schema = cmd.get("options") or []
        path: list[tuple[str, int]] = []
        for part, kind in ((group, _OPTION_GROUP), (subcommand, _OPTION_SUBCOMMAND)):
            if part is None:
                continue
            node = next((o for o in schema if o["name"] == part and o["type"] == kind), None)
            if node is None:
                raise LookupError(
                    f"/{cmd['name']} has no {'group' if kind == 2 else 'subcommand'} {part!r}"
                )
            schema = node.get("options") or []
            path.append((part, kind))
        resolved: dict[str, Any] = {}
        if isinstance(options, list):
            leaf = [dict(o) for o in options]
            for o in leaf:
                self._resolve(o["type"], o["value"], guild_id, resolved)
        else:
            leaf = self._typed_options(schema, dict(options or {}), guild_id, resolved, focused)
        for part, kind in reversed(path):
            leaf = [{"name": part, "type": kind, "options": leaf}]
        return leaf, resolved

    def _typed_options(
        self,
        schema: list[dict[str, Any]],
        values: dict[str, Any],
        guild_id: int | None,
        resolved: dict[str, Any],
        focused: str | None,
    ) -> list[dict[str, Any]]:
        by_name = {o["name"]: o for o in schema}
        unknown = set(values) - set(by_name)
        if unknown:
            raise ValueError(f"unknown options {sorted(unknown)}")
        if focused is None:
            missing = [o["name"] for o in schema if o.get("required") and o["name"] not in values]
            if missing:
                raise ValueError(f"missing required options {missing}")
        out = []
        for name, value in values.items():
            opt = by_name[name]
            kind = int(opt["type"])
            if name == focused:
                out.append({"name": name, "type": kind, "value": str(value), "focused": True})
                continue
            converted = self._convert(kind, value)
            choices = opt.get("choices")
            if choices and converted not in [c["value"] for c in choices]:
                raise ValueError(f"{value!r} is not a choice of option {name!r}")
            self._check_bounds(opt, converted)
            self._resolve(kind, converted, guild_id, resolved)
            out.append({"name": name, "type": kind, "value": converted})
        return out

    @staticmethod
    def _check_bounds(opt: Mapping[str, Any], value: Any) -> None:
        """Discord's client sends no number outside ``min_value``/``max_value`` and no string
        outside ``min_length``/``max_length``: the user cannot submit it. (A raw option list
        skips this, as a client that ignored the bounds would.)"""
        name = opt["name"]
        if isinstance(value, int | float) and not isinstance(value, bool):
            low, high = opt.get("min_value"), opt.get("max_value")
            if (low is not None and value < low) or (high is not None and value > high):
                raise ValueError(f"{value!r} is outside [{low}, {high}] of option {name!r}")
        if isinstance(value, str):
            shortest, longest = opt.get("min_length"), opt.get("max_length")
            if (shortest is not None and len(value) < shortest) or (
                longest is not None and len(value) > longest
            ):
                raise ValueError(f"{value!r} has a length outside the bounds of {name!r}")

    @staticmethod
    def _convert(kind: int, value: Any) -> Any:
        if kind == 3:
            return str(value)
        if kind == 4:
            return int(value)
        if kind == 5:
            return bool(value)
        if kind == 10:
            return float(value)
        return str(value)

    def _resolve(
        self, kind: int, value: Any, guild_id: int | None, resolved: dict[str, Any]
    ) -> None:
        if kind in (6, 9) and int(value) in self.users:
            uid = int(value)
            resolved.setdefault("users", {})[str(uid)] = self.user_payload(uid)
            guild = self.guilds.get(guild_id or 0)
            if guild is not None and uid in guild.members:
                member = self.member_payload(guild.id, uid, with_user=False)
                member["permissions"] = str(self.guild_permissions(guild.id, uid))
                resolved.setdefault("members", {})[str(uid)] = member
            return
        if kind in (8, 9) and guild_id is not None and int(value) in self.guilds[guild_id].roles:
            role = self.guilds[guild_id].roles[int(value)]
            resolved.setdefault("roles", {})[str(role.id)] = self.role_payload(role)
            return
        if kind == 7 and int(value) in self.channels:
            payload = self.channel_payload(int(value))
            payload["permissions"] = str(self.permissions_for(self.bot_user_id, int(value)))
            resolved.setdefault("channels", {})[str(value)] = payload

    async def send_component_click(
        self,
        custom_id: str,
        message_id: int | str,
        channel_id: int | str,
        user_id: int | str,
        guild_id: int | str | None,
        *,
        component_type: int = 2,
        values: list[str] | None = None,
    ) -> int:
        """A user clicks a button (or picks select ``values``) on a stored message: type 3."""
        msg = self._message_in(int(channel_id), int(message_id))
        data: dict[str, Any] = {"custom_id": custom_id, "component_type": component_type}
        if values is not None:
            data["values"] = list(values)
        return await self._send_interaction(
            3,
            int(guild_id) if guild_id is not None else None,
            int(channel_id),
            int(user_id),
            data,
            message=msg,
        )

    async def send_modal_submit(
        self,
        custom_id: str,
        values: Mapping[str, str],
        channel_id: int | str,
        user_id: int | str,
        guild_id: int | str | None,
        *,
        message_id: int | str | None = None,
    ) -> int:
        """A user submits a modal (text inputs ``custom_id -> value``): type 5."""
        rows = [
            {"type": 1, "components": [{"type": 4, "custom_id": cid, "value": value}]}
            for cid, value in values.items()
        ]
        msg = self._message_in(int(channel_id), int(message_id)) if message_id else None
        return await self._send_interaction(
            5,
            int(guild_id) if guild_id is not None else None,
            int(channel_id),
            int(user_id),
            {"custom_id": custom_id, "components": rows},
            message=msg,
        )

    async def _send_interaction(
        self,
        itype: int,
        guild_id: int | None,
        channel_id: int,
        user_id: int,
        data: dict[str, Any],
        *,
        message: FakeMessage | None = None,
        name: str | None = None,
        locale: str = "en-US",
    ) -> int:
        self._require_client()
        channel = self.channels[channel_id]
        if user_id not in self.users:
            raise KeyError(f"unknown user {user_id}")
        if not self._can_view(channel, user_id):
            raise PermissionError(f"user {user_id} cannot see channel {channel_id}")
        iid = self._snowflake()
        raw_token = f"interaction:{iid}:{secrets.token_urlsafe(48)}".encode()
        token = base64.urlsafe_b64encode(raw_token).decode().rstrip("=")
        channel_payload = self.channel_payload(channel_id)
        payload: dict[str, Any] = {
            "id": str(iid),
            "application_id": str(self.application_id),
            "type": itype,
            "data": data,
            "channel_id": str(channel_id),
            "channel": channel_payload,
            "token": token,
            "version": 1,
            "locale": locale,
            "entitlements": [],
            "entitlement_sku_ids": [],
            "authorizing_integration_owners": self._integration_owners(guild_id),
            "attachment_size_limit": 10 * 1024 * 1024,
        }
        if guild_id is not None:
            guild = self.guilds[guild_id]
            perms = self.permissions_for(user_id, channel_id)
            channel_payload["permissions"] = str(perms)
            member = self.member_payload(guild_id, user_id)
            member["permissions"] = str(perms)
            payload.update(
                guild_id=str(guild_id),
                guild={"id": str(guild_id), "locale": "en-US", "features": list(guild.features)},
                guild_locale="en-US",
                member=member,
                app_permissions=str(self.permissions_for(self.bot_user_id, channel_id)),
                context=0,
            )
        else:
            payload.update(
                user=self.user_payload(user_id),
                app_permissions=str(self.permissions_for(self.bot_user_id, channel_id)),
                context=1,
            )
        if message is not None:
            payload["message"] = self.message_payload(message)
        inter = FakeInteraction(
            iid,
            token,
            itype,
            guild_id,
            channel_id,
            user_id,
            self.now(),
            name=name,
            message_id=message.id if message is not None else None,
        )
        self.interactions[iid] = inter
        shard = self._shard_of(guild_id) if guild_id is not None else 0  # DMs: shard 0
        targets = [s for s in self._sessions.values() if s.ws is not None and s.shard[0] == shard]
        if not targets:
            raise RuntimeError("no gateway client handles this guild")
        if not self.interactions_to_every_session:
            targets = targets[:1]
        inter.dispatched_at = self.now()
        self.dispatched.append(("INTERACTION_CREATE", payload))
        for target in targets:
            await self._emit(target, "INTERACTION_CREATE", payload)
        return iid
