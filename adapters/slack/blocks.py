"""Block Kit views of the interview: challenge, live counter, interviewer buttons."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from core.counter import CounterView, progress_bar
from core.lifecycle import Control
from core.models import Challenge, Status

Block = dict[str, Any]

ACTION_PREFIX = "ib_"
START_MODAL = "ib_start_modal"
BUTTON_ICONS = {"pause": "⏸ ", "resume": "▶️ "}

LEVEL_ICONS = {"ok": "🟢", "notice": "🟡", "warning": "🟠", "critical": "🔴"}


def escape(text: str) -> str:
    """Slack's three control characters as entities, so untrusted text (the model's, the
    candidate's) stays text: no ``<!channel>``, mention or link of its own."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def _text(text: str) -> Block:
    return {"type": "mrkdwn", "text": text}


def slack_date(moment_unix: int, fallback: str) -> str:
    """Shown in each reader's own time zone by Slack."""
    return f"<!date^{moment_unix}^{{time}}|{fallback}>"


def counter_summary(view: CounterView) -> str:
    """The notification/fallback text of the counter message."""
    return (
        f"{view.challenge_title}: {view.time_left_text} left, "
        f"{view.tokens_used:,}/{view.token_budget:,} tokens ({view.status_text})"
    )


def counter_blocks(view: CounterView) -> list[Block]:
    """Time left with the reader-local end time, tokens with bars, status and warnings."""
    if view.deadline is not None and view.status is Status.ACTIVE:
        unix = int(view.deadline.timestamp())
        ends = f"ends {slack_date(unix, view.deadline.strftime('%H:%M UTC'))}"
    elif view.status is Status.PAUSED:
        ends = "paused: the clock is stopped"
    elif view.status is Status.SCHEDULED:
        ends = "starting now"
    else:
        ends = "finished with this much left"
    icon = "🏁" if view.status is Status.ENDED else LEVEL_ICONS.get(view.warning_level, "🟢")
    return [
        {
            "type": "section",
            "block_id": "counter",
            "fields": [
                _text(
                    f"*Time left*\n`{progress_bar(view.time_left_pct)}` "
                    f"{view.time_left_text}\n{ends}"
                ),
                _text(
                    f"*Tokens*\n`{progress_bar(view.tokens_used_pct)}` "
                    f"{view.tokens_used:,} / {view.token_budget:,} ({view.tokens_used_pct}%)"
                    + (f"\n{view.forecast_text}" if view.forecast_text else "")
                ),
            ],
        },
        {
            "type": "context",
            "block_id": "status",
            "elements": [
                _text(
                    f"{icon} *{view.status_text}*"
                    + (
                        f" · warning level: {view.warning_level}"
                        if view.warning_level != "ok"
                        else ""
                    )
                    + f" · candidate <@{view.candidate_id}> · interviewer <@{view.interviewer_id}>"
                )
            ],
        },
    ]


def action_id(control: str) -> str:
    """The Block Kit action id of a counter button (``ib_pause``); stable, so the buttons of
    messages posted long ago keep working."""
    return f"{ACTION_PREFIX}{control}"


def control_name(action: str) -> str:
    """The control a button's action id names (``ib_pause`` -> ``pause``)."""
    return action.removeprefix(ACTION_PREFIX)


def control_blocks(view: CounterView, controls: Sequence[Control]) -> list[Block]:
    """Interviewer buttons, labelled as the engine names them; none once it has ended.

    Pause and resume share one place: the one that applies to the current status is shown.
    """
    if view.status is Status.ENDED:
        return []
    hidden = "pause" if view.status is Status.PAUSED else "resume"
    elements: list[Block] = []
    for control in controls:
        if control.name == hidden:
            continue
        button: Block = {
            "type": "button",
            "action_id": action_id(control.name),
            "text": {
                "type": "plain_text",
                "text": BUTTON_ICONS.get(control.name, "") + control.label,
            },
            "value": view.interview_id,
        }
        if control.name == "end":
            button["style"] = "danger"
            button["confirm"] = {
                "title": {"type": "plain_text", "text": "End the interview?"},
                "text": {"type": "plain_text", "text": "The candidate can't continue afterwards."},
                "confirm": {"type": "plain_text", "text": "End it"},
                "deny": {"type": "plain_text", "text": "Keep going"},
            }
        elements.append(button)
    return [
        {"type": "context", "elements": [_text("Interviewer controls (interviewers only):")]},
        {"type": "actions", "block_id": "controls", "elements": elements},
    ]


def root_blocks(
    challenge: Challenge, view: CounterView, controls: Sequence[Control]
) -> list[Block]:
    """The interview's root message: the challenge, then the live counter and controls."""
    description = challenge.description
    if len(description) > 2900:
        description = description[:2900] + "…"
    return [
        {
            "type": "header",
            "text": {
                "type": "plain_text",
                "text": f"🧑‍💻 {challenge.title} ({challenge.difficulty})"[:150],
            },
        },
        {"type": "section", "text": _text(description)},
        {
            "type": "context",
            "elements": [
                _text(
                    f"<@{view.candidate_id}>, reply *in this thread* to talk to the AI assistant. "
                    "Every message re-sends the conversation, so it costs more tokens as it grows."
                )
            ],
        },
        {"type": "divider"},
        *counter_blocks(view),
        *control_blocks(view, controls),
    ]


def reply_blocks(text: str, footer: str | None) -> list[Block]:
    """A reply section with the per-turn token line under it."""
    blocks: list[Block] = [{"type": "section", "text": _text(text or "…")}]
    if footer:
        blocks.append({"type": "context", "elements": [_text(footer)]})
    return blocks


def start_modal(default_minutes: int, default_tokens: int, challenges: list[Challenge]) -> Block:
    """The modal behind ``/interview start`` with no arguments."""
    options = [
        {
            "text": {"type": "plain_text", "text": f"{c.title} ({c.difficulty})"[:75]},
            "value": c.slug,
        }
        for c in challenges[:100]
    ]
    return {
        "type": "modal",
        "callback_id": START_MODAL,
        "title": {"type": "plain_text", "text": "Start an interview"},
        "submit": {"type": "plain_text", "text": "Start"},
        "close": {"type": "plain_text", "text": "Cancel"},
        "blocks": [
            {
                "type": "input",
                "block_id": "candidate",
                "label": {"type": "plain_text", "text": "Candidate"},
                "element": {"type": "users_select", "action_id": "value"},
            },
            {
                "type": "input",
                "block_id": "duration",
                "label": {"type": "plain_text", "text": "Duration (e.g. 45m, 1h30m)"},
                "element": {
                    "type": "plain_text_input",
                    "action_id": "value",
                    "initial_value": f"{default_minutes}m",
                },
            },
            {
                "type": "input",
                "block_id": "tokens",
                "label": {"type": "plain_text", "text": "Token budget (e.g. 20k)"},
                "element": {
                    "type": "plain_text_input",
                    "action_id": "value",
                    "initial_value": str(default_tokens),
                },
            },
            {
                "type": "input",
                "block_id": "challenge",
                "label": {"type": "plain_text", "text": "Challenge"},
                "element": {
                    "type": "static_select",
                    "action_id": "value",
                    "options": options,
                    **({"initial_option": options[0]} if options else {}),
                },
            },
        ],
    }
