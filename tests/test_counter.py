"""The counter view a moment later: only the time left moves, and only while the clock runs."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from core.counter import CounterView
from core.models import Status

AS_OF = datetime(2026, 1, 2, 15, 0, tzinfo=UTC)


def view(status: Status = Status.ACTIVE, seconds_left: int = 600) -> CounterView:
    return CounterView(
        interview_id="i1",
        candidate_id="U1",
        interviewer_id="U2",
        challenge_title="Two Sum",
        status=status,
        end_reason=None,
        seconds_left=seconds_left,
        allowed_seconds=1200,
        deadline=AS_OF + timedelta(seconds=seconds_left),
        tokens_used=100,
        token_budget=1000,
        tokens_left=900,
        tokens_used_pct=10,
        time_left_pct=50,
        warning_level="notice",
        as_of=AS_OF,
    )


def test_the_time_left_moves_on_and_nothing_else() -> None:
    moment = AS_OF + timedelta(seconds=300.5)
    later = view().at(moment)
    assert (later.seconds_left, later.time_left_pct, later.as_of) == (299, 25, moment)
    assert (later.tokens_used, later.warning_level) == (100, "notice")
    assert view().at(AS_OF + timedelta(hours=1)).seconds_left == 0  # never below zero


@pytest.mark.parametrize("status", [Status.PAUSED, Status.SCHEDULED, Status.ENDED])
def test_a_stopped_clock_stays_where_it_is(status: Status) -> None:
    stopped = view(status)
    assert stopped.at(AS_OF + timedelta(seconds=300)) is stopped


def test_an_earlier_moment_changes_nothing() -> None:
    current = view()
    assert current.at(AS_OF - timedelta(seconds=5)) is current
