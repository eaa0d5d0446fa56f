"""The Slack fake, driven by the real slack_sdk client and a real Bolt app."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator, Sequence
from typing import Any
from urllib.parse import parse_qs

import aiohttp
import pytest
from slack_bolt.async_app import AsyncApp
from slack_bolt.request.async_request import AsyncBoltRequest
from slack_sdk.errors import SlackApiError
from slack_sdk.http_retry.builtin_async_handlers import (
    AsyncConnectionErrorRetryHandler,
    AsyncRateLimitErrorRetryHandler,
)
from slack_sdk.signature import SignatureVerifier
from slack_sdk.web.async_client import AsyncWebClient
from slack_sdk.webhook.async_client import AsyncWebhookClient

from bench.fakes import slack_signing as signing
from bench.fakes.slack_server import DEFAULT_LIMITS, FakeSlack

BoltHeaders = dict[str, str | Sequence[str]]
TOKEN = "xoxb-test"
SECRET = "8f742231b10e8888abcd99yyyzzz85a5"
MODAL = {
    "type": "modal",
    "callback_id": "answer",
    "title": {"type": "plain_text", "text": "Answer"},
    "blocks": [{"type": "input", "block_id": "a", "element": {"type": "plain_text_input"}}],
}


class ManualClock:
    """A monotonic clock the test moves by hand."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


@pytest.fixture
async def fake() -> AsyncIterator[FakeSlack]:
    async with FakeSlack() as server:
        yield server


@pytest.fixture
def client(fake: FakeSlack) -> AsyncWebClient:
    return AsyncWebClient(token=TOKEN, base_url=fake.api_url)


async def api_error(call: Any) -> SlackApiError:
    """Await ``call`` and return the SlackApiError it raises."""
    with pytest.raises(SlackApiError) as info:
        await call
    return info.value


async def test_auth_test_and_auth_errors(fake: FakeSlack, client: AsyncWebClient) -> None:
    resp = await client.auth_test()
    assert resp["team_id"] == "T0001"
    assert resp["user_id"] == "UBOT"
    assert resp["bot_id"] == "B0001"
    assert resp["is_enterprise_install"] is False
    assert resp["url"].startswith("https://")
    assert "chat:write" in resp.headers["X-OAuth-Scopes"]

    wrong = AsyncWebClient(token="xoxb-wrong", base_url=fake.api_url)
    err = await api_error(wrong.auth_test())
    assert (err.response.status_code, err.response["error"]) == (200, "invalid_auth")
    anonymous = AsyncWebClient(base_url=fake.api_url)
    assert (await api_error(anonymous.auth_test())).response["error"] == "not_authed"
    assert (await api_error(client.api_call("foo.bar"))).response["error"] == "unknown_method"
    assert [c.method for c in fake.calls] == ["auth.test"] * 3 + ["foo.bar"]


async def test_conversations_open_returns_stable_ids(
    fake: FakeSlack, client: AsyncWebClient
) -> None:
    dm = (await client.conversations_open(users="U1"))["channel"]["id"]
    assert dm.startswith("D")
    again = await client.conversations_open(users=["UBOT", "U1"])
    assert again["channel"]["id"] == dm
    assert again["already_open"] is True

    group = (await client.conversations_open(users="U2,U1"))["channel"]
    assert group["id"][0] in "GC"
    assert group["is_mpim"] is True
    assert (await client.conversations_open(users=["U1", "U2"]))["channel"]["id"] == group["id"]
    assert fake.conversation_with("U1", "U2") == group["id"]

    info = (await client.conversations_info(channel=group["id"]))["channel"]
    assert info["num_members"] == 3
    assert (await client.conversations_info(channel=dm))["channel"]["user"] == "U1"
    assert (await api_error(client.conversations_open(users="bob"))).response[
        "error"
    ] == "user_not_found"
    assert fake.calls_to("conversations.open")[0].params["users"] == "U1"


async def test_post_update_and_threads(fake: FakeSlack, client: AsyncWebClient) -> None:
    dm = (await client.conversations_open(users="U1,U2"))["channel"]["id"]
    first = await client.chat_postMessage(channel=dm, text="Welcome")
    assert first["message"]["bot_id"] == "B0001"
    reply = await client.chat_postMessage(channel=dm, text="In thread", thread_ts=first["ts"])
    assert first["ts"] < reply["ts"]
    assert first["ts"].startswith("1700000000.")

    blocks = [{"type": "section", "text": {"type": "mrkdwn", "text": "*10 min* left"}}]
    updated = await client.chat_update(channel=dm, ts=first["ts"], text="10 min", blocks=blocks)
    assert updated["text"] == "10 min"
    assert "edited" in updated["message"]

    stored = fake.message(dm, first["ts"])
    assert (stored.text, stored.blocks, stored.edited) == ("10 min", blocks, True)
    assert [h["text"] for h in stored.history] == ["Welcome"]
    assert stored.reply_count == 1
    assert [m.ts for m in fake.channel_messages(dm)] == [first["ts"]]
    assert [m.text for m in fake.thread(dm, first["ts"])] == ["10 min", "In thread"]

    # The same method form-encoded (blocks as a JSON string), token in the Authorization header.
    await client.api_call("chat.postMessage", data={"channel": dm, "blocks": json.dumps(blocks)})
    assert fake.channel_messages(dm)[-1].blocks == blocks
    # And with the token as a form field.
    async with aiohttp.ClientSession() as http:
        form = {"token": TOKEN, "channel": dm, "text": "raw"}
        async with http.post(f"{fake.api_url}chat.postMessage", data=form) as res:
            assert (await res.json())["ok"] is True

    await client.chat_delete(channel=dm, ts=reply["ts"])
    assert [m.text for m in fake.deleted] == ["In thread"]
    assert fake.message(dm, first["ts"]).reply_count == 0


async def test_error_answers(fake: FakeSlack, client: AsyncWebClient) -> None:
    dm = (await client.conversations_open(users="U1"))["channel"]["id"]
    human = fake.add_message(dm, "hello", user="U1")

    cases = [
        (client.api_call("chat.postMessage", json={"channel": dm}), "no_text"),
        (client.chat_postMessage(channel="C404", text="x"), "channel_not_found"),
        (client.chat_update(channel=dm, ts="1.000000", text="x"), "message_not_found"),
        (client.chat_update(channel=dm, ts=human.ts, text="x"), "cant_update_message"),
        (client.chat_delete(channel=dm, ts=human.ts), "cant_delete_message"),
        (client.users_info(user="U404"), "user_not_found"),
        (client.chat_postEphemeral(channel=dm, user="U9", text="x"), "user_not_in_channel"),
    ]
    for call, error in cases:
        err = await api_error(call)
        assert (err.response.status_code, err.response["ok"], err.response["error"]) == (
            200,
            False,
            error,
        )

    fake.add_user("U1", name="ann", is_admin=True, tz="Europe/Berlin")
    user = (await client.users_info(user="U1"))["user"]
    assert (user["name"], user["is_admin"], user["is_owner"], user["tz"]) == (
        "ann",
        True,
        False,
        "Europe/Berlin",
    )
    assert user["tz_offset"] in (3600, 7200)

    fake.fail_next("chat.postMessage", "fatal_error")
    assert (await api_error(client.chat_postMessage(channel=dm, text="x"))).response[
        "error"
    ] == "fatal_error"
    await client.chat_postMessage(channel=dm, text="x")
    eph = await client.chat_postEphemeral(channel=dm, user="U1", text="only you")
    assert fake.ephemerals[0].message_ts == eph["message_ts"]


async def test_views_open_trigger_rules() -> None:
    clock = ManualClock()
    async with FakeSlack(clock=clock) as fake:
        client = AsyncWebClient(token=TOKEN, base_url=fake.api_url)
        trigger = fake.new_trigger_id()
        view = (await client.views_open(trigger_id=trigger, view=MODAL))["view"]
        assert view["callback_id"] == "answer"
        assert fake.views[0].view_id == view["id"]
        err = await api_error(client.views_open(trigger_id=trigger, view=MODAL))
        assert err.response["error"] == "exchanged_trigger_id"

        late = fake.new_trigger_id()
        clock.advance(3.5)
        err = await api_error(client.views_open(trigger_id=late, view=MODAL))
        assert err.response["error"] == "expired_trigger_id"


async def test_streaming_methods(fake: FakeSlack, client: AsyncWebClient) -> None:
    dm = (await client.conversations_open(users="U1"))["channel"]["id"]
    question = fake.add_message(dm, "explain", user="U1")

    start = await client.chat_startStream(channel=dm, thread_ts=question.ts, markdown_text="Hel")
    ts = start["ts"]
    await client.chat_appendStream(channel=dm, ts=ts, markdown_text="lo")
    stop = await client.chat_stopStream(channel=dm, ts=ts, markdown_text=" world")
    assert stop["message"]["text"] == "Hello world"
    assert fake.message(dm, ts).thread_ts == question.ts
    assert fake.message(dm, ts).streaming is False
    err = await api_error(client.chat_appendStream(channel=dm, ts=ts, markdown_text="!"))
    assert err.response["error"] == "message_not_in_streaming_state"

    # The SDK's buffered helper sends markdown chunks.
    streamer = await client.chat_stream(channel=dm, thread_ts=question.ts, buffer_size=4)
    for piece in ["Two ", "sum ", "uses ", "a map"]:
        await streamer.append(markdown_text=piece)
    await streamer.stop()
    assert fake.message(dm, str(streamer._stream_ts)).text == "Two sum uses a map"

    group = (await client.conversations_open(users="U1,U2"))["channel"]["id"]
    parent = fake.add_message(group, "go", user="U1")
    err = await api_error(client.chat_startStream(channel=group, thread_ts=parent.ts))
    assert err.response["error"] == "missing_recipient_team_id"
    live = await client.chat_startStream(
        channel=group, thread_ts=parent.ts, recipient_team_id="T0001", recipient_user_id="U1"
    )
    fake.expire_stream(group, live["ts"])
    err = await api_error(client.chat_appendStream(channel=group, ts=live["ts"], markdown_text="x"))
    assert err.response["error"] == "message_not_in_streaming_state"

    fake.streaming_enabled = False
    err = await api_error(client.chat_startStream(channel=dm, thread_ts=question.ts))
    assert err.response["error"] == "unknown_method"


async def test_files_upload_v2(fake: FakeSlack, client: AsyncWebClient) -> None:
    dm = (await client.conversations_open(users="U1"))["channel"]["id"]
    parent = await client.chat_postMessage(channel=dm, text="Transcript below")
    resp = await client.files_upload_v2(
        content="print(42)\n",
        filename="solution.py",
        title="Solution",
        channel=dm,
        initial_comment="Your code",
        thread_ts=parent["ts"],
    )
    file_id = resp["file"]["id"]
    stored = fake.files[file_id]
    assert (stored.data, stored.title, stored.channels) == (b"print(42)\n", "Solution", [dm])
    shared = fake.thread(dm, parent["ts"])[-1]
    assert (shared.text, shared.files) == ("Your code", [file_id])
    assert [c.method for c in fake.calls[-2:]] == [
        "files.getUploadURLExternal",
        "files.completeUploadExternal",
    ]


async def test_tier3_burst_is_rate_limited_per_workspace() -> None:
    clock = ManualClock()
    async with FakeSlack(limits={"chat.update": 5}, clock=clock) as fake:
        fake.add_workspace("xoxb-other", team_id="T0002", bot_id="B0002")
        client = AsyncWebClient(token=TOKEN, base_url=fake.api_url)
        # slack_sdk's default: retry on connection errors only, so a 429 surfaces.
        assert [type(h) for h in client.retry_handlers] == [AsyncConnectionErrorRetryHandler]
        dm = (await client.conversations_open(users="U1"))["channel"]["id"]
        ts = (await client.chat_postMessage(channel=dm, text="0"))["ts"]
        for n in range(5):
            clock.advance(1.0)
            await client.chat_update(channel=dm, ts=ts, text=str(n))

        err = await api_error(client.chat_update(channel=dm, ts=ts, text="over"))
        assert err.response.status_code == 429
        assert err.response["error"] == "ratelimited"
        assert err.response.headers["Retry-After"] == "56"
        assert fake.rate_limited == [("chat.update", dm)]
        assert fake.message(dm, ts).text == "4"

        other = AsyncWebClient(token="xoxb-other", base_url=fake.api_url)
        other_ts = (await other.chat_postMessage(channel=dm, text="x"))["ts"]
        await other.chat_update(channel=dm, ts=other_ts, text="y")  # T0002 has its own budget

        clock.advance(56.0)  # the oldest update leaves the 60 s window
        await client.chat_update(channel=dm, ts=ts, text="again")
        assert DEFAULT_LIMITS["chat.update"] == 50


async def test_post_message_bucket_per_channel() -> None:
    clock = ManualClock()
    async with FakeSlack(post_message_burst=3, post_message_rate=1.0, clock=clock) as fake:
        client = AsyncWebClient(token=TOKEN, base_url=fake.api_url, retry_handlers=[])
        busy = (await client.conversations_open(users="U1"))["channel"]["id"]
        quiet = (await client.conversations_open(users="U2"))["channel"]["id"]
        for n in range(3):
            await client.chat_postMessage(channel=busy, text=str(n))
        err = await api_error(client.chat_postMessage(channel=busy, text="burst"))
        assert (err.response.status_code, err.response.headers["Retry-After"]) == (429, "1")
        await client.chat_postMessage(channel=quiet, text="other channel")
        clock.advance(1.0)
        await client.chat_postMessage(channel=busy, text="refilled")
        with pytest.raises(SlackApiError):
            await client.chat_postMessage(channel=busy, text="empty again")
        assert fake.rate_limited == [("chat.postMessage", busy)] * 2
        assert [m.text for m in fake.channel_messages(busy)] == ["0", "1", "2", "refilled"]


async def test_opt_in_rate_limit_retry_handler(fake: FakeSlack) -> None:
    client = AsyncWebClient(
        token=TOKEN,
        base_url=fake.api_url,
        retry_handlers=[AsyncRateLimitErrorRetryHandler(max_retry_count=1)],
    )
    dm = (await client.conversations_open(users="U1"))["channel"]["id"]
    fake.fail_next("chat.postMessage", "ratelimited", retry_after=0)
    await client.chat_postMessage(channel=dm, text="after retry")
    assert len(fake.calls_to("chat.postMessage")) == 2
    assert len(fake.rate_limited) == 1


async def test_server_errors_answer_with_their_http_status(
    fake: FakeSlack, client: AsyncWebClient
) -> None:
    dm = (await client.conversations_open(users="U1"))["channel"]["id"]
    fake.fail_next("chat.postMessage", "internal_error", status=503)
    err = await api_error(client.chat_postMessage(channel=dm, text="lost"))
    assert (err.response.status_code, err.response["error"]) == (503, "internal_error")
    assert fake.channel_messages(dm) == []  # a faulted call changes nothing
    await client.chat_postMessage(channel=dm, text="kept")
    assert [m.text for m in fake.channel_messages(dm)] == ["kept"]


async def test_held_calls_wait_until_released(fake: FakeSlack, client: AsyncWebClient) -> None:
    dm = (await client.conversations_open(users="U1"))["channel"]["id"]
    fake.hold("chat.postMessage")
    call = asyncio.create_task(client.chat_postMessage(channel=dm, text="late"))
    deadline = time.monotonic() + 30  # a guard against hanging only
    while not fake.calls_to("chat.postMessage"):  # until the request has reached the fake
        assert time.monotonic() < deadline
        await asyncio.sleep(0.01)
    assert not call.done() and fake.channel_messages(dm) == []
    await client.auth_test()  # other methods are answered meanwhile
    fake.release("chat.postMessage")
    assert (await call)["ok"]
    assert [m.text for m in fake.channel_messages(dm)] == ["late"]


async def test_response_url(fake: FakeSlack) -> None:
    url = fake.new_response_url()
    resp = await AsyncWebhookClient(url).send(text="Starting…", response_type="ephemeral")
    assert (resp.status_code, resp.body) == (200, "ok")
    rid = url.rsplit("/", 1)[1]
    assert fake.responses[rid] == [{"text": "Starting…", "response_type": "ephemeral"}]
    missing = await AsyncWebhookClient(f"{fake.base_url}/response/nope").send(text="x")
    assert missing.status_code == 404


def test_signing_helpers_match_sdk_verifier() -> None:
    verifier = SignatureVerifier(SECRET)
    body = signing.slash_command_body(text="start two-sum", user_id="U1")
    now = int(time.time())
    assert signing.sign(SECRET, now, body) == verifier.generate_signature(
        timestamp=str(now), body=body
    )
    headers = signing.signed_headers(SECRET, body, retry_num=1, retry_reason="http_timeout")
    assert verifier.is_valid_request(body, headers)
    assert headers["Content-Type"] == "application/x-www-form-urlencoded"
    assert (headers["X-Slack-Retry-Num"], headers["X-Slack-Retry-Reason"]) == ("1", "http_timeout")
    stale = signing.signed_headers(SECRET, body, timestamp=now - 301)
    assert not verifier.is_valid_request(body, stale)
    assert not verifier.is_valid_request(body + "x", headers)

    fields = {k: v[0] for k, v in parse_qs(body, keep_blank_values=True).items()}
    assert set(fields) == {
        "token", "team_id", "team_domain", "channel_id", "channel_name", "user_id",
        "user_name", "command", "text", "api_app_id", "is_enterprise_install",
        "response_url", "trigger_id",
    }  # fmt: skip
    assert (fields["command"], fields["text"], fields["is_enterprise_install"]) == (
        "/interview",
        "start two-sum",
        "false",
    )

    event = signing.message_event("G1", "U1", "hi", "1700000001.000100", thread_ts="1.000000")
    envelope = json.loads(signing.event_body(event, event_id="Ev1", event_time=1))
    assert envelope["type"] == "event_callback"
    assert envelope["authorizations"][0]["user_id"] == "UBOT"
    assert (envelope["event"]["channel_type"], envelope["event"]["thread_ts"]) == (
        "mpim",
        "1.000000",
    )
    assert (
        signing.signed_headers(SECRET, json.dumps(envelope))["Content-Type"] == "application/json"
    )

    action_body = signing.block_action_body("start", "two-sum", message_ts="5.000000")
    action = json.loads(parse_qs(action_body)["payload"][0])
    assert action["type"] == "block_actions"
    assert action["container"] == {
        "type": "message",
        "message_ts": "5.000000",
        "channel_id": "C0GENERAL",
        "is_ephemeral": False,
    }
    assert action["actions"][0]["value"] == "two-sum"

    values = signing.text_input_state({"a": {"answer": "O(n)"}})
    view_body = signing.view_submission_body("answer", values, private_metadata="i-1")
    submission = json.loads(parse_qs(view_body)["payload"][0])
    assert submission["view"]["state"]["values"]["a"]["answer"]["value"] == "O(n)"
    assert submission["view"]["private_metadata"] == "i-1"


async def test_bolt_app_against_the_fake(fake: FakeSlack) -> None:
    app = AsyncApp(
        client=AsyncWebClient(token=TOKEN, base_url=fake.api_url),
        signing_secret=SECRET,
        process_before_response=True,
    )
    submitted: list[dict[str, Any]] = []

    @app.command("/interview")
    async def command(ack: Any, respond: Any, command: dict[str, Any]) -> None:
        await ack()
        await respond(f"got {command['text']}")

    @app.action("start")
    async def start(ack: Any, body: dict[str, Any], client: AsyncWebClient) -> None:
        await ack()
        await client.views_open(trigger_id=body["trigger_id"], view=MODAL)

    @app.view("answer")
    async def answer(ack: Any, view: dict[str, Any]) -> None:
        await ack()
        submitted.append(view["state"]["values"])

    @app.event("message")
    async def message(event: dict[str, Any], say: Any) -> None:
        await say(text=f"echo {event['text']}", thread_ts=event["ts"])

    async def dispatch(body: str, **header_args: Any) -> int:
        headers: BoltHeaders = dict(signing.signed_headers(SECRET, body, **header_args))
        response = await app.async_dispatch(AsyncBoltRequest(body=body, headers=headers))
        return response.status

    url = fake.new_response_url()
    assert await dispatch(signing.slash_command_body(text="two-sum", response_url=url)) == 200
    assert fake.responses[url.rsplit("/", 1)[1]][0]["text"] == "got two-sum"

    trigger = fake.new_trigger_id()
    assert await dispatch(signing.block_action_body("start", "go", trigger_id=trigger)) == 200
    assert fake.views[0].trigger_id == trigger

    values = signing.text_input_state({"a": {"answer": "O(n)"}})
    assert await dispatch(signing.view_submission_body("answer", values)) == 200
    assert submitted == [values]

    group = (
        await AsyncWebClient(token=TOKEN, base_url=fake.api_url).conversations_open(users="U1,U2")
    )["channel"]["id"]
    event = signing.message_event(group, "U1", "hello", "1700000100.000100")
    assert await dispatch(signing.event_body(event), retry_num=1, retry_reason="timeout") == 200
    echoed = fake.thread(group, "1700000100.000100")[-1]
    assert (echoed.text, echoed.bot_id) == ("echo hello", "B0001")

    assert len(fake.calls_to("auth.test")) == 1  # Bolt asks once, on the first request
    forged = signing.slash_command_body()
    bad: BoltHeaders = dict(signing.signed_headers("wrong-secret", forged))
    rejected = await app.async_dispatch(AsyncBoltRequest(body=forged, headers=bad))
    assert rejected.status == 401


async def test_socket_mode_connections_drops_and_refusals(fake: FakeSlack) -> None:
    client = AsyncWebClient(base_url=fake.api_url)
    for token, error in [
        ("xoxb-test", "not_allowed_token_type"),
        ("xapp-wrong", "invalid_auth"),
        ("", "not_authed"),
    ]:
        err = await api_error(client.apps_connections_open(app_token=token))
        assert (err.response.status_code, err.response["error"]) == (200, error)
    url = (await client.apps_connections_open(app_token=fake.app_token))["url"]
    assert url.startswith(f"ws://127.0.0.1:{fake.port}/socket-mode?ticket=")
    assert [url.rsplit("=", 1)[1]] == fake.tickets_issued

    async with aiohttp.ClientSession() as http:
        first = await http.ws_connect(url)
        assert (await first.receive_json())["type"] == "hello"
        await fake.wait_socket()
        assert (fake.socket_connections, fake.tickets_used) == (1, fake.tickets_issued)

        async def ack_one(ws: aiohttp.ClientWebSocketResponse) -> None:
            envelope = await ws.receive_json()
            await ws.send_json({"envelope_id": envelope["envelope_id"], "payload": {"ok": 1}})

        acking = asyncio.create_task(ack_one(first))
        ack = await fake.socket_send("events_api", {"type": "event_callback"})
        await acking
        assert ack["payload"] == {"ok": 1} and fake.socket_acks[ack["envelope_id"]] == ack

        # Refusing new connections leaves the open one alone; dropping closes it (1001).
        fake.refuse_sockets("internal_error")
        err = await api_error(client.apps_connections_open(app_token=fake.app_token))
        assert err.response["error"] == "internal_error"
        assert not first.closed
        await fake.drop_sockets()
        closing = await first.receive()
        assert (closing.type, closing.data) == (aiohttp.WSMsgType.CLOSE, 1001)
        with pytest.raises(RuntimeError, match="no Socket Mode connection"):
            await fake.socket_send("events_api", {})

        fake.refuse_sockets(None)  # URLs again, but the handshake fails
        url = (await client.apps_connections_open(app_token=fake.app_token))["url"]
        with pytest.raises(aiohttp.WSServerHandshakeError) as refused:
            await http.ws_connect(url)
        assert refused.value.status == 503
        assert fake.socket_refusals == 2

        fake.accept_sockets()
        second = await http.ws_connect(url)  # the same URL works once accepted
        assert (await second.receive_json())["type"] == "hello"
        await fake.wait_socket(connections=2)
        assert fake.socket_connections == 2
        await second.close()
