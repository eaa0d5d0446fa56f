"""Signed requests into a bot's real Slack HTTP endpoint, shaped exactly as Slack sends them.

Slack signs ``v0:{timestamp}:{raw body}`` with HMAC-SHA256 and the app's signing secret and
sends ``X-Slack-Request-Timestamp`` and ``X-Slack-Signature: v0=<hex>``. Slash commands are
form-encoded, interactivity (block actions, view submissions) is the form field ``payload=<json>``
and events are JSON ``event_callback`` envelopes::

    body = slash_command_body(text="start", response_url=fake.new_response_url())
    headers = signed_headers("secret", body)
    await http.post(f"{bot_url}/slack/events", data=body, headers=headers)
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import secrets
import time
import uuid
from collections.abc import Mapping
from typing import Any
from urllib.parse import urlencode

FORM = "application/x-www-form-urlencoded"
JSON = "application/json"
USER_AGENT = "Slackbot 1.0 (+https://api.slack.com/robots)"
VERIFICATION_TOKEN = "verification-token"
"""The legacy ``token`` field Slack still sends; Bolt ignores it."""


def sign(secret: str, timestamp: int | str, body: str | bytes) -> str:
    """``v0=`` + hex HMAC-SHA256 of ``v0:{timestamp}:{body}`` keyed with ``secret``."""
    text = body.decode("utf-8") if isinstance(body, bytes) else body
    digest = hmac.new(
        secret.encode("utf-8"), f"v0:{timestamp}:{text}".encode(), hashlib.sha256
    ).hexdigest()
    return f"v0={digest}"


def signed_headers(
    secret: str,
    body: str | bytes,
    *,
    timestamp: int | None = None,
    retry_num: int | None = None,
    retry_reason: str | None = None,
    content_type: str | None = None,
) -> dict[str, str]:
    """Slack's request headers for ``body`` (timestamp defaults to now).

    The content type defaults to JSON for a body starting with ``{`` and to form encoding
    otherwise; ``retry_num`` / ``retry_reason`` add ``X-Slack-Retry-Num`` / ``-Reason``.
    """
    ts = int(time.time()) if timestamp is None else timestamp
    text = body.decode("utf-8") if isinstance(body, bytes) else body
    if content_type is None:
        content_type = JSON if text.lstrip().startswith("{") else FORM
    headers = {
        "Content-Type": content_type,
        "User-Agent": USER_AGENT,
        "X-Slack-Request-Timestamp": str(ts),
        "X-Slack-Signature": sign(secret, ts, text),
    }
    if retry_num is not None:
        headers["X-Slack-Retry-Num"] = str(retry_num)
    if retry_reason is not None:
        headers["X-Slack-Retry-Reason"] = retry_reason
    return headers


def new_trigger_id() -> str:
    """A trigger id in Slack's ``<digits>.<digits>.<hex>`` format."""
    return f"{secrets.randbelow(10**13)}.{secrets.randbelow(10**13)}.{secrets.token_hex(16)}"


def new_event_id() -> str:
    """An event id like ``Ev08ABCDEF12``."""
    return "Ev" + secrets.token_hex(5).upper()


def _form_payload(payload: Mapping[str, Any]) -> str:
    return urlencode({"payload": json.dumps(payload, separators=(",", ":"))})


def slash_command_body(
    command: str = "/interview",
    text: str = "",
    user_id: str = "U0CANDID",
    user_name: str = "candidate",
    channel_id: str = "C0GENERAL",
    team_id: str = "T0001",
    response_url: str = "https://hooks.slack.com/commands/T0001/1/fake",
    trigger_id: str | None = None,
    *,
    channel_name: str = "general",
    team_domain: str = "test-team",
    api_app_id: str = "A0001",
    token: str = VERIFICATION_TOKEN,
    is_enterprise_install: bool = False,
) -> str:
    """The form-encoded body of a slash command invocation, fields in Slack's order."""
    return urlencode(
        {
            "token": token,
            "team_id": team_id,
            "team_domain": team_domain,
            "channel_id": channel_id,
            "channel_name": channel_name,
            "user_id": user_id,
            "user_name": user_name,
            "command": command,
            "text": text,
            "api_app_id": api_app_id,
            "is_enterprise_install": "true" if is_enterprise_install else "false",
            "response_url": response_url,
            "trigger_id": trigger_id or new_trigger_id(),
        }
    )


def message_event(
    channel: str,
    user: str,
    text: str,
    ts: str,
    thread_ts: str | None = None,
    client_msg_id: str | None = None,
    channel_type: str = "mpim",
    *,
    team: str = "T0001",
    parent_user_id: str | None = None,
) -> dict[str, Any]:
    """A user's ``message`` event (rich-text block included, as clients send it)."""
    event: dict[str, Any] = {
        "user": user,
        "type": "message",
        "ts": ts,
        "client_msg_id": client_msg_id or str(uuid.uuid4()),
        "text": text,
        "team": team,
        "blocks": [
            {
                "type": "rich_text",
                "block_id": secrets.token_hex(3),
                "elements": [
                    {"type": "rich_text_section", "elements": [{"type": "text", "text": text}]}
                ],
            }
        ],
        "channel": channel,
        "event_ts": ts,
        "channel_type": channel_type,
    }
    if thread_ts is not None:
        event["thread_ts"] = thread_ts
        if parent_user_id is not None:
            event["parent_user_id"] = parent_user_id
    return event


def event_body(
    event: Mapping[str, Any],
    *,
    team_id: str = "T0001",
    event_id: str | None = None,
    event_time: int | None = None,
    api_app_id: str = "A0001",
    bot_user_id: str = "UBOT",
    token: str = VERIFICATION_TOKEN,
) -> str:
    """The JSON ``event_callback`` envelope Slack posts for ``event``."""
    context = {"et": event.get("type"), "tid": team_id, "aid": api_app_id}
    if "channel" in event:
        context["cid"] = event["channel"]
    event_context = "4-" + base64.urlsafe_b64encode(json.dumps(context).encode()).decode()
    envelope = {
        "token": token,
        "team_id": team_id,
        "context_team_id": team_id,
        "context_enterprise_id": None,
        "api_app_id": api_app_id,
        "event": dict(event),
        "type": "event_callback",
        "event_id": event_id or new_event_id(),
        "event_time": int(time.time()) if event_time is None else event_time,
        "authorizations": [
            {
                "enterprise_id": None,
                "team_id": team_id,
                "user_id": bot_user_id,
                "is_bot": True,
                "is_enterprise_install": False,
            }
        ],
        "is_ext_shared_channel": False,
        "event_context": event_context,
    }
    return json.dumps(envelope)


def block_action_body(
    action_id: str,
    value: str,
    user_id: str = "U0CANDID",
    team_id: str = "T0001",
    channel_id: str = "C0GENERAL",
    message_ts: str = "1700000000.000100",
    response_url: str = "https://hooks.slack.com/actions/T0001/1/fake",
    trigger_id: str | None = None,
    block_id: str = "actions",
    *,
    user_name: str = "candidate",
    team_domain: str = "test-team",
    channel_name: str = "general",
    message: Mapping[str, Any] | None = None,
    api_app_id: str = "A0001",
    bot_id: str = "B0001",
    is_ephemeral: bool = False,
    button_text: str = "Button",
    token: str = VERIFICATION_TOKEN,
) -> str:
    """The form body (``payload=<json>``) of a button click in a message (``block_actions``)."""
    action = {
        "action_id": action_id,
        "block_id": block_id,
        "text": {"type": "plain_text", "text": button_text, "emoji": True},
        "value": value,
        "type": "button",
        "action_ts": f"{time.time():.6f}",
    }
    shown = (
        dict(message)
        if message is not None
        else {
            "bot_id": bot_id,
            "type": "message",
            "text": "",
            "user": "UBOT",
            "ts": message_ts,
            "app_id": api_app_id,
            "team": team_id,
            "blocks": [
                {
                    "type": "actions",
                    "block_id": block_id,
                    "elements": [
                        {
                            "type": "button",
                            "action_id": action_id,
                            "text": action["text"],
                            "value": value,
                        }
                    ],
                }
            ],
        }
    )
    payload: dict[str, Any] = {
        "type": "block_actions",
        "user": {"id": user_id, "username": user_name, "name": user_name, "team_id": team_id},
        "api_app_id": api_app_id,
        "token": token,
        "container": {
            "type": "message",
            "message_ts": message_ts,
            "channel_id": channel_id,
            "is_ephemeral": is_ephemeral,
        },
        "trigger_id": trigger_id or new_trigger_id(),
        "team": {"id": team_id, "domain": team_domain},
        "enterprise": None,
        "is_enterprise_install": False,
        "channel": {"id": channel_id, "name": channel_name},
        "message": shown,
        "state": {"values": {}},
        "response_url": response_url,
        "actions": [action],
    }
    return _form_payload(payload)


def text_input_state(values: Mapping[str, Mapping[str, str | None]]) -> dict[str, Any]:
    """``state.values`` of plain-text inputs from ``{block_id: {action_id: text}}``."""
    return {
        block_id: {
            action_id: {"type": "plain_text_input", "value": text}
            for action_id, text in actions.items()
        }
        for block_id, actions in values.items()
    }


def view_submission_body(
    callback_id: str,
    values: Mapping[str, Any] | None = None,
    *,
    private_metadata: str = "",
    view_id: str = "VFAKE00001",
    user_id: str = "U0CANDID",
    user_name: str = "candidate",
    team_id: str = "T0001",
    team_domain: str = "test-team",
    api_app_id: str = "A0001",
    bot_id: str = "B0001",
    trigger_id: str | None = None,
    title: str = "Interview",
    blocks: list[Any] | None = None,
    token: str = VERIFICATION_TOKEN,
) -> str:
    """The form body (``payload=<json>``) of a modal submission; ``values`` is ``state.values``."""
    payload = {
        "type": "view_submission",
        "team": {"id": team_id, "domain": team_domain},
        "user": {"id": user_id, "username": user_name, "name": user_name, "team_id": team_id},
        "api_app_id": api_app_id,
        "token": token,
        "trigger_id": trigger_id or new_trigger_id(),
        "view": {
            "id": view_id,
            "team_id": team_id,
            "type": "modal",
            "blocks": blocks or [],
            "private_metadata": private_metadata,
            "callback_id": callback_id,
            "state": {"values": dict(values or {})},
            "hash": f"{int(time.time())}.{secrets.token_hex(4)}",
            "title": {"type": "plain_text", "text": title, "emoji": True},
            "clear_on_close": False,
            "notify_on_close": False,
            "close": {"type": "plain_text", "text": "Cancel", "emoji": True},
            "submit": {"type": "plain_text", "text": "Submit", "emoji": True},
            "previous_view_id": None,
            "root_view_id": view_id,
            "app_id": api_app_id,
            "external_id": "",
            "app_installed_team_id": team_id,
            "bot_id": bot_id,
        },
        "response_urls": [],
        "is_enterprise_install": False,
        "enterprise": None,
    }
    return _form_payload(payload)
