"""The interview service over in-memory fakes: lifecycle, budgets, warnings, authorization."""

from __future__ import annotations

import asyncio
import itertools
from datetime import timedelta

import pytest

from core.errors import Conflict, IllegalTransition, InvalidInput, NotAuthorized
from core.models import Actor, Challenge, EndReason, Interview, Status, Turn, TurnStatus
from core.ports import ChatRequest, ChatResult, OnDelta, Usage
from core.tokens import TokenCounter
from tests.conftest import CANDIDATE, INTERVIEWER, Engine, make_engine


async def start(engine: Engine, **kwargs: object) -> Interview:
    return await engine.service.lifecycle.start(engine.workspace, INTERVIEWER, CANDIDATE, **kwargs)  # type: ignore[arg-type]


async def say(engine: Engine, interview: Interview, text: str, msg_id: str) -> None:
    assert interview.room_key is not None
    await engine.service.turns.handle_message("test", interview.room_key, CANDIDATE, msg_id, text)


async def test_start_opens_room_posts_counter_and_audits(engine: Engine) -> None:
    interview = await start(engine, time_limit_s=600, token_budget=5000, challenge_slug="lru-cache")
    stored = await engine.store.get_interview(interview.id)
    assert stored is not None and stored.status is Status.ACTIVE
    assert stored.started_at == engine.clock.now()
    assert stored.room_key == engine.platform.rooms[interview.id]
    assert engine.platform.counters[-1].seconds_left == 600
    assert engine.platform.counters[-1].challenge_title == "LRU Cache"
    kinds = [e.kind for e in await engine.store.list_audit(interview.id)]
    assert kinds == ["created", "started"]


async def test_limits_come_from_the_command_else_the_challenge_else_the_defaults() -> None:
    engine = await make_engine(time_limit_s=1234, token_budget=7777, challenge_slug="plain")
    await engine.store.save_custom_challenge(
        None, Challenge("plain", "Plain", "easy", "No suggested limits.", builtin=False)
    )
    try:
        interview = await start(engine)
        assert (interview.time_limit_s, interview.token_budget, interview.challenge_slug) == (
            1234,
            7777,
            "plain",
        )
        await engine.service.lifecycle.end(INTERVIEWER, interview.id)
        # url-shortener suggests 1h and 30k: used when the command gives no limits
        suggested = await start(engine, challenge_slug="url-shortener")
        assert (suggested.time_limit_s, suggested.token_budget) == (3600, 30_000)
        await engine.service.lifecycle.end(INTERVIEWER, suggested.id)
        explicit = await start(
            engine, challenge_slug="url-shortener", time_limit_s=600, token_budget=2000
        )
        assert (explicit.time_limit_s, explicit.token_budget) == (600, 2000)
    finally:
        await engine.service.close()


async def test_second_interview_for_same_candidate_is_refused(engine: Engine) -> None:
    await start(engine)
    with pytest.raises(Conflict, match="already has an active interview"):
        await start(engine)
    assert len(engine.db.interviews) == 1


async def test_unknown_challenge_changes_nothing(engine: Engine) -> None:
    with pytest.raises(Exception, match="no challenge `nope`"):
        await start(engine, challenge_slug="nope")
    assert engine.db.interviews == {}


async def test_failed_room_opening_cancels_and_reports(engine: Engine) -> None:
    engine.platform.fail_open = True
    with pytest.raises(Conflict, match="couldn't open the private conversation"):
        await start(engine)
    (stored,) = engine.db.interviews.values()
    assert stored.status is Status.ENDED and stored.end_reason is EndReason.CANCELLED


async def test_candidate_message_is_answered_and_charged_by_reported_usage(engine: Engine) -> None:
    interview = await start(engine, token_budget=20_000)
    await say(engine, interview, "How do I start?", "m1")
    (turn,) = await engine.store.list_turns(interview.id)
    assert turn.status is TurnStatus.ANSWERED and turn.usage_reported
    assert engine.platform.replies[0].text == turn.reply and turn.reply
    counter = TokenCounter("gpt-4o-mini")
    assert turn.completion_tokens == counter.count_text(turn.reply)
    assert turn.charged_tokens == turn.prompt_tokens + turn.completion_tokens
    stored = await engine.store.get_interview(interview.id)
    assert stored is not None and stored.tokens_used == turn.charged_tokens
    assert engine.platform.counters[-1].tokens_used == turn.charged_tokens
    assert "offline model" in (engine.platform.replies[0].footer or "")


async def test_history_is_resent_each_turn(engine: Engine) -> None:
    interview = await start(engine)
    await say(engine, interview, "first", "m1")
    await say(engine, interview, "second", "m2")
    first, second = await engine.store.list_turns(interview.id)
    assert second.prompt_tokens > first.prompt_tokens + first.completion_tokens


async def test_redelivered_message_is_answered_once(engine: Engine) -> None:
    interview = await start(engine)
    await asyncio.gather(*(say(engine, interview, "hello", "same-id") for _ in range(5)))
    assert len(await engine.store.list_turns(interview.id)) == 1
    assert len(engine.platform.replies) == 1


async def test_only_the_candidates_messages_go_to_the_model(engine: Engine) -> None:
    interview = await start(engine)
    assert interview.room_key is not None
    await engine.service.turns.handle_message(
        "test", interview.room_key, INTERVIEWER.user_id, "x", "hi"
    )
    await engine.service.turns.handle_message("test", "other-room", CANDIDATE, "y", "hi")
    assert engine.platform.replies == []


async def test_non_interviewers_cannot_act(engine: Engine) -> None:
    stranger = Actor("U_X", is_interviewer=False)
    with pytest.raises(NotAuthorized):
        await engine.service.lifecycle.start(engine.workspace, stranger, CANDIDATE)
    interview = await start(engine)
    candidate = Actor(CANDIDATE, is_interviewer=True)  # even an admin can't run their own session
    for action in (
        lambda a: engine.service.lifecycle.extend(a, interview.id, seconds=60),
        lambda a: engine.service.lifecycle.pause(a, interview.id),
        lambda a: engine.service.lifecycle.end(a, interview.id),
    ):
        for actor in (stranger, candidate):
            with pytest.raises(NotAuthorized):
                await action(actor)
    stored = await engine.store.get_interview(interview.id)
    assert stored is not None and stored.status is Status.ACTIVE and stored.extra_time_s == 0


async def test_expiry_without_activity_and_time_warnings_once_each(engine: Engine) -> None:
    interview = await start(engine, time_limit_s=1000)
    engine.clock.advance(749)
    await engine.service.settle()
    assert not any("25%" in t for t in engine.platform.notice_texts())
    engine.clock.advance(1)  # 250 s of 1000 left
    await engine.service.settle()
    engine.clock.advance(150)  # 100 left
    await engine.service.settle()
    engine.clock.advance(50)  # 50 left
    await engine.service.settle()
    texts = engine.platform.notice_texts()
    assert [t for t in texts if "time is left" in t] == [
        "⚠️ 25% of the time is left.",
        "⚠️ 10% of the time is left.",
        "⚠️ 5% of the time is left.",
    ]
    assert engine.platform.counters[-1].warning_level == "critical"
    engine.clock.advance(49)
    await engine.service.settle()
    assert (await engine.store.get_interview(interview.id)).status is Status.ACTIVE  # type: ignore[union-attr]
    engine.clock.advance(1)
    await engine.service.settle()
    stored = await engine.store.get_interview(interview.id)
    assert stored is not None and stored.status is Status.ENDED
    assert stored.end_reason is EndReason.TIME_UP and stored.ended_at == engine.clock.now()
    assert engine.platform.closed == [
        (interview.id, "Time is up. This interview has ended. Thank you!")
    ]


async def test_pause_stops_the_clock_and_keeps_messages_unanswered(engine: Engine) -> None:
    interview = await start(engine, time_limit_s=600)
    engine.clock.advance(100)
    await engine.service.lifecycle.pause(INTERVIEWER, interview.id)
    engine.clock.advance(3600)
    await engine.service.settle()
    await say(engine, interview, "are you there?", "m1")
    (turn,) = await engine.store.list_turns(interview.id)
    assert turn.status is TurnStatus.UNANSWERED and engine.platform.replies == []
    assert any("paused" in t for t in engine.platform.notice_texts())
    assert engine.platform.counters[-1].seconds_left == 500
    with pytest.raises(IllegalTransition):
        await engine.service.lifecycle.pause(INTERVIEWER, interview.id)
    await engine.service.lifecycle.resume(INTERVIEWER, interview.id)
    stored = await engine.store.get_interview(interview.id)
    assert stored is not None and stored.seconds_left(engine.clock.now()) == 500
    engine.clock.advance(499)
    await engine.service.settle()
    assert (await engine.store.get_interview(interview.id)).status is Status.ACTIVE  # type: ignore[union-attr]
    engine.clock.advance(1)
    await engine.service.settle()
    assert (await engine.store.get_interview(interview.id)).end_reason is EndReason.TIME_UP  # type: ignore[union-attr]
    kinds = [e.kind for e in await engine.store.list_audit(interview.id)]
    assert kinds[:4] == ["created", "started", "paused", "resumed"] and kinds[-1] == "ended"


async def test_extension_moves_deadline_and_rearms_warnings(engine: Engine) -> None:
    interview = await start(engine, time_limit_s=1000)
    engine.clock.advance(800)
    await engine.service.settle()
    assert "time_25" in (await engine.store.get_interview(interview.id)).warnings_sent  # type: ignore[union-attr]
    await engine.service.lifecycle.extend(INTERVIEWER, interview.id, seconds=600)
    stored = await engine.store.get_interview(interview.id)
    assert stored is not None and stored.seconds_left(engine.clock.now()) == 800
    assert "time_25" not in stored.warnings_sent
    engine.clock.advance(399)  # 401 of 1600 left: above 25 %
    await engine.service.settle()
    engine.clock.advance(1)
    await engine.service.settle()
    assert [t for t in engine.platform.notice_texts() if "25%" in t] == [
        "⚠️ 25% of the time is left."
    ] * 2
    with pytest.raises(InvalidInput):
        await engine.service.lifecycle.extend(INTERVIEWER, interview.id)


async def test_end_by_interviewer_then_messages_get_polite_refusal(engine: Engine) -> None:
    interview = await start(engine)
    await engine.service.lifecycle.end(INTERVIEWER, interview.id)
    await say(engine, interview, "one more question", "m1")
    assert engine.platform.replies == []
    assert engine.platform.notice_texts()[-1].startswith("This interview has ended")
    with pytest.raises(IllegalTransition):
        await engine.service.lifecycle.end(INTERVIEWER, interview.id)
    with pytest.raises(IllegalTransition):
        await engine.service.lifecycle.extend(INTERVIEWER, interview.id, tokens=5)


def _is_token_warning(text: str) -> bool:
    return text.startswith("⚠️") and ("token budget" in text)


@pytest.mark.parametrize("budget", range(1000, 12_001, 500))
@pytest.mark.parametrize("challenge", ["two-sum", "lru-cache", "url-shortener"])
@pytest.mark.parametrize("words", [3, 40, 250])
async def test_every_session_that_runs_out_of_tokens_was_warned_before_its_last_answer(
    budget: int, challenge: str, words: int
) -> None:
    engine = await make_engine()
    try:
        interview = await start(engine, token_budget=budget, challenge_slug=challenge)
        question = "please explain " * words
        for i in range(80):
            await say(engine, interview, f"question {i}: {question}", f"m{i}")
            stored = await engine.store.get_interview(interview.id)
            assert stored is not None and stored.tokens_used <= budget
            if stored.status is Status.ENDED:
                break
            if (await engine.store.list_turns(interview.id))[-1].status is TurnStatus.REFUSED:
                question = ""  # told the message does not fit, the candidate writes less
        assert stored.end_reason is EndReason.TOKENS_EXHAUSTED
        turns = await engine.store.list_turns(interview.id)
        assert sum(t.charged_tokens for t in turns) == stored.tokens_used
        timeline = engine.platform.timeline
        answered = [i for i, (kind, _) in enumerate(timeline) if kind == "reply"]
        warned = [i for i, (kind, text) in enumerate(timeline) if _is_token_warning(text)]
        assert answered, "the budget allowed no answer at all"
        assert warned and warned[0] < answered[-1], timeline
        # each warning once
        assert len(stored.warnings_sent) == len(set(stored.warnings_sent))
    finally:
        await engine.service.close()


class FixedUsageModel:
    """Reports a fixed usage per call, to place the budget thresholds exactly."""

    label = None

    async def stream_chat(self, request: ChatRequest, on_delta: OnDelta) -> ChatResult:
        await on_delta("ok")
        return ChatResult(text="ok", usage=Usage(900, 100), reached_model=True)


async def test_token_thresholds_fire_once_each_at_75_and_90_percent() -> None:
    engine = await make_engine(FixedUsageModel())
    try:
        interview = await start(engine, token_budget=10_000)
        warned_after: dict[str, int] = {}
        for i in range(10):
            await say(engine, interview, "q", f"m{i}")
            for text in engine.platform.notice_texts():
                warned_after.setdefault(text, i + 1)
        assert warned_after == {
            "⚠️ 75% of the token budget is used.": 8,
            "⚠️ 90% of the token budget is used.": 9,
        }
        stored = await engine.store.get_interview(interview.id)
        assert stored is not None and stored.tokens_used == 10_000
        assert stored.end_reason is EndReason.TOKENS_EXHAUSTED
        assert engine.platform.counters[-1].tokens_used_pct == 100
    finally:
        await engine.service.close()


async def test_prompt_that_does_not_fit_is_refused_and_costs_nothing(engine: Engine) -> None:
    interview = await start(engine, token_budget=1200)
    await say(engine, interview, "word " * 1500, "big")  # under MAX_MESSAGE_CHARS
    (turn,) = await engine.store.list_turns(interview.id)
    assert turn.status is TurnStatus.REFUSED and turn.charged_tokens == 0
    notice = engine.platform.notice_texts()[-1]
    assert f"needs ~{turn.prompt_tokens:,} tokens, 1,200 remain" in notice
    stored = await engine.store.get_interview(interview.id)
    assert stored is not None and stored.tokens_used == 0 and stored.status is Status.ACTIVE


async def test_concurrent_messages_are_serialised_in_order_and_never_overspend() -> None:
    engine = await make_engine()
    try:
        interview = await start(engine, token_budget=4000)
        await asyncio.gather(*(say(engine, interview, f"msg {i}", f"m{i}") for i in range(25)))
        stored = await engine.store.get_interview(interview.id)
        assert stored is not None and stored.tokens_used <= 4000
        assert stored.end_reason is EndReason.TOKENS_EXHAUSTED
        turns = await engine.store.list_turns(interview.id)
        answered = [t for t in turns if t.status is TurnStatus.ANSWERED]
        assert len(answered) >= 2
        # each answered prompt contains every earlier answered exchange: one turn at a time
        for earlier, later in itertools.pairwise(answered):
            assert later.prompt_tokens > earlier.prompt_tokens + earlier.completion_tokens - 1
        assert sum(t.charged_tokens for t in turns) == stored.tokens_used
    finally:
        await engine.service.close()


class BrokenStreamModel:
    """Streams some text, then the connection drops: no usage reported."""

    label = None

    async def stream_chat(self, request: ChatRequest, on_delta: OnDelta) -> ChatResult:
        await on_delta("partial answer")
        return ChatResult(text="partial answer", usage=None, error="cut off", reached_model=True)


class RejectedModel:
    label = None

    async def stream_chat(self, request: ChatRequest, on_delta: OnDelta) -> ChatResult:
        return ChatResult(text="", usage=None, error="rate-limited", reached_model=False)


class OverReportingModel:
    """An endpoint whose tokenizer disagrees with ours and reports more than the cap."""

    label = None

    async def stream_chat(self, request: ChatRequest, on_delta: OnDelta) -> ChatResult:
        await on_delta("x")
        return ChatResult(
            text="x",
            usage=Usage(request.max_completion_tokens, request.max_completion_tokens),
            reached_model=True,
        )


async def test_broken_stream_charges_what_was_really_spent() -> None:
    engine = await make_engine(BrokenStreamModel())
    try:
        interview = await start(engine)
        await say(engine, interview, "hi", "m1")
        (turn,) = await engine.store.list_turns(interview.id)
        expected = turn.prompt_tokens + TokenCounter("gpt-4o-mini").count_text("partial answer")
        assert turn.status is TurnStatus.FAILED and turn.charged_tokens == expected
        assert engine.platform.replies[0].failure is not None
        assert "cut off" in engine.platform.replies[0].failure
    finally:
        await engine.service.close()


async def test_call_that_never_reached_the_model_costs_nothing() -> None:
    engine = await make_engine(RejectedModel())
    try:
        interview = await start(engine)
        await say(engine, interview, "hi", "m1")
        (turn,) = await engine.store.list_turns(interview.id)
        assert turn.status is TurnStatus.FAILED and turn.charged_tokens == 0
        assert "rate-limited" in (engine.platform.replies[0].failure or "")
    finally:
        await engine.service.close()


async def test_usage_over_budget_is_capped_and_audited() -> None:
    engine = await make_engine(OverReportingModel())
    try:
        interview = await start(engine, token_budget=3000)
        await say(engine, interview, "hi", "m1")
        stored = await engine.store.get_interview(interview.id)
        assert stored is not None and stored.tokens_used == 3000
        assert "budget_overrun" in [e.kind for e in await engine.store.list_audit(interview.id)]
    finally:
        await engine.service.close()


async def test_recover_rearms_timers_and_charges_interrupted_turns(engine: Engine) -> None:
    interview = await start(engine, time_limit_s=600)
    await say(engine, interview, "hello", "m1")
    # as if the process died mid-stream: the reservation held, nothing charged yet
    (turn,) = engine.db.turns[interview.id]
    stored = engine.db.interviews[interview.id]
    stored.tokens_used -= turn.charged_tokens
    stored.tokens_reserved += turn.reserved_tokens
    turn.status, turn.charged_tokens = TurnStatus.STREAMING, 0
    used_before = stored.tokens_used
    await engine.service.close()
    restarted = type(engine.service)(
        engine.store.uow, engine.service.model, engine.clock, {"test": engine.platform}
    )
    try:
        await restarted.recover()
        stored = await engine.store.get_interview(interview.id)
        assert stored is not None
        assert stored.tokens_used == used_before + turn.prompt_tokens
        assert stored.tokens_reserved == 0
        assert "please send it again" in engine.platform.notice_texts()[-1]
        engine.clock.advance(timedelta(minutes=10))
        await restarted.settle()
        stored = await engine.store.get_interview(interview.id)
        assert stored is not None and stored.end_reason is EndReason.TIME_UP
    finally:
        await restarted.close()


async def test_find_for_command_without_a_mention(engine: Engine) -> None:
    with pytest.raises(Exception, match="no active interview"):
        await engine.service.queries.find_for_command(engine.workspace, INTERVIEWER, None)
    interview = await start(engine)
    found = await engine.service.queries.find_for_command(engine.workspace, INTERVIEWER, None)
    assert found.id == interview.id
    await engine.service.lifecycle.start(engine.workspace, INTERVIEWER, "U_OTHER")
    with pytest.raises(InvalidInput, match="2 active interviews"):
        await engine.service.queries.find_for_command(engine.workspace, INTERVIEWER, None)


async def test_losing_a_start_race_cancels_the_loser_and_closes_its_room(engine: Engine) -> None:
    results = await asyncio.gather(start(engine), start(engine), return_exceptions=True)
    assert sum(isinstance(r, Conflict) for r in results) == 1
    states = sorted(
        (i.status.value, i.end_reason.value if i.end_reason else "")
        for i in engine.db.interviews.values()
    )
    assert states in ([("active", "")], [("active", ""), ("ended", "cancelled")])
    opened = [i for i in engine.db.interviews.values() if i.room_key]
    assert len(engine.platform.closed) == len(opened) - 1


async def test_recover_answers_messages_stored_before_a_crash(engine: Engine) -> None:
    interview = await start(engine)
    pending = Turn(
        interview_id=interview.id,
        author_id=CANDIDATE,
        content="stored, then the process died",
        platform_message_id="m-crash",
        created_at=engine.clock.now(),
    )
    async with engine.store.uow() as uow:
        assert await uow.interviews.add_turn(pending)
        await uow.commit()
    await engine.service.recover()
    await engine.service.settle()
    (turn,) = await engine.store.list_turns(interview.id)
    assert turn.status is TurnStatus.ANSWERED and turn.charged_tokens > 0
    assert len(engine.platform.replies) == 1


async def test_adapter_changes_to_platform_data_are_persisted(engine: Engine) -> None:
    interview = await start(engine)

    async def repost(i: Interview, view: object) -> None:
        i.platform_data["counter_message"] = "fresh"

    engine.platform.show_counter = repost  # type: ignore[method-assign,assignment]
    await engine.service.lifecycle.extend(INTERVIEWER, interview.id, seconds=60)
    stored = await engine.store.get_interview(interview.id)
    assert stored is not None and stored.platform_data["counter_message"] == "fresh"


class EndlessModel:
    """Streams until cancelled, like a long answer."""

    label = None

    def __init__(self) -> None:
        self.started = asyncio.Event()

    async def stream_chat(self, request: ChatRequest, on_delta: OnDelta) -> ChatResult:
        await on_delta("Let me explain at length")
        self.started.set()
        await asyncio.Event().wait()
        raise AssertionError("unreachable")


async def test_a_reply_still_streaming_at_the_deadline_is_stopped_and_the_session_ends() -> None:
    model = EndlessModel()
    engine = await make_engine(model)
    try:
        interview = await start(engine, time_limit_s=600)
        engine.clock.advance(590)
        talking = asyncio.create_task(say(engine, interview, "explain everything", "m1"))
        await model.started.wait()
        engine.clock.advance(10)
        await asyncio.wait_for(talking, 5)
        (turn,) = await engine.store.list_turns(interview.id)
        counter = TokenCounter("gpt-4o-mini")
        assert turn.status is TurnStatus.FAILED
        assert turn.charged_tokens == turn.prompt_tokens + counter.count_text(
            "Let me explain at length"
        )
        assert "Time is up" in (engine.platform.replies[0].failure or "")
        stored = await engine.store.get_interview(interview.id)
        assert stored is not None and stored.end_reason is EndReason.TIME_UP
        assert stored.ended_at == interview.started_at + timedelta(seconds=600)  # type: ignore[operator]
    finally:
        await engine.service.close()


@pytest.mark.parametrize(
    ("steps", "message"),
    [
        (["24h", "23h59m", "23h"], "at most +23h 15m can be added"),
        (["23h15m", "1m"], "no more time can be added"),
    ],
)
async def test_repeated_extensions_cannot_pass_24_hours_in_total(
    engine: Engine, steps: list[str], message: str
) -> None:
    from core.parsing import parse_duration

    interview = await start(engine, time_limit_s=45 * 60)
    errors = []
    for step in steps:
        try:
            await engine.service.lifecycle.extend(
                INTERVIEWER, interview.id, seconds=parse_duration(step)
            )
        except InvalidInput as exc:
            errors.append(str(exc))
    assert errors and message in errors[0]
    stored = await engine.store.get_interview(interview.id)
    assert stored is not None and stored.allowed_time_s <= 24 * 3600
    assert engine.platform.counters[-1].seconds_left <= 24 * 3600


async def test_token_extensions_cannot_pass_ten_million_in_total(engine: Engine) -> None:
    interview = await start(engine, token_budget=20_000)
    await engine.service.lifecycle.extend(INTERVIEWER, interview.id, tokens=9_000_000)
    with pytest.raises(InvalidInput, match=r"at most \+980,000 tokens can be added"):
        await engine.service.lifecycle.extend(INTERVIEWER, interview.id, tokens=5_000_000)
    await engine.service.lifecycle.extend(INTERVIEWER, interview.id, tokens=980_000)
    with pytest.raises(InvalidInput, match="no more tokens can be added"):
        await engine.service.lifecycle.extend(INTERVIEWER, interview.id, tokens=1)
    stored = await engine.store.get_interview(interview.id)
    assert stored is not None and stored.total_budget == 10_000_000


async def test_recover_closes_an_overdue_interview_before_returning(engine: Engine) -> None:
    interview = await start(engine, time_limit_s=600)
    await engine.service.close()
    engine.clock.advance(timedelta(minutes=30))  # the bot was down past the deadline
    restarted = type(engine.service)(
        engine.store.uow, engine.service.model, engine.clock, {"test": engine.platform}
    )
    try:
        await restarted.recover()  # no settle(): closed by the time recover() returns
        assert await engine.store.list_open() == []
        stored = await engine.store.get_interview(interview.id)
        assert stored is not None and stored.end_reason is EndReason.TIME_UP
        assert engine.platform.closed[-1][0] == interview.id
    finally:
        await restarted.close()


async def test_final_counter_of_an_early_end_shows_the_time_that_was_left(engine: Engine) -> None:
    interview = await start(engine, time_limit_s=600)
    engine.clock.advance(timedelta(minutes=3, seconds=20))
    await engine.service.lifecycle.end(INTERVIEWER, interview.id)
    final = engine.platform.counters[-1]
    assert final.status is Status.ENDED and final.seconds_left == 400
    from core.counter import counter_text

    assert counter_text(final).startswith("⏱ ended with 6m 40s left")


async def test_a_reply_cut_short_by_shutdown_is_recorded_and_charged() -> None:
    model = EndlessModel()
    engine = await make_engine(model)
    try:
        interview = await start(engine, time_limit_s=600)
        talking = asyncio.create_task(say(engine, interview, "explain everything", "m1"))
        await model.started.wait()
        talking.cancel()  # Ctrl-C in the console, SIGTERM in the bot
        with pytest.raises(asyncio.CancelledError):
            await talking
        (turn,) = await engine.store.list_turns(interview.id)
        assert turn.status is TurnStatus.FAILED and turn.error and "interrupted" in turn.error
        counter = TokenCounter("gpt-4o-mini")
        assert turn.reply == "Let me explain at length"
        assert turn.charged_tokens == turn.prompt_tokens + counter.count_text(turn.reply)
        stored = await engine.store.get_interview(interview.id)
        assert stored is not None and stored.tokens_used == turn.charged_tokens
    finally:
        await engine.service.close()
