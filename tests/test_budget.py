"""Pure budget rules and parsing: property-based checks of the time arithmetic."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from core.budget import completion_cap, due_warnings, next_time_event, warning_level
from core.errors import InvalidInput
from core.models import Interview, Status
from core.parsing import format_duration, parse_duration, parse_tokens

T0 = datetime(2026, 3, 29, 0, 30, tzinfo=UTC)  # a DST night in Europe: UTC keeps it exact


def running(limit: int = 600, budget: int = 1000) -> Interview:
    interview = Interview(
        workspace_id="w",
        platform="test",
        candidate_id="c",
        interviewer_id="i",
        challenge_slug="two-sum",
        time_limit_s=limit,
        token_budget=budget,
        created_at=T0,
    )
    interview.transition(Status.ACTIVE)
    interview.started_at = T0
    return interview


operations = st.lists(
    st.one_of(
        st.tuples(st.just("advance"), st.integers(0, 400)),
        st.tuples(st.just("pause"), st.just(0)),
        st.tuples(st.just("resume"), st.just(0)),
        st.tuples(st.just("extend"), st.integers(1, 300)),
    ),
    max_size=40,
)


@given(limit=st.integers(1, 7200), ops=operations)
def test_remaining_time_matches_a_second_by_second_model(
    limit: int, ops: list[tuple[str, int]]
) -> None:
    interview = running(limit)
    now = T0
    remaining = limit  # the reference: seconds left, ticking only while running
    for op, arg in ops:
        if op == "advance":
            now += timedelta(seconds=arg)
            if interview.paused_since is None:
                remaining = max(0, remaining - arg)
        elif op == "pause" and interview.status is Status.ACTIVE and remaining > 0:
            interview.transition(Status.PAUSED)
            interview.paused_since = now
        elif op == "resume" and interview.status is Status.PAUSED:
            interview.transition(Status.ACTIVE)
            assert interview.paused_since is not None
            interview.paused_total_s += (now - interview.paused_since).total_seconds()
            interview.paused_since = None
        elif op == "extend" and remaining > 0:
            interview.extra_time_s += arg
            remaining += arg
        assert interview.seconds_left(now) == remaining
        deadline = interview.deadline(now)
        assert deadline is not None
        if remaining > 0:
            assert deadline == now + timedelta(seconds=remaining)


@given(budget=st.integers(1, 100_000), used=st.integers(0, 100_000), prompt=st.integers(0, 100_000))
def test_completion_cap_never_lets_a_call_pass_the_budget(
    budget: int, used: int, prompt: int
) -> None:
    left = max(0, budget - min(used, budget))
    cap = completion_cap(left, prompt)
    assert cap >= 0
    if cap > 0:
        assert min(used, budget) + prompt + cap == budget


def test_token_warning_levels() -> None:
    interview = running(budget=1000)
    interview.tokens_used = 749
    assert warning_level(interview, T0) == "ok" and due_warnings(interview, T0) == []
    interview.tokens_used = 750
    assert [w.key for w in due_warnings(interview, T0)] == ["tokens_75"]
    interview.tokens_used = 900
    assert warning_level(interview, T0) == "warning"
    interview.warnings_sent = ["tokens_75"]
    assert [w.key for w in due_warnings(interview, T0)] == ["tokens_90"]


def test_next_time_event_walks_the_thresholds_then_the_deadline() -> None:
    interview = running(limit=1000)
    assert next_time_event(interview, T0) == T0 + timedelta(seconds=750)
    interview.warnings_sent = ["time_25"]
    assert next_time_event(interview, T0) == T0 + timedelta(seconds=900)
    interview.warnings_sent = ["time_25", "time_10", "time_5"]
    assert next_time_event(interview, T0) == T0 + timedelta(seconds=1000)
    interview.transition(Status.PAUSED)
    assert next_time_event(interview, T0) is None


@pytest.mark.parametrize(
    ("text", "seconds"),
    [("45m", 2700), ("1h", 3600), ("1h30m", 5400), ("+10m", 600), ("90s", 90), ("2H", 7200)],
)
def test_parse_duration(text: str, seconds: int) -> None:
    assert parse_duration(text) == seconds


@pytest.mark.parametrize("text", ["45", "abc", "0m", "25h", "", "m", "1.5h"])
def test_parse_duration_rejects_with_the_right_form(text: str) -> None:
    with pytest.raises(InvalidInput, match="`"):
        parse_duration(text)


@pytest.mark.parametrize(
    ("text", "tokens"), [("20k", 20000), ("15000", 15000), ("+5k", 5000), ("2.5k", 2500)]
)
def test_parse_tokens(text: str, tokens: int) -> None:
    assert parse_tokens(text) == tokens


@pytest.mark.parametrize("text", ["0", "-5", "abc", "1.2345k", "20m", "99999999"])
def test_parse_tokens_rejects(text: str) -> None:
    with pytest.raises(InvalidInput):
        parse_tokens(text)


def test_format_duration() -> None:
    assert format_duration(4530) == "1h 15m 30s"
    assert format_duration(59) == "59s"
    assert format_duration(300) == "5m"
    assert format_duration(3605) == "1h 5s"
    assert format_duration(-3) == "0s"


# ---- the "about N more messages fit" forecast ---------------------------------------------


def test_messages_that_fit_accounts_for_the_growing_conversation() -> None:
    from core.budget import messages_that_fit

    # 1,000 left; the next message costs 300 + 100, then 400 + 100 (the conversation grew).
    assert messages_that_fit(1000, 300, 100) == 2
    assert messages_that_fit(899, 300, 100) == 1
    assert messages_that_fit(399, 300, 100) == 0
    # a conversation that did not grow would fit 2 more (not 3: each also adds a turn)
    assert messages_that_fit(1000, 400, 1) == 2
    assert messages_that_fit(10_000_000, 10, 1) == 99  # capped


@given(left=st.integers(0, 50_000), size=st.integers(1, 5000), growth=st.integers(1, 2000))
def test_messages_that_fit_is_what_a_turn_by_turn_simulation_gives(
    left: int, size: int, growth: int
) -> None:
    from core.budget import FORECAST_CAP, messages_that_fit

    fits = messages_that_fit(left, size, growth)
    costs = [size + growth * (k + 1) for k in range(fits + 1)]
    assert sum(costs[:fits]) <= left  # the forecast messages do fit
    assert fits == FORECAST_CAP or sum(costs) > left  # and one more would not


def test_forecast_warnings_fire_at_two_and_one_and_say_the_current_count() -> None:
    from core.budget import warning_text

    interview = running(budget=3000)
    interview.next_prompt_tokens, interview.turn_growth_tokens = 500, 200
    assert [t.key for t in due_warnings(interview, T0)] == []  # 700 + 900 + 1100 fit: 3
    interview.tokens_used = 700  # 2,300 left: 700 + 900 fit, 1,100 more would not
    (due,) = due_warnings(interview, T0)
    assert due.key == "messages_2"
    assert warning_text([due], interview).startswith("⚠️ About 2 more messages fit")
    interview.warnings_sent.append("messages_2")
    interview.tokens_used = 2000  # 1,000 left: only 700
    (due,) = due_warnings(interview, T0)
    assert due.key == "messages_1"
    assert "About 1 more message fits" in warning_text([due], interview)
    assert warning_level(interview, T0) == "critical"


def test_a_forecast_that_jumps_past_two_warns_once_with_the_latest_count() -> None:
    from core.budget import warning_text

    interview = running(budget=3000)
    interview.next_prompt_tokens, interview.turn_growth_tokens = 500, 200
    interview.tokens_used = 2500  # 500 left: not even one
    due = due_warnings(interview, T0)
    assert {t.key for t in due} == {"tokens_75", "messages_2", "messages_1"}
    text = warning_text(due, interview)
    assert text.count("⚠️") == 1 and "75% of the token budget is used." in text
    assert "Your next message may not fit" in text and "About 2" not in text


def test_exhausted_when_not_even_a_short_turn_fits() -> None:
    from core.budget import MIN_TURN_TOKENS, exhausted

    assert not exhausted(1000 + MIN_TURN_TOKENS, 1000)
    assert exhausted(1000 + MIN_TURN_TOKENS - 1, 1000)
