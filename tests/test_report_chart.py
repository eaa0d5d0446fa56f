"""The report chart: a decodable PNG of the right size, small, deterministic, safe in threads,
and the turn markers really drawn."""

from __future__ import annotations

import dataclasses
import io
from concurrent.futures import ThreadPoolExecutor

import numpy as np
from PIL import Image

from adapters.report_chart import _WARNING_LABELS, _place_warnings, render_chart
from core.report_metrics import Timeline, TurnPoint

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
VERMILLION = (0xD5, 0x5E, 0x00)  # the refused marker's edge


def typical() -> Timeline:
    minutes = [1.5, 4.2, 7.8, 11.0, 14.5, 19.0, 23.5, 27.0, 33.0, 38.0, 44.0, 49.5]
    turns = [
        TurnPoint(minute, 1_900 * seq, seq, "failed" if seq == 7 else "answered")
        for seq, minute in enumerate(minutes, start=1)
    ]
    return Timeline(
        title="Alice · Backend: rate limiter",
        turns=turns,
        budget_steps=[(0.0, 20_000), (30.0, 25_000)],
        deadlines=[(0.0, 45.0, "limit"), (20.0, 48.0, "pause"), (36.0, 58.0, "+10m")],
        warnings=[
            (24.0, "time_25"),
            (30.0, "tokens_75"),
            (38.0, "tokens_90"),
            (38.0, "messages_2"),
        ],
        pauses=[(17.0, 20.0)],
        end_minute=58.0,
        end_reason="time_up",
        tokens_used=turns[-1].tokens,
    )


def large() -> Timeline:
    statuses = ["answered"] * 7 + ["failed", "refused", "answered"]
    turns = [
        TurnPoint(seq * 0.6, 350 * seq, seq, statuses[seq % len(statuses)]) for seq in range(200)
    ]
    return Timeline(
        title="A long session " * 10,
        turns=turns,
        budget_steps=[(0.0, 50_000), (30.0, 60_000), (60.0, 70_000), (90.0, 80_000)],
        deadlines=[
            (0.0, 90.0, "limit"),
            (20.0, 95.0, "pause"),
            (50.0, 105.0, "+10m"),
            (70.0, 110.0, "pause"),
            (80.0, 120.0, "+10m +5,000 tokens"),
        ],
        warnings=[(10.0 * i, key) for i, key in enumerate(_WARNING_LABELS)] * 2,
        pauses=[(15.0, 20.0), (65.0, 70.0), (100.0, 101.0)],
        end_minute=120.0,
        end_reason="ended_by_interviewer",
        tokens_used=turns[-1].tokens,
    )


def empty() -> Timeline:
    return Timeline(
        title="Nobody wrote",
        turns=[],
        budget_steps=[(0.0, 20_000)],
        deadlines=[(0.0, 45.0, "limit")],
        warnings=[],
        pauses=[],
        end_minute=0.0,
        end_reason="cancelled",
    )


def decode(png: bytes) -> Image.Image:
    assert png.startswith(PNG_SIGNATURE)
    image = Image.open(io.BytesIO(png))
    image.load()
    return image


def test_a_png_of_the_expected_size() -> None:
    image = decode(render_chart(typical()))
    assert image.format == "PNG"
    assert image.size == (1200, 650)


def test_a_large_session_stays_small() -> None:
    png = render_chart(large())
    assert decode(png).size == (1200, 650)
    assert len(png) < 200_000


def test_the_same_timeline_gives_the_same_bytes() -> None:
    assert render_chart(typical()) == render_chart(typical())


def test_worker_threads_give_the_same_bytes() -> None:
    expected = render_chart(typical())
    with ThreadPoolExecutor(max_workers=4) as pool:
        results = list(pool.map(lambda _: render_chart(typical()), range(4)))
    assert results == [expected] * 4


def test_an_empty_timeline_renders() -> None:
    assert decode(render_chart(empty())).size == (1200, 650)


def test_a_timeline_with_nothing_at_all_renders() -> None:
    bare = dataclasses.replace(empty(), budget_steps=[], deadlines=[], end_reason=None)
    assert decode(render_chart(bare)).size == (1200, 650)


def test_unknown_keys_render_as_they_are() -> None:
    odd = dataclasses.replace(typical(), warnings=[(3.0, "new_kind")], end_reason="mystery")
    assert decode(render_chart(odd)).size == (1200, 650)


def test_a_refused_turn_is_drawn() -> None:
    without = typical()
    refused = TurnPoint(50.5, without.turns[-1].tokens, 13, "refused")
    with_refused = dataclasses.replace(without, turns=[*without.turns, refused])
    before, after = render_chart(without), render_chart(with_refused)
    assert before != after
    # Its marker in the plot (not only the legend, which sits at the bottom).
    assert vermillion_pixels(before) == 0
    assert vermillion_pixels(after) > 20


def vermillion_pixels(png: bytes) -> int:
    pixels = np.asarray(decode(png).convert("RGB"), dtype=int)
    plot = pixels[: int(len(pixels) * 0.85)]  # above the legend
    return int((abs(plot - VERMILLION) < 40).all(axis=2).sum())


def test_warnings_at_one_minute_stack_and_distant_ones_share_a_row() -> None:
    labels = _place_warnings(
        [(40.0, "messages_2"), (10.0, "time_25"), (40.0, "tokens_90"), (80.0, "time_10")],
        x_max=100.0,
    )
    rows = {label.key: label.row for label in labels}
    assert rows["time_25"] == rows["time_10"] == 0
    assert {rows["tokens_90"], rows["messages_2"]} == {0, 1}
    assert rows["tokens_90"] < rows["messages_2"]  # tokens first, then the forecast


def test_close_warnings_take_different_rows() -> None:
    labels = _place_warnings([(50.0, "time_10"), (52.0, "time_5")], x_max=100.0)
    assert [label.row for label in labels] == [0, 1]
