"""Replies to a ``response_url`` on the bot's pooled aiohttp session."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from typing import Any

from aiohttp import ClientSession
from slack_bolt.context.async_context import AsyncBoltContext
from slack_bolt.context.respond.async_respond import AsyncRespond
from slack_bolt.context.respond.internals import _build_message
from slack_bolt.response import BoltResponse
from slack_sdk.models.attachments import Attachment
from slack_sdk.models.blocks import Block
from slack_sdk.webhook.async_client import AsyncWebhookClient
from slack_sdk.webhook.webhook_response import WebhookResponse


class PooledRespond(AsyncRespond):
    """Bolt's ``respond()`` on one shared session.

    Bolt's own builds an ``AsyncWebhookClient`` without a session on every call, so each
    reply to a slash command or a click opened (and closed) a connection of its own: against
    Slack, a TCP and TLS handshake before the candidate or interviewer saw the reply.
    """

    def __init__(self, *, response_url: str, session: ClientSession, **options: Any) -> None:
        super().__init__(response_url=response_url, **options)
        self.session = session

    async def __call__(
        self,
        text: str | dict[str, Any] = "",
        blocks: Sequence[dict[str, Any] | Block] | None = None,
        attachments: Sequence[dict[str, Any] | Attachment] | None = None,
        response_type: str | None = None,
        replace_original: bool | None = None,
        delete_original: bool | None = None,
        unfurl_links: bool | None = None,
        unfurl_media: bool | None = None,
        thread_ts: str | None = None,
        metadata: dict[str, Any] | None = None,
    ) -> WebhookResponse:
        assert self.response_url is not None
        client = AsyncWebhookClient(
            url=self.response_url, proxy=self.proxy, ssl=self.ssl, session=self.session
        )
        message = (
            _build_message(**text)
            if isinstance(text, dict)  # a whole response, as Bolt's respond() takes it
            else _build_message(
                text=text,
                blocks=blocks,
                attachments=attachments,
                response_type=response_type,
                replace_original=replace_original,
                delete_original=delete_original,
                unfurl_links=unfurl_links,
                unfurl_media=unfurl_media,
                thread_ts=thread_ts,
                metadata=metadata,
            )
        )
        return await client.send_dict(message)


async def pooled_respond(
    context: AsyncBoltContext, resp: BoltResponse, next_: Callable[[], Awaitable[None]]
) -> BoltResponse:
    """Middleware: ``respond`` sends on the Web API client's session, once it has one."""
    session = context.client.session
    if context.response_url and session is not None and not session.closed:
        context["respond"] = PooledRespond(
            response_url=context.response_url,
            session=session,
            proxy=context.client.proxy,
            ssl=context.client.ssl,
        )
    await next_()
    return resp
