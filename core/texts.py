"""Everything the engine says to people, in one place.

Mentions come from the platform (``mention``): ``<@U1>`` on Slack and Discord, a plain name
in the console. Backticks mark code spans, which the console shows without them.
"""

from __future__ import annotations

from collections.abc import Callable

from core.models import EndReason, Interview, Status
from core.parsing import MAX_DURATION_SECONDS, MAX_TOKEN_BUDGET, format_duration

Mention = Callable[[str], str]

END_NOTES = {
    EndReason.TIME_UP: "Time is up. This interview has ended. Thank you!",
    EndReason.TOKENS_EXHAUSTED: "The token budget is used up. This interview has ended. Thank you!",
    EndReason.ENDED_BY_INTERVIEWER: "The interviewer has ended this interview. Thank you!",
    EndReason.CANCELLED: "This interview was cancelled.",
}

PAUSED = "⏸ The interview is paused; the clock has stopped."
RESUMED = "▶️ The interview has resumed; the clock is running."
RESEND_AFTER_RESTART = (
    "⚠️ The bot restarted while answering your last message; please send it again."
)
STOPPED_AT_DEADLINE = "Time is up, so the reply was stopped here."
STOPPED_BY_INTERVIEWER = "The interviewer paused or ended the interview, so the reply stopped here."
LEASE_LOST = "The reply was stopped here: another bot process took over this interview."
INTERRUPTED = "interrupted: the bot was stopped while answering"
NOT_INTERVIEWER = "Only interviewers can do that. Ask a workspace admin to add you."
CANDIDATE_CANNOT = "Only interviewers can do that; candidates can't change their session."
ROOM_FAILED = (
    "I couldn't open the private conversation for this interview, so nothing started. Check "
    "that I can message the candidate, then try again."
)
NO_SUCH_INTERVIEW = "That interview does not exist."
SAY_HOW_MUCH = "Say how much to add, e.g. `+10m` or `+5k`."
ALREADY_ENDED = "This interview has already ended."
NOT_YOURSELF = "You can't interview yourself; mention the candidate instead."
AT_LEAST_A_MINUTE = "An interview needs at least 1 minute."


def too_small_budget(tokens: int, minimum: int) -> str:
    return (
        f"A budget of {tokens:,} tokens is too small to hold the challenge; use at least "
        f"{minimum:,} (did you mean `{tokens}m` for minutes?)."
    )


def already_running(mention: Mention, candidate_id: str) -> str:
    who = mention(candidate_id)
    return f"{who} already has an active interview. End it first with `/interview end {who}`."


def no_interview_for(mention: Mention, candidate_id: str) -> str:
    return f"{mention(candidate_id)} has no active interview."


NO_INTERVIEW_OF_YOURS = "You have no active interview. Name the candidate, e.g. `@alice`."


def several_interviews(mention: Mention, candidates: list[str]) -> str:
    names = ", ".join(mention(c) for c in candidates)
    return f"You have {len(candidates)} active interviews ({names}); name the candidate."


def extended(seconds: int, tokens: int) -> str:
    parts = [
        f"+{format_duration(seconds)}" if seconds else "",
        f"+{tokens:,} tokens" if tokens else "",
    ]
    return "⏩ The interviewer added " + " and ".join(p for p in parts if p) + "."


def time_cap(allowed_s: int, seconds: int) -> str | None:
    """Why an extension by ``seconds`` is refused, or None if it fits under 24 hours."""
    if seconds <= 0 or allowed_s + seconds <= MAX_DURATION_SECONDS:
        return None
    room = MAX_DURATION_SECONDS - allowed_s
    more = (
        f"at most +{format_duration(room)} can be added."
        if room > 0
        else "no more time can be added."
    )
    return (
        f"An interview can last at most {format_duration(MAX_DURATION_SECONDS)} in total; this "
        f"one is at {format_duration(allowed_s)}, so {more}"
    )


def token_cap(total_budget: int, tokens: int) -> str | None:
    """Why an extension by ``tokens`` is refused, or None if it fits under the cap."""
    if tokens <= 0 or total_budget + tokens <= MAX_TOKEN_BUDGET:
        return None
    room = MAX_TOKEN_BUDGET - total_budget
    more = f"at most +{room:,} tokens can be added." if room > 0 else "no more tokens can be added."
    return (
        f"An interview's budget can be at most {MAX_TOKEN_BUDGET:,} tokens in total; this one is "
        f"at {total_budget:,}, so {more}"
    )


def refused(prompt_tokens: int, left: int) -> str:
    return (
        f"🚫 This message needs ~{prompt_tokens:,} tokens, {left:,} remain. Nothing was charged; "
        "try a shorter message."
    )


# ---- input limits and rate limits: notices for the candidate, errors for the stored turn --

EMPTY_MESSAGE = (
    "✏️ Your message has no text I can send (only spaces or invisible characters), so nothing "
    "was sent to the AI assistant and nothing was charged. Type your question and send it again."
)
EMPTY_MESSAGE_ERROR = "refused: no visible text"
ATTACHMENT_ONLY = (
    "📎 Files aren't sent to the AI assistant, so nothing was sent and nothing was charged. "
    "Paste the text into a message instead."
)


def attachment_only_error(files: int) -> str:
    what = "a file" if files == 1 else f"{files} files"
    return f"refused: only {what}, no text (files are not sent to the AI assistant)"


def too_long(chars: int, limit: int) -> str:
    return (
        f"✂️ Your message is {chars:,} characters; the limit is {limit:,}. It wasn't sent to the "
        "AI assistant and nothing was charged. Please send a shorter one."
    )


def too_long_error(chars: int, limit: int) -> str:
    return f"refused: {chars:,} characters, over the limit of {limit:,} (stored shortened)"


def too_fast(per_minute: int) -> str:
    return (
        f"⏳ You're sending messages faster than {per_minute:,} a minute, so this one wasn't sent "
        "to the AI assistant and nothing was charged. Wait a few seconds and send it again."
    )


def too_fast_error(per_minute: int) -> str:
    return f"refused: more than {per_minute:,} messages a minute (rate limit)"


def workspace_busy(per_minute: int) -> str:
    return (
        f"⏳ The AI assistant is getting more than {per_minute:,} requests a minute in this "
        "workspace, so your message wasn't sent and nothing was charged. Wait a few seconds and "
        "send it again."
    )


def workspace_busy_error(per_minute: int) -> str:
    return f"refused: the workspace's limit of {per_minute:,} model calls a minute was reached"


def exhausted_note(left: int, smallest_next: int) -> str:
    note = END_NOTES[EndReason.TOKENS_EXHAUSTED]
    if left > 0:
        note += (
            f" ({left:,} tokens remain, but every new message re-sends the conversation, which "
            f"alone needs ~{smallest_next:,}.)"
        )
    return note


def footer(label: str | None, charged: int, left: int) -> str:
    text = f"{charged:,} tokens this turn · {left:,} left"
    return f"{label} · {text}" if label else text


def failed(error: str, charged: int) -> str:
    return f"⚠️ {error} ({charged:,} tokens charged)"


def not_running(interview: Interview) -> str:
    if interview.status is Status.PAUSED:
        return "⏸ The interview is paused. Your message is saved and will not be answered now."
    if interview.status is Status.ENDED:
        return "This interview has ended, so messages are no longer answered. Thank you!"
    return "This interview has not started yet."


# ---- schedules --------------------------------------------------------------------------

MISSED_DOWN = "the bot was not running at the time"
MISSED_BUSY = "the candidate was still in another interview"


def no_program(short_id: str) -> str:
    return f"There is no program `{short_id}` here. `/interview schedules` lists them."


def nothing_to_skip(short_id: str) -> str:
    return f"Program `{short_id}` has no occurrence left to skip."


def _duration_words(seconds: int) -> str:
    if seconds % 3600 == 0:
        hours = seconds // 3600
        return "24 hours" if hours == 24 else f"{hours} hour" + ("s" if hours != 1 else "")
    minutes = seconds // 60
    return f"{minutes} minute" + ("s" if minutes != 1 else "")


def reminder(
    mention: Mention,
    *,
    for_candidate: bool,
    candidate_id: str,
    challenge: str,
    when: str,
    in_s: int,
    minutes: int,
) -> str:
    who = "Your interview" if for_candidate else f"The interview with {mention(candidate_id)}"
    return (
        f"⏰ {who} starts in {_duration_words(in_s)}: {when}. Challenge: {challenge}, "
        f"{minutes} minutes. The private conversation will open by itself."
    )


def team_note(mention: Mention, candidate_id: str, challenge: str, when: str) -> str:
    return f"📅 Tomorrow: an interview with {mention(candidate_id)} ({challenge}), {when}."


def occurrence_started(mention: Mention, candidate_id: str, short_id: str) -> str:
    return (
        f"▶️ The scheduled interview with {mention(candidate_id)} (program `{short_id}`) has "
        "started in your private conversation with them."
    )


def occurrence_missed(mention: Mention, candidate_id: str, when: str, why: str) -> str:
    return (
        f"⚠️ The scheduled interview with {mention(candidate_id)} at {when} did not start: "
        f"{why}. It is marked missed."
    )


MESSAGE_NOT_SAVED = (
    "⚠️ I couldn't handle your message (a problem on our side, such as the database being "
    "unreachable); please send it again in a moment."
)
