"""Bolt wiring: a middleware that resolves who is asking, and plain listener functions.

:func:`register` installs :func:`resolve_people` (``app.use``): for slash commands, button
clicks and view submissions it puts the :class:`Workspace` and the :class:`Actor` into the
Bolt context once, as ``context["workspace"]`` and ``context["actor"]``; Bolt injects them
into listeners by parameter name, like its own arguments. Listeners are module functions
whose dependencies (service, outbox, spawn) are keyword-only parameters bound by
:func:`bind`. Every listener acknowledges first (Slack wants an answer within 3 seconds)
and hands slow work to ``spawn``.
"""

from __future__ import annotations

import functools
import logging
import re
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any

from slack_bolt.async_app import AsyncApp
from slack_bolt.context.ack.async_ack import AsyncAck
from slack_bolt.context.async_context import AsyncBoltContext
from slack_bolt.context.respond.async_respond import AsyncRespond
from slack_bolt.response import BoltResponse

from adapters.slack import blocks
from adapters.slack.mentions import channel_id, user_id
from adapters.slack.outbox import SlackOutbox
from adapters.slack.people import People
from adapters.slack.platform import room_key
from adapters.slack.respond import pooled_respond
from core import texts
from core.commands import parse_command
from core.dispatch import run_command
from core.errors import DomainError, InvalidInput
from core.models import Actor, Workspace
from core.parsing import parse_duration, parse_tokens
from core.service import InterviewService

log = logging.getLogger(__name__)

Body = dict[str, Any]
Spawn = Callable[[Coroutine[Any, Any, None]], None]
Listener = Callable[..., Awaitable[Any]]

# Message subtypes that are still a person writing in the thread.
HUMAN_SUBTYPES = {None, "thread_broadcast", "file_share"}
FAILURE = "Something went wrong on our side; nothing was changed. Please try again."
NOT_SAVED = texts.MESSAGE_NOT_SAVED
ONLY_INTERVIEWERS = (
    "Only interviewers can use this command. Ask a workspace admin to add you with "
    "`/interview config interviewers @you`."
)
OTHER_WORKSPACE = "❌ This Interview Buddy serves another Slack workspace; nothing was changed."


def register(
    app: AsyncApp,
    *,
    service: InterviewService,
    outbox: SlackOutbox,
    people: People,
    spawn: Spawn,
) -> None:
    app.use(pooled_respond)
    app.use(bind(resolve_people, people=people))
    app.command("/interview")(bind(interview_command, service=service, outbox=outbox, spawn=spawn))
    app.action(re.compile(f"^{blocks.ACTION_PREFIX}"))(
        bind(interviewer_button, service=service, spawn=spawn)
    )
    app.view(blocks.START_MODAL)(
        bind(start_modal_submitted, service=service, outbox=outbox, spawn=spawn)
    )
    app.event("message")(bind(thread_message, service=service, outbox=outbox))


def bind(listener: Listener, **dependencies: Any) -> Listener:
    """``listener`` with its keyword-only ``dependencies`` filled in.

    Bolt reads the parameters to inject through ``__wrapped__`` (the listener itself) and
    skips keyword-only ones, so each remaining parameter must be a Bolt argument (``ack``,
    ``body``, ...) or a context key (``workspace``, ``actor``).
    """
    bound = functools.partial(listener, **dependencies)
    functools.update_wrapper(bound, listener)
    return bound


# ---------------------------------------------------------------------- middleware


def _kind(body: Body) -> str | None:
    """``command``, ``block_actions`` or ``view_submission``; None for anything else."""
    if "command" in body:
        return "command"
    kind = body.get("type")
    return str(kind) if kind in ("block_actions", "view_submission") else None


async def resolve_people(
    body: Body,
    context: AsyncBoltContext,
    resp: BoltResponse,
    next_: Callable[[], Awaitable[None]],
    *,
    people: People,
) -> BoltResponse:
    """Put ``workspace`` and ``actor`` into the context of commands, clicks and submissions.

    Events pass untouched (a thread message needs neither). If they can't be resolved (the
    database is down, say) the request is answered here, with an apology.
    """
    kind = _kind(body)
    if kind is not None:
        try:
            team = context.team_id or (body.get("user") or {}).get("team_id")
            user = context.user_id
            if not team or not user:
                raise ValueError("the request names no team or no user")
            if not people.serves(str(team)):
                # One bot token acts in one workspace: another team's request (a distributed
                # app, a forged payload) is refused before anything is read or stored.
                log.warning("refused a Slack %s from team %s (not this bot's)", kind, team)
                return await _apologize(kind, context, OTHER_WORKSPACE)
            workspace = await people.workspace(str(team))
            context["workspace"] = workspace
            context["actor"] = await people.actor(workspace, str(user))
        except Exception:
            log.exception("could not tell who sent a Slack %s", kind)
            return await _apologize(kind, context)
    await next_()
    return resp


async def _apologize(kind: str, context: AsyncBoltContext, text: str = FAILURE) -> BoltResponse:
    if kind == "command":
        return BoltResponse(status=200, body={"response_type": "ephemeral", "text": text})
    if kind == "view_submission":
        return BoltResponse(
            status=200, body={"response_action": "errors", "errors": {"candidate": text}}
        )
    if context.respond is not None:
        try:
            await context.respond(text=text, response_type="ephemeral", replace_original=False)
        except Exception:
            log.warning("could not tell the user that the click failed", exc_info=True)
    return BoltResponse(status=200, body="")


# ---------------------------------------------------------------------- listeners


async def interview_command(
    ack: AsyncAck,
    body: Body,
    respond: AsyncRespond,
    workspace: Workspace,
    actor: Actor,
    *,
    service: InterviewService,
    outbox: SlackOutbox,
    spawn: Spawn,
) -> None:
    """``/interview ...``; ``/interview start`` alone opens the start modal."""
    text = str(body.get("text", "")).strip()
    await ack()
    if text.lower() != "start":
        spawn(run_text_command(service, workspace, actor, text, respond))
        return
    if not actor.is_interviewer:
        spawn(_reply(respond, f"❌ {ONLY_INTERVIEWERS}"))
        return
    # The trigger id expires 3 s after the command: open the modal right away.
    try:
        config = service.config
        await outbox.call(
            "views.open",
            trigger_id=body["trigger_id"],
            view=blocks.start_modal(
                config.time_limit_s // 60,
                config.token_budget,
                await service.queries.challenges(workspace.id),
            ),
        )
    except Exception:
        log.exception("could not open the start modal")
        spawn(_reply(respond, FAILURE))


async def interviewer_button(
    ack: AsyncAck,
    action: Body,
    respond: AsyncRespond,
    workspace: Workspace,
    actor: Actor,
    *,
    service: InterviewService,
    spawn: Spawn,
) -> None:
    """A counter button (``ib_extend_time``, ``ib_pause``, ...)."""
    await ack()
    spawn(press_button(service, workspace, actor, action, respond))


async def start_modal_submitted(
    ack: AsyncAck,
    view: Body,
    workspace: Workspace,
    actor: Actor,
    *,
    service: InterviewService,
    outbox: SlackOutbox,
    spawn: Spawn,
) -> None:
    """The start modal: errors go back into the modal, the start itself runs after the ack."""
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
    if not actor.is_interviewer:
        errors["candidate"] = "Only interviewers can start interviews."
    if errors:
        await ack(response_action="errors", errors=errors)
        return
    await ack()
    candidate = str(values["candidate"]["value"]["selected_user"])
    selected = values["challenge"]["value"].get("selected_option") or {}
    spawn(
        start_from_modal(
            service, outbox, workspace, actor, candidate, seconds, tokens, selected.get("value")
        )
    )


async def thread_message(event: Body, *, service: InterviewService, outbox: SlackOutbox) -> None:
    """A message in a group DM: the candidate's, in the interview thread, goes to the model."""
    # Our own chat.update calls come back as message_changed: dropped here, cheaply.
    if event.get("subtype") not in HUMAN_SUBTYPES or event.get("bot_id"):
        return
    thread_ts, user = event.get("thread_ts"), event.get("user")
    if not user or thread_ts == event.get("ts"):
        return
    if not thread_ts:
        await hint_thread(service, outbox, str(event["channel"]), str(user))
        return
    try:
        await service.turns.handle_message(
            "slack",
            room_key(str(event["channel"]), str(thread_ts)),
            str(user),
            str(event["ts"]),  # the same on every redelivery: the de-duplication key
            str(event.get("text") or ""),
            attachments=len(event.get("files") or ()),  # uploads (never sent to the model)
        )
    except Exception:  # e.g. the database is unreachable: say so instead of staying silent
        log.exception("could not take the message %s", event.get("ts"))
        try:
            await outbox.post(channel=str(event["channel"]), thread_ts=thread_ts, text=NOT_SAVED)
        except Exception:
            log.warning("could not say that the message was not saved", exc_info=True)


# ---------------------------------------------------------------------- the work


async def _reply(respond: AsyncRespond, text: str) -> None:
    await respond(text=text, response_type="ephemeral")


async def hint_thread(
    service: InterviewService, outbox: SlackOutbox, channel: str, user: str
) -> None:
    """A candidate who writes beside the thread is shown, privately, where to write."""
    for interview in await service.queries.open_interviews():
        data = interview.platform_data
        if interview.platform == "slack" and data.get("channel") == channel:
            if interview.candidate_id == user:
                await outbox.call(
                    "chat.postEphemeral",
                    channel=channel,
                    user=user,
                    thread_ts=data["thread_ts"],
                    text="Please reply in the thread under the challenge: only messages there "
                    "reach the AI assistant.",
                )
            return


async def run_text_command(
    service: InterviewService,
    workspace: Workspace,
    actor: Actor,
    text: str,
    respond: AsyncRespond,
) -> None:
    try:
        command = parse_command(text, user_id)
        if command.name not in ("help", "challenges") and not actor.is_interviewer:
            raise DomainError(ONLY_INTERVIEWERS)
        reply = await run_command(
            service,
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
    await _reply(respond, reply)


async def press_button(
    service: InterviewService,
    workspace: Workspace,
    actor: Actor,
    action: Body,
    respond: AsyncRespond,
) -> None:
    """The button's control, by the same rules as the commands (``lifecycle.control``)."""
    interview_id = str(action.get("value", ""))
    try:
        interview = await service.queries.interview(interview_id)
        if interview is None or interview.workspace_id != workspace.id:
            raise DomainError("That interview no longer exists.")
        control = blocks.control_name(str(action["action_id"]))
        await service.lifecycle.control(actor, interview_id, control)
    except DomainError as exc:
        await respond(text=f"❌ {exc}", response_type="ephemeral", replace_original=False)
    except Exception:
        log.exception("button %s failed", action.get("action_id"))
        await respond(text=FAILURE, response_type="ephemeral", replace_original=False)


async def start_from_modal(
    service: InterviewService,
    outbox: SlackOutbox,
    workspace: Workspace,
    actor: Actor,
    candidate: str,
    seconds: int | None,
    tokens: int | None,
    challenge: str | None,
) -> None:
    try:
        await service.lifecycle.start(
            workspace,
            actor,
            candidate,
            time_limit_s=seconds,
            token_budget=tokens,
            challenge_slug=challenge,
        )
    except DomainError as exc:
        # A modal has no channel to answer in: tell the interviewer in their DM with the app.
        await outbox.post(channel=actor.user_id, text=f"❌ Couldn't start the interview: {exc}")
    except Exception:
        log.exception("starting an interview from the modal failed")
        await outbox.post(channel=actor.user_id, text=FAILURE)
