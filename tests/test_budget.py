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
