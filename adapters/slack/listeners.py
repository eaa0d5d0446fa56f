"""Bolt listeners: ``/interview``, interviewer buttons, the start modal, thread messages.

Every listener acknowledges first (Slack wants an answer within 3 seconds) and works after.
"""

from __future__ import annotations

import logging
import re
from typing import TYPE_CHECKING, Any

from adapters.slack import blocks
from adapters.slack.mentions import channel_id, user_id
from adapters.slack.platform import room_key
from core.commands import parse_command
from core.dispatch import run_command
from core.errors import DomainError, InvalidInput
from core.parsing import parse_duration, parse_tokens

if TYPE_CHECKING:
    from adapters.slack.runner import SlackAdapter

log = logging.getLogger(__name__)

# Message subtypes that are still a person writing in the thread.
HUMAN_SUBTYPES = {None, "thread_broadcast", "file_share"}
FAILURE = "Something went wrong on our side; nothing was changed. Please try again."


def register_listeners(adapter: SlackAdapter) -> None:
    app = adapter.app
    service = adapter.service

    @app.command("/interview")
    async def interview_command(ack: Any, body: dict[str, Any], respond: Any) -> None:
        text = str(body.get("text", "")).strip()
        if text.lower() == "start":
            await ack()
            # The trigger id expires 3 s after the command: open the modal right away.
            challenges = await service.challenges.list(None)
            await adapter.outbox.call(
                "views.open",
                trigger_id=body["trigger_id"],
                view=blocks.start_modal(
                    service.config.time_limit_s // 60, service.config.token_budget, challenges
                ),
            )
            return
        await ack()
        adapter.spawn(_run_text_command(adapter, body, text, respond))

    @app.action(re.compile(r"^ib_"))
    async def interviewer_button(
        ack: Any, body: dict[str, Any], action: dict[str, Any], respond: Any
    ) -> None:
        await ack()
        adapter.spawn(_press_button(adapter, body, action, respond))

    @app.view(blocks.START_MODAL)
    async def start_modal_submitted(ack: Any, body: dict[str, Any], view: dict[str, Any]) -> None:
        values = view["state"]["values"]
        errors: dict[str, str] = {}
        seconds = tokens = None
        try:
            seconds = parse_duration(str(values["duration"]["value"].get("value") or ""))
        except InvalidInput as exc:
            errors["duration"] = str(exc).replace("`", "")
        try:
            tokens = parse_tokens(str(values["tokens"]["value"].get("value") or ""))
        except InvalidInput as exc:
            errors["tokens"] = str(exc).replace("`", "")
        workspace = await adapter.workspace(
            body["team"]["id"] if body.get("team") else body["user"]["team_id"]
        )
        actor = await adapter.actor(workspace, body["user"]["id"])
        if not actor.is_interviewer:
            errors["candidate"] = "Only interviewers can start interviews."
        if errors:
            await ack(response_action="errors", errors=errors)
            return
        await ack()
        candidate = values["candidate"]["value"]["selected_user"]
        selected = values["challenge"]["value"].get("selected_option") or {}
        adapter.spawn(
            _start_from_modal(
                adapter, workspace, actor, candidate, seconds, tokens, selected.get("value")
            )
        )

    @app.event("message")
    async def thread_message(event: dict[str, Any]) -> None:
        # Our own chat.update calls come back as message_changed: dropped here, cheaply.
        if event.get("subtype") not in HUMAN_SUBTYPES or event.get("bot_id"):
            return
        thread_ts, user = event.get("thread_ts"), event.get("user")
        if not user or thread_ts == event.get("ts"):
            return
        if not thread_ts:
            await _hint_thread(adapter, str(event["channel"]), str(user))
            return
        await service.handle_message(
            "slack",
            room_key(str(event["channel"]), str(thread_ts)),
            str(user),
            str(event["ts"]),  # the same on every redelivery: the de-duplication key
            str(event.get("text", "")),
        )


async def _hint_thread(adapter: SlackAdapter, channel: str, user: str) -> None:
    """A candidate who writes beside the thread is shown, privately, where to write."""
    for interview in await adapter.service.store.list_open():
        data = interview.platform_data
        if interview.platform == "slack" and data.get("channel") == channel:
            if interview.candidate_id == user:
                await adapter.outbox.call(
                    "chat.postEphemeral",
                    channel=channel,
                    user=user,
                    thread_ts=data["thread_ts"],
                    text="Please reply in the thread under the challenge: only messages there "
                    "reach the AI assistant.",
                )
            return


async def _run_text_command(
    adapter: SlackAdapter, body: dict[str, Any], text: str, respond: Any
) -> None:
    try:
        workspace = await adapter.workspace(str(body["team_id"]))
        actor = await adapter.actor(workspace, str(body["user_id"]))
        command = parse_command(text, user_id)
        if command.name not in ("help", "challenges") and not actor.is_interviewer:
            raise DomainError(
                "Only interviewers can use this command. Ask a workspace admin to add you with "
                "`/interview config interviewers @you`."
            )
        reply = await run_command(
            adapter.service,
            workspace,
            actor,
            command,
            resolve_channel=channel_id,
            resolve_user=user_id,
        )
    except DomainError as exc:
        reply = f"❌ {exc}"
    except Exception:
        log.exception("/interview %s failed", text.split(" ", 1)[0])
        reply = FAILURE
    await respond(text=reply, response_type="ephemeral")


async def _press_button(
    adapter: SlackAdapter, body: dict[str, Any], action: dict[str, Any], respond: Any
) -> None:
    service = adapter.service
    interview_id = str(action.get("value", ""))
    try:
        workspace = await adapter.workspace(str(body["team"]["id"]))
        actor = await adapter.actor(workspace, str(body["user"]["id"]))
        interview = await service.store.get_interview(interview_id)
        if interview is None or interview.workspace_id != workspace.id:
            raise DomainError("That interview no longer exists.")
        name = action["action_id"]
        if name == blocks.EXTEND_TIME:
            await service.extend(actor, interview_id, seconds=600)
        elif name == blocks.EXTEND_TOKENS:
            await service.extend(actor, interview_id, tokens=5000)
        elif name == blocks.PAUSE:
            await service.pause(actor, interview_id)
        elif name == blocks.RESUME:
            await service.resume(actor, interview_id)
        elif name == blocks.END:
            await service.end(actor, interview_id)
        else:
            raise DomainError("Unknown button.")
    except DomainError as exc:
        await respond(text=f"❌ {exc}", response_type="ephemeral", replace_original=False)
    except Exception:
        log.exception("button %s failed", action.get("action_id"))
        await respond(text=FAILURE, response_type="ephemeral", replace_original=False)


async def _start_from_modal(
    adapter: SlackAdapter,
    workspace: Any,
    actor: Any,
    candidate: str,
    seconds: int | None,
    tokens: int | None,
    challenge: str | None,
) -> None:
    try:
        await adapter.service.start(
            workspace,
            actor,
            candidate,
            time_limit_s=seconds,
            token_budget=tokens,
            challenge_slug=challenge,
        )
    except DomainError as exc:
        # A modal has no channel to answer in: tell the interviewer in their DM with the app.
        await adapter.outbox.post(
            channel=actor.user_id, text=f"❌ Couldn't start the interview: {exc}"
        )
    except Exception:
        log.exception("starting an interview from the modal failed")
        await adapter.outbox.post(channel=actor.user_id, text=FAILURE)
