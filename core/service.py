"""The interview service: every use case the adapters call, over the ports."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from core import metrics
from core.budget import (
    completion_cap,
    drop_stale_warnings,
    due_warnings,
    exhausted,
    next_time_event,
    warning_text,
)
from core.challenges import ChallengeLibrary, system_prompt_for
from core.clock import Clock
from core.counter import CounterView, build_counter
from core.errors import Conflict, IllegalTransition, InvalidInput, NotAuthorized, NotFound
from core.models import (
    Actor,
    AuditEvent,
    Challenge,
    EndReason,
    Interview,
    Status,
    Turn,
    TurnStatus,
    Workspace,
)
from core.parsing import (
    MAX_DURATION_SECONDS,
    MAX_TOKEN_BUDGET,
    MIN_TIME_LIMIT_SECONDS,
    MIN_TOKEN_BUDGET,
    format_duration,
)
from core.ports import (
    ChatMessage,
    ChatModel,
    ChatRequest,
    ChatResult,
    InterviewStore,
    OnDelta,
    Platform,
)
from core.timers import Timers
from core.tokens import TokenCounter

log = logging.getLogger(__name__)

END_NOTES = {
    EndReason.TIME_UP: "Time is up. This interview has ended. Thank you!",
    EndReason.TOKENS_EXHAUSTED: "The token budget is used up. This interview has ended. Thank you!",
    EndReason.ENDED_BY_INTERVIEWER: "The interviewer has ended this interview. Thank you!",
    EndReason.CANCELLED: "This interview was cancelled.",
}


@dataclass(frozen=True)
class EngineConfig:
    """Defaults the engine applies when a command leaves something out."""

    model: str = "gpt-4o-mini"
    time_limit_s: int = 45 * 60
    token_budget: int = 20_000
    challenge_slug: str = "two-sum"
    temperature: float | None = None


class InterviewService:
    """Starts, runs and ends interviews; enforces the time and token budgets."""

    def __init__(
        self,
        store: InterviewStore,
        model: ChatModel,
        clock: Clock,
        platforms: Mapping[str, Platform],
        config: EngineConfig | None = None,
    ) -> None:
        self.store = store
        self.model = model
        self.clock = clock
        self.platforms = dict(platforms)
        self.config = config or EngineConfig()
        self.challenges = ChallengeLibrary(store)
        self.timers = Timers(clock)
        self._locks: dict[str, asyncio.Lock] = {}
        self._background: set[asyncio.Task[None]] = set()

    # ----------------------------------------------------------------- interviewer commands

    async def start(
        self,
        workspace: Workspace,
        actor: Actor,
        candidate_id: str,
        *,
        time_limit_s: int | None = None,
        token_budget: int | None = None,
        challenge_slug: str | None = None,
        platform_data: dict[str, Any] | None = None,
    ) -> Interview:
        """Open the private conversation, post challenge and counter, start the clock.

        ``platform_data`` seeds what the adapter needs to open the room (e.g. the parent
        channel of a Discord thread).
        """
        _require_interviewer(actor)
        if token_budget is not None and token_budget < MIN_TOKEN_BUDGET:
            raise InvalidInput(
                f"A budget of {token_budget:,} tokens is too small to hold the challenge; use at "
                f"least {MIN_TOKEN_BUDGET:,} (did you mean `{token_budget}m` for minutes?)."
            )
        if time_limit_s is not None and time_limit_s < MIN_TIME_LIMIT_SECONDS:
            raise InvalidInput("An interview needs at least 1 minute.")
        if candidate_id == actor.user_id:
            raise InvalidInput("You can't interview yourself; mention the candidate instead.")
        challenge = await self.challenges.get(
            workspace.id, challenge_slug or self.config.challenge_slug
        )
        if await self.store.find_open_for_candidate(workspace.id, candidate_id):
            raise Conflict(
                f"<@{candidate_id}> already has an active interview. End it first with "
                f"`/interview end <@{candidate_id}>`."
            )
        now = self.clock.now()
        # What the command says, else what the challenge suggests, else the defaults.
        interview = Interview(
            workspace_id=workspace.id,
            platform=workspace.platform,
            candidate_id=candidate_id,
            interviewer_id=actor.user_id,
            challenge_slug=challenge.slug,
            time_limit_s=time_limit_s or challenge.time_limit_s or self.config.time_limit_s,
            token_budget=token_budget or challenge.token_budget or self.config.token_budget,
            created_at=now,
            platform_data=dict(platform_data or {}),
        )
        interview.next_prompt_tokens = self._counter(challenge).count_messages(
            [*self._system(challenge), _EMPTY_MESSAGE]
        )
        await self.store.add_interview(interview, self._event(interview, actor, "created"))
        platform = self._platform(interview)
        try:
            await platform.open_room(interview, challenge, self._view(interview, challenge))
        except Exception as exc:
            log.exception("could not open the conversation for interview %s", interview.id)
            interview.transition(Status.ENDED)
            interview.end_reason = EndReason.CANCELLED
            interview.ended_at = self.clock.now()
            await self.store.save_interview(
                interview, self._event(interview, actor, "cancelled", error=str(exc))
            )
            raise Conflict(
                "I couldn't open the private conversation for this interview, so nothing "
                "started. Check that I can message the candidate, then try again."
            ) from exc
        interview.transition(Status.ACTIVE)
        interview.started_at = self.clock.now()
        started = self._event(
            interview,
            actor,
            "started",
            time_limit_s=interview.time_limit_s,
            token_budget=interview.token_budget,
            challenge=challenge.slug,
        )
        try:
            await self.store.save_interview(interview, started)
        except Conflict:
            # Another start for the same candidate won the race while the room was opening.
            interview.status, interview.started_at = Status.SCHEDULED, None
            await self._finish(interview, EndReason.CANCELLED, actor.user_id)
            raise
        metrics.INTERVIEWS_STARTED.inc()
        await self._refresh(interview, challenge)
        return interview

    async def extend(
        self, actor: Actor, interview_id: str, *, seconds: int = 0, tokens: int = 0
    ) -> Interview:
        """Add time and/or tokens to an open interview."""
        if seconds <= 0 and tokens <= 0:
            raise InvalidInput("Say how much to add, e.g. `+10m` or `+5k`.")
        async with self._lock(interview_id):
            interview = await self._load_open(interview_id, actor)
            if not interview.is_open:
                raise IllegalTransition("This interview has already ended.")
            _check_caps(interview, seconds, tokens)
            now = self.clock.now()
            interview.extra_time_s += max(0, seconds)
            interview.extra_tokens += max(0, tokens)
            drop_stale_warnings(interview, now)
            await self.store.save_interview(
                interview, self._event(interview, actor, "extended", seconds=seconds, tokens=tokens)
            )
            parts = [
                f"+{format_duration(seconds)}" if seconds else "",
                f"+{tokens:,} tokens" if tokens else "",
            ]
            await self._notice(
                interview, "⏩ The interviewer added " + " and ".join(p for p in parts if p) + "."
            )
            await self._refresh(interview)
            return interview

    async def pause(self, actor: Actor, interview_id: str) -> Interview:
        """Stop the clock; candidate messages are kept but not answered until resumed."""
        async with self._lock(interview_id):
            interview = await self._load_open(interview_id, actor)
            interview.transition(Status.PAUSED)
            interview.paused_since = self.clock.now()
            await self.store.save_interview(interview, self._event(interview, actor, "paused"))
            self.timers.cancel(interview.id)
            await self._notice(interview, "⏸ The interview is paused; the clock has stopped.")
            await self._refresh(interview)
            return interview

    async def resume(self, actor: Actor, interview_id: str) -> Interview:
        """Restart the clock where it stopped."""
        async with self._lock(interview_id):
            interview = await self._load_open(interview_id, actor)
            interview.transition(Status.ACTIVE)
            self._fold_pause(interview)
            await self.store.save_interview(interview, self._event(interview, actor, "resumed"))
            await self._notice(interview, "▶️ The interview has resumed; the clock is running.")
            await self._refresh(interview)
            return interview

    async def end(
        self, actor: Actor, interview_id: str, reason: EndReason = EndReason.ENDED_BY_INTERVIEWER
    ) -> Interview:
        """End an interview on an interviewer's request."""
        async with self._lock(interview_id):
            interview = await self._load_open(interview_id, actor)
            await self._finish(interview, reason, actor.user_id)
            return interview

    # ----------------------------------------------------------------- queries

    async def find_for_command(
        self, workspace: Workspace, actor: Actor, candidate_id: str | None
    ) -> Interview:
        """The open interview a command is about: the candidate's, or the caller's only one."""
        _require_interviewer(actor)
        if candidate_id:
            interview = await self.store.find_open_for_candidate(workspace.id, candidate_id)
            if interview is None:
                raise NotFound(f"<@{candidate_id}> has no active interview.")
            return interview
        mine = [
            i for i in await self.store.list_open(workspace.id) if i.interviewer_id == actor.user_id
        ]
        if not mine:
            raise NotFound("You have no active interview. Name the candidate, e.g. `@alice`.")
        if len(mine) > 1:
            names = ", ".join(f"<@{i.candidate_id}>" for i in mine)
            raise InvalidInput(
                f"You have {len(mine)} active interviews ({names}); name the candidate."
            )
        return mine[0]

    async def status(self, workspace: Workspace, actor: Actor) -> list[CounterView]:
        """Counters of the open interviews the caller runs (all of them for interviewers)."""
        _require_interviewer(actor)
        opened = await self.store.list_open(workspace.id)
        mine = [i for i in opened if i.interviewer_id == actor.user_id] or opened
        return [await self.counter(i) for i in mine]

    async def counter(self, interview: Interview) -> CounterView:
        challenge = await self._challenge(interview)
        return self._view(interview, challenge)

    # ----------------------------------------------------------------- candidate messages

    async def handle_message(
        self, platform: str, room_key: str, author_id: str, message_id: str, text: str
    ) -> Turn | None:
        """A message in an interview conversation. Only the candidate's go to the model.

        Idempotent: a redelivered ``message_id`` is ignored. Messages are answered one at a
        time, in arrival order.
        """
        interview = await self.store.find_by_room(platform, room_key)
        if interview is None or author_id != interview.candidate_id or not text.strip():
            return None
        turn = Turn(
            interview_id=interview.id,
            author_id=author_id,
            content=text,
            platform_message_id=message_id,
            created_at=self.clock.now(),
        )
        if not await self.store.add_turn(turn):
            log.info("duplicate message %s for interview %s ignored", message_id, interview.id)
            return None
        with metrics.TURN_SECONDS.time():
            async with self._lock(interview.id):
                await self._handle_turn(interview.id, turn)
        return turn

    async def _handle_turn(self, interview_id: str, turn: Turn) -> None:
        interview = await self._get(interview_id)
        if interview.status is Status.ACTIVE and interview.seconds_left(self.clock.now()) <= 0:
            await self._finish(interview, EndReason.TIME_UP, "system")
        if interview.status is not Status.ACTIVE:
            turn.status = TurnStatus.UNANSWERED
            await self.store.save_turn(turn)
            await self._notice(interview, _not_running_text(interview))
            return
        await self._answer(interview, turn)

    async def _answer(self, interview: Interview, turn: Turn) -> None:
        challenge = await self._challenge(interview)
        model = challenge.model or self.config.model
        counter = self._counter(challenge)
        history = await self._history(interview, challenge, before_seq=turn.seq)
        messages = [*history, {"role": "user", "content": turn.content}]
        prompt_tokens = counter.count_messages(messages)
        left = interview.tokens_left
        cap = completion_cap(left, prompt_tokens)
        if cap <= 0:
            turn.status = TurnStatus.REFUSED
            turn.prompt_tokens = prompt_tokens
            await self.store.save_turn(turn)
            await self._notice(
                interview,
                f"🚫 This message needs ~{prompt_tokens:,} tokens, {left:,} remain. "
                "Nothing was charged; try a shorter message.",
            )
            await self._end_if_exhausted(interview, counter, history)
            return

        turn.status = TurnStatus.STREAMING
        turn.prompt_tokens = prompt_tokens
        await self.store.save_turn(turn)  # persisted before the call: a crash is recoverable
        writer = self._platform(interview).reply_writer(interview, turn)
        request = ChatRequest(
            model=model,
            messages=messages,
            max_completion_tokens=cap,
            temperature=challenge.temperature
            if challenge.temperature is not None
            else self.config.temperature,
        )
        received: list[str] = []

        async def relay(delta: str) -> None:
            received.append(delta)
            await writer.append(delta)

        try:
            result = await self._stream_until_deadline(interview, request, relay)
        except asyncio.CancelledError:
            # Shutdown or Ctrl-C: record what the call cost before going.
            await asyncio.shield(self._record_interrupted(interview, turn, "".join(received)))
            raise
        if result.usage is not None:
            spent, prompt_used, completion_used = (
                result.usage.total,
                result.usage.prompt_tokens,
                result.usage.completion_tokens,
            )
        elif result.reached_model:
            completion_used = counter.count_text(result.text)
            spent, prompt_used = prompt_tokens + completion_used, prompt_tokens
        else:
            spent = prompt_used = completion_used = 0
        charged = min(spent, left)
        overrun = spent - charged
        turn.reply = result.text
        turn.prompt_tokens, turn.completion_tokens = prompt_used, completion_used
        turn.charged_tokens = charged
        turn.usage_reported = result.usage is not None
        turn.error = result.error
        turn.answered_at = self.clock.now()
        turn.status = TurnStatus.FAILED if result.error else TurnStatus.ANSWERED
        interview.tokens_used += charged
        conversation = [*history, *_pair(turn)] if turn.status is TurnStatus.ANSWERED else history
        self._update_forecast(interview, counter, conversation)
        await self.store.save_turn(turn, interview)
        metrics.TOKENS_CHARGED.inc(charged)
        metrics.TURNS.labels(turn.status.value).inc()
        if overrun > 0:
            # Only possible when the endpoint tokenizes differently from our offline count.
            log.warning("interview %s: API reported %d tokens over budget", interview.id, overrun)
            await self.store.save_interview(
                interview,
                self._event(interview, None, "budget_overrun", reported=spent, charged=charged),
            )
        footer = f"{charged:,} tokens this turn · {interview.tokens_left:,} left"
        if self.model.label:
            footer = f"{self.model.label} · {footer}"
        if result.error:
            await writer.fail(f"⚠️ {result.error} ({charged:,} tokens charged)")
        else:
            await writer.finish(footer)
        if interview.seconds_left(self.clock.now()) <= 0:
            await self._finish(interview, EndReason.TIME_UP, "system")
        elif not await self._end_if_exhausted(interview, counter, conversation):
            await self._refresh(interview, challenge)

    async def _stream_until_deadline(
        self, interview: Interview, request: ChatRequest, on_delta: OnDelta
    ) -> ChatResult:
        """Stream the reply, but stop it when the session's time runs out."""
        received: list[str] = []

        async def relay(delta: str) -> None:
            received.append(delta)
            await on_delta(delta)

        deadline = interview.deadline(self.clock.now())
        call = asyncio.create_task(self.model.stream_chat(request, relay))
        if deadline is None:
            return await call
        alarm = asyncio.create_task(self.clock.sleep_until(deadline))
        try:
            await asyncio.wait({call, alarm}, return_when=asyncio.FIRST_COMPLETED)
        except asyncio.CancelledError:
            call.cancel()
            raise
        finally:
            alarm.cancel()
        if call.done():
            return call.result()
        call.cancel()  # closes the HTTP stream: nothing more is generated or billed
        await asyncio.gather(call, return_exceptions=True)
        return ChatResult(
            text="".join(received),
            usage=None,
            error="Time is up, so the reply was stopped here.",
            reached_model=True,
        )

    def _counter(self, challenge: Challenge) -> TokenCounter:
        return TokenCounter(challenge.model or self.config.model)

    @staticmethod
    def _system(challenge: Challenge) -> list[ChatMessage]:
        return [{"role": "system", "content": system_prompt_for(challenge)}]

    def _update_forecast(
        self, interview: Interview, counter: TokenCounter, conversation: list[ChatMessage]
    ) -> None:
        """Remember what the next message will cost and how much each turn adds on average."""
        interview.next_prompt_tokens = counter.count_messages([*conversation, _EMPTY_MESSAGE])
        answered = (len(conversation) - 1) // 2
        if answered > 0:
            base = counter.count_messages([*conversation[:1], _EMPTY_MESSAGE])
            interview.turn_growth_tokens = max(1, (interview.next_prompt_tokens - base) // answered)

    async def _history(
        self, interview: Interview, challenge: Challenge, before_seq: int
    ) -> list[ChatMessage]:
        messages = self._system(challenge)
        for turn in await self.store.list_turns(interview.id):
            if turn.seq < before_seq and turn.status is TurnStatus.ANSWERED:
                messages.extend(_pair(turn))
        return messages

    async def _end_if_exhausted(
        self, interview: Interview, counter: TokenCounter, history: list[ChatMessage]
    ) -> bool:
        """End the session when not even a short message with a short reply still fits."""
        smallest_next = counter.count_messages([*history, _EMPTY_MESSAGE])
        left = interview.tokens_left
        if not exhausted(left, smallest_next):
            return False
        note = END_NOTES[EndReason.TOKENS_EXHAUSTED]
        if left > 0:
            note += (
                f" ({left:,} tokens remain, but every new message re-sends the conversation, "
                f"which alone needs ~{smallest_next:,}.)"
            )
        await self._finish(interview, EndReason.TOKENS_EXHAUSTED, "system", note)
        return True

    # ----------------------------------------------------------------- timers and recovery

    async def recover(self) -> None:
        """After a restart: re-arm every open interview's timer and finish interrupted turns."""
        for interview in await self.store.list_open():
            async with self._lock(interview.id):
                for turn in await self.store.list_turns(interview.id):
                    if turn.status is TurnStatus.STREAMING:
                        await self._charge_interrupted(interview, turn)
                if (
                    interview.status is Status.ACTIVE
                    and interview.seconds_left(self.clock.now()) <= 0
                ):
                    # Overdue while the bot was down: closed now, before anyone is told
                    # the interview is still running.
                    await self._finish(interview, EndReason.TIME_UP, "system")
                    continue
            self._arm(interview)
            pending = [
                t
                for t in await self.store.list_turns(interview.id)
                if t.status is TurnStatus.PENDING
            ]
            if pending:
                self._spawn(self._replay(interview.id, pending))

    async def _record_interrupted(self, interview: Interview, turn: Turn, received: str) -> None:
        """A turn cut short by shutdown: charge the prompt and what arrived, mark it."""
        counter = TokenCounter(self.config.model)
        spent = turn.prompt_tokens + counter.count_text(received) if received else 0
        charged = min(spent, interview.tokens_left)
        turn.status, turn.reply, turn.charged_tokens = TurnStatus.FAILED, received, charged
        turn.error = "interrupted: the bot was stopped while answering"
        turn.answered_at = self.clock.now()
        interview.tokens_used += charged
        try:
            await self.store.save_turn(turn, interview)
        except Exception:
            log.exception("could not record the interrupted turn %s", turn.id)
            return
        metrics.TOKENS_CHARGED.inc(charged)
        metrics.TURNS.labels(turn.status.value).inc()

    async def _charge_interrupted(self, interview: Interview, turn: Turn) -> None:
        # The prompt reached the API before the crash; what streamed since is unknown.
        charged = min(turn.prompt_tokens, interview.tokens_left)
        turn.status, turn.charged_tokens = TurnStatus.FAILED, charged
        turn.error = "interrupted by a restart"
        interview.tokens_used += charged
        await self.store.save_turn(turn, interview)
        metrics.TOKENS_CHARGED.inc(charged)
        metrics.TURNS.labels(turn.status.value).inc()
        await self._notice(
            interview,
            "⚠️ The bot restarted while answering your last message; please send it again.",
        )

    async def _replay(self, interview_id: str, turns: list[Turn]) -> None:
        for turn in turns:
            async with self._lock(interview_id):
                await self._handle_turn(interview_id, turn)

    def _arm(self, interview: Interview) -> None:
        when = next_time_event(interview, self.clock.now())
        if when is None:
            self.timers.cancel(interview.id)
            return
        interview_id = interview.id
        self.timers.set(interview_id, when, lambda: self._on_timer(interview_id))

    async def _on_timer(self, interview_id: str) -> None:
        async with self._lock(interview_id):
            interview = await self._get(interview_id)
            if interview.status is not Status.ACTIVE:
                return
            if interview.seconds_left(self.clock.now()) <= 0:
                await self._finish(interview, EndReason.TIME_UP, "system")
            else:
                await self._refresh(interview)

    async def tick(self) -> None:
        """Refresh counters of every open interview (adapters may call this periodically)."""
        for interview in await self.store.list_open():
            async with self._lock(interview.id):
                fresh = await self._get(interview.id)
                if fresh.is_open:
                    await self._refresh(fresh)

    async def close(self) -> None:
        await self.timers.close()
        for task in list(self._background):
            task.cancel()
        await asyncio.gather(*self._background, return_exceptions=True)

    async def settle(self) -> None:
        """Wait for due timers and background work to finish (for tests)."""
        await self.timers.settle()
        while self._background:
            await asyncio.gather(*list(self._background), return_exceptions=True)
        await self.timers.settle()

    # ----------------------------------------------------------------- internals

    async def _refresh(self, interview: Interview, challenge: Challenge | None = None) -> None:
        """Announce due warnings, redraw the counter, re-arm the timer."""
        now = self.clock.now()
        warnings = due_warnings(interview, now)
        if warnings:
            interview.warnings_sent = [*interview.warnings_sent, *(w.key for w in warnings)]
            await self.store.save_interview(
                interview,
                *(self._event(interview, None, "warning", threshold=w.key) for w in warnings),
            )
            await self._notice(interview, warning_text(warnings, interview))
        challenge = challenge or await self._challenge(interview)
        before = dict(interview.platform_data)
        await self._show_counter(interview, self._view(interview, challenge))
        if interview.platform_data != before:  # e.g. the adapter re-posted the counter
            await self.store.save_interview(interview)
        self._arm(interview)

    async def _finish(
        self, interview: Interview, reason: EndReason, actor_id: str, note: str | None = None
    ) -> None:
        self._fold_pause(interview)
        interview.transition(Status.ENDED)
        interview.end_reason = reason
        interview.ended_at = self.clock.now()
        await self.store.save_interview(
            interview,
            AuditEvent(
                interview_id=interview.id,
                actor_id=actor_id,
                kind="ended",
                at=interview.ended_at,
                detail={"reason": reason.value, "tokens_used": interview.tokens_used},
            ),
        )
        self.timers.cancel(interview.id)
        metrics.INTERVIEWS_ENDED.labels(reason.value).inc()
        challenge = await self._challenge(interview)
        try:
            await self._platform(interview).close_room(
                interview, self._view(interview, challenge), note or END_NOTES[reason]
            )
        except Exception:
            log.exception("could not close the conversation of interview %s", interview.id)

    def _fold_pause(self, interview: Interview) -> None:
        if interview.paused_since is not None:
            interview.paused_total_s += (self.clock.now() - interview.paused_since).total_seconds()
            interview.paused_since = None

    async def _show_counter(self, interview: Interview, view: CounterView) -> None:
        try:
            await self._platform(interview).show_counter(interview, view)
        except Exception:
            log.exception("could not update the counter of interview %s", interview.id)

    async def _notice(self, interview: Interview, text: str) -> None:
        try:
            await self._platform(interview).post_notice(interview, text)
        except Exception:
            log.exception("could not post a notice in interview %s", interview.id)

    def _view(self, interview: Interview, challenge: Challenge) -> CounterView:
        return build_counter(interview, challenge.title, self.clock.now())

    async def _challenge(self, interview: Interview) -> Challenge:
        return await self.challenges.get(interview.workspace_id, interview.challenge_slug)

    def _platform(self, interview: Interview) -> Platform:
        try:
            return self.platforms[interview.platform]
        except KeyError:
            raise NotFound(f"No adapter for platform {interview.platform!r} is running.") from None

    async def _get(self, interview_id: str) -> Interview:
        interview = await self.store.get_interview(interview_id)
        if interview is None:
            raise NotFound("That interview does not exist.")
        return interview

    async def _load_open(self, interview_id: str, actor: Actor) -> Interview:
        interview = await self._get(interview_id)
        _require_interviewer(actor, interview)
        return interview

    def _lock(self, interview_id: str) -> asyncio.Lock:
        return self._locks.setdefault(interview_id, asyncio.Lock())

    def _spawn(self, coro: Any) -> None:
        task: asyncio.Task[None] = asyncio.create_task(coro)
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    def _event(
        self, interview: Interview, actor: Actor | None, kind: str, **detail: Any
    ) -> AuditEvent:
        return AuditEvent(
            interview_id=interview.id,
            actor_id=actor.user_id if actor else "system",
            kind=kind,
            at=self.clock.now(),
            detail=detail,
        )


_EMPTY_MESSAGE: ChatMessage = {"role": "user", "content": ""}


def _check_caps(interview: Interview, seconds: int, tokens: int) -> None:
    """Extensions can't take an interview past 24 hours or 10,000,000 tokens in total."""
    if seconds > 0 and interview.allowed_time_s + seconds > MAX_DURATION_SECONDS:
        room = MAX_DURATION_SECONDS - interview.allowed_time_s
        raise InvalidInput(
            f"An interview can last at most {format_duration(MAX_DURATION_SECONDS)} in total; "
            f"this one is at {format_duration(interview.allowed_time_s)}, so "
            + (
                f"at most +{format_duration(room)} can be added."
                if room > 0
                else "no more time can be added."
            )
        )
    if tokens > 0 and interview.total_budget + tokens > MAX_TOKEN_BUDGET:
        room = MAX_TOKEN_BUDGET - interview.total_budget
        raise InvalidInput(
            f"An interview's budget can be at most {MAX_TOKEN_BUDGET:,} tokens in total; this "
            f"one is at {interview.total_budget:,}, so "
            + (
                f"at most +{room:,} tokens can be added."
                if room > 0
                else "no more tokens can be added."
            )
        )


def _pair(turn: Turn) -> list[ChatMessage]:
    return [{"role": "user", "content": turn.content}, {"role": "assistant", "content": turn.reply}]


def _require_interviewer(actor: Actor, interview: Interview | None = None) -> None:
    if interview is not None and actor.user_id == interview.candidate_id:
        raise NotAuthorized("Only interviewers can do that; candidates can't change their session.")
    if actor.is_interviewer or (
        interview is not None and actor.user_id == interview.interviewer_id
    ):
        return
    raise NotAuthorized("Only interviewers can do that. Ask a workspace admin to add you.")


def _not_running_text(interview: Interview) -> str:
    if interview.status is Status.PAUSED:
        return "⏸ The interview is paused. Your message is saved and will not be answered now."
    if interview.status is Status.ENDED:
        return "This interview has ended, so messages are no longer answered. Thank you!"
    return "This interview has not started yet."
