"""The evaluation report's chart: cumulative tokens per turn against the token budget over the
session, with the time limit as it moved, pauses, warnings and the end.

Headless matplotlib (a ``Figure`` on an Agg canvas, no pyplot), so it keeps no global state,
can run in a worker thread and gives the same bytes for the same timeline. Sized for a Slack
preview: big type, thick lines, the Okabe-Ito colour-blind-safe palette. matplotlib (about
50 MiB with numpy) is imported by the first render, not when the bot starts.
"""

from __future__ import annotations

import io
from collections.abc import Sequence
from dataclasses import dataclass
from itertools import pairwise
from typing import TYPE_CHECKING

from core.report_metrics import Timeline, TurnPoint

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure
    from matplotlib.lines import Line2D

__all__ = ["render_chart"]

_WIDTH_PX, _HEIGHT_PX, _DPI = 1200, 650, 150

# Okabe-Ito, with darker shades of the light hues for text on white.
_BLUE = "#0072B2"
_GREEN = "#009E73"
_GREEN_TEXT = "#00734F"
_PURPLE = "#CC79A7"
_PURPLE_TEXT = "#A24D80"
_ORANGE = "#E69F00"
_VERMILLION = "#D55E00"
_BLACK = "#000000"
_GREY = "#BBBBBB"
_GREY_TEXT = "#555555"

_WARNING_LABELS = {
    "tokens_75": "75% tokens",
    "tokens_90": "90% tokens",
    "messages_2": "2 msgs left",
    "messages_1": "1 msg left",
    "time_25": "25% time",
    "time_10": "10% time",
    "time_5": "5% time",
}
_END_LABELS = {
    "time_up": "time up",
    "tokens_exhausted": "tokens exhausted",
    "ended_by_interviewer": "ended by interviewer",
    "cancelled": "cancelled",
}
_MAX_LABELLED_TURNS = 15
_X_MARGIN = 0.05
_MAX_TITLE_CHARS = 70

_FONT = 12
_SMALL = 10
_LINE = 2.5
_MARKER_SIZE = 8.0
_TEXT_BACKGROUND = {
    "boxstyle": "square,pad=0.05",
    "facecolor": "white",
    "edgecolor": "none",
    "alpha": 0.75,
}
# The plot area's size after layout, about; for fitting the warning labels.
_AXES_WIDTH_PX, _AXES_HEIGHT_PX = 1040, 460
_CHAR_WIDTH = 0.6 * _SMALL / 72 * _DPI / _AXES_WIDTH_PX  # axes fraction, about
_TRIANGLE_PT, _ROW_PT, _BUDGET_LABEL_PT = 12.0, 13.0, 20.0


def render_chart(timeline: Timeline) -> bytes:
    """The report chart as PNG bytes."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(_WIDTH_PX / _DPI, _HEIGHT_PX / _DPI), dpi=_DPI, layout="constrained")
    FigureCanvasAgg(fig)
    ax = fig.add_subplot()
    x_max = _x_max(timeline)
    warnings = _place_warnings(timeline.warnings, x_max)
    ax.set_xlim(0, x_max)
    ax.set_ylim(0, _y_max(timeline, rows=max((w.row + 1 for w in warnings), default=0)))

    for start, end in timeline.pauses:
        _draw_pause(ax, start, end)
    _draw_budget(ax, timeline.budget_steps, x_max)
    _draw_deadlines(ax, timeline.deadlines)
    _draw_end(ax, timeline.end_minute, timeline.end_reason)
    _draw_turns(ax, timeline.turns)
    _draw_warnings(ax, warnings)
    _style(fig, ax, timeline)

    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=_DPI, metadata={"Software": None})
    return buffer.getvalue()


def _x_max(timeline: Timeline) -> float:
    latest = max(
        [timeline.end_minute, *(t.minute for t in timeline.turns)]
        + [deadline for _, deadline, _ in timeline.deadlines[-1:]]
    )
    return max(latest, 1.0) * (1 + _X_MARGIN)


def _y_max(timeline: Timeline, rows: int) -> float:
    """Above the highest budget or usage, room for its label and ``rows`` of warnings."""
    highest = max(
        [timeline.tokens_used, *(t.tokens for t in timeline.turns)]
        + [budget for _, budget in timeline.budget_steps]
    )
    top = (_TRIANGLE_PT + rows * _ROW_PT + _BUDGET_LABEL_PT) / (_AXES_HEIGHT_PX / _DPI * 72)
    return max(highest, 100) / (1 - max(top, 0.1))


def _draw_pause(ax: Axes, start: float, end: float) -> None:
    ax.axvspan(start, end, color=_GREY, alpha=0.45, linewidth=0, zorder=0)
    ax.text(
        (start + end) / 2,
        0.03,
        "paused",
        transform=ax.get_xaxis_transform(),
        rotation=90,
        ha="center",
        va="bottom",
        fontsize=_SMALL,
        color=_GREY_TEXT,
    )


def _draw_budget(ax: Axes, steps: Sequence[tuple[float, int]], x_max: float) -> None:
    if not steps:
        return
    xs = [minute for minute, _ in steps]
    ys = [budget for _, budget in steps]
    ax.step([*xs, x_max], [*ys, ys[-1]], where="post", color=_GREEN, linewidth=_LINE, zorder=2)
    labels = [f"Budget {ys[0]:,}"] + [f"+{b - a:,} tokens" for a, b in pairwise(ys)]
    for x, y, text in zip(xs, ys, labels, strict=True):
        ax.annotate(
            text,
            (x, y),
            xytext=(4, 3),
            textcoords="offset points",
            va="bottom",
            fontsize=_SMALL,
            fontweight="bold",
            color=_GREEN_TEXT,
        )


def _draw_deadlines(ax: Axes, deadlines: Sequence[tuple[float, float, str]]) -> None:
    """The final deadline solid, the ones it replaced faint and dashed; each says why it moved."""
    for index, (_, deadline, why) in enumerate(deadlines):
        final = index == len(deadlines) - 1
        if final:
            text = "Time limit" if len(deadlines) == 1 else f"Time limit (extended)\n{why}"
        else:
            text = "original limit" if why == "limit" else why
        ax.axvline(
            deadline,
            color=_PURPLE,
            linewidth=_LINE if final else 1.5,
            linestyle="-" if final else "--",
            alpha=1.0 if final else 0.6,
            zorder=1,
        )
        _vertical_label(
            ax, deadline, text, _PURPLE_TEXT, left=True, size=_FONT if final else _SMALL
        )


def _draw_end(ax: Axes, minute: float, reason: str | None) -> None:
    ax.axvline(minute, color=_BLACK, linewidth=1.8, linestyle=(0, (4, 3)), zorder=3)
    label = "End" if reason is None else f"End: {_END_LABELS.get(reason, reason)}"
    _vertical_label(ax, minute, label, _BLACK, left=False, size=_FONT)


def _vertical_label(ax: Axes, x: float, text: str, color: str, *, left: bool, size: float) -> None:
    ax.annotate(
        text,
        (x, 0.03),
        xycoords=ax.get_xaxis_transform(),
        xytext=(-4 if left else 4, 0),
        textcoords="offset points",
        rotation=90,
        ha="right" if left else "left",
        va="bottom",
        fontsize=size,
        color=color,
        linespacing=1.1,
        bbox=_TEXT_BACKGROUND,
    )


def _draw_turns(ax: Axes, turns: Sequence[TurnPoint]) -> None:
    if not turns:
        ax.text(
            0.5,
            0.4,
            "No messages sent",
            transform=ax.transAxes,
            ha="center",
            fontsize=_FONT,
            color=_GREY_TEXT,
        )
        return
    size = _marker_size(len(turns))
    ax.plot(
        [0.0, *(t.minute for t in turns)],
        [0, *(t.tokens for t in turns)],
        color=_BLUE,
        linewidth=_LINE,
        zorder=4,
    )
    for status in _MARKERS:
        points = [t for t in turns if t.status == status]
        if points:
            (line,) = ax.plot(
                [t.minute for t in points],
                [t.tokens for t in points],
                linestyle="none",
                zorder=5,
                clip_on=False,
            )
            _set_marker(line, status, size)
    if len(turns) <= _MAX_LABELLED_TURNS:
        for t in turns:
            ax.annotate(
                str(t.seq),
                (t.minute, t.tokens),
                xytext=(-5, 5),
                textcoords="offset points",
                ha="right",
                va="bottom",
                fontsize=_SMALL,
                color=_BLUE,
            )


# Per turn status: marker, face colour, edge colour, edge width.
_MARKERS: dict[str, tuple[str, str, str, float]] = {
    "answered": ("o", _BLUE, "white", 1.0),
    "failed": ("X", _ORANGE, _BLACK, 0.8),
    "refused": ("D", "white", _VERMILLION, 2.2),  # hollow: nothing was charged
}


def _set_marker(line: Line2D, status: str, size: float) -> None:
    marker, face, edge, edge_width = _MARKERS[status]
    line.set_marker(marker)
    line.set_markersize(size)
    line.set_markerfacecolor(face)
    line.set_markeredgecolor(edge)
    line.set_markeredgewidth(edge_width * size / _MARKER_SIZE)


def _marker_size(turns: int) -> float:
    """Smaller markers for long sessions, so the line still shows between them."""
    return (
        _MARKER_SIZE if turns <= 30 else _MARKER_SIZE * 0.6 if turns <= 80 else _MARKER_SIZE * 0.4
    )


@dataclass(frozen=True)
class _WarningLabel:
    minute: float
    key: str
    text: str
    centre: float  # axes fraction
    row: int


def _place_warnings(warnings: Sequence[tuple[float, str]], x_max: float) -> list[_WarningLabel]:
    """Labels under their triangles, stacked into rows so none overlap (a group stays together)."""
    placed: list[_WarningLabel] = []
    row_ends: list[float] = []  # per row, where its rightmost label ends (axes fraction)
    for minute, keys in _group_warnings(warnings, x_max):
        texts = [_WARNING_LABELS.get(key, key) for key in keys]
        width = max(len(text) for text in texts) * _CHAR_WIDTH
        left = min(max(minute / x_max - width / 2, 0.0), 1.0 - width)
        row = _free_rows(row_ends, left, len(keys))
        for offset, (key, text) in enumerate(zip(keys, texts, strict=True)):
            row_ends.extend([-1.0] * (row + offset + 1 - len(row_ends)))
            row_ends[row + offset] = left + width
            placed.append(_WarningLabel(minute, key, text, left + width / 2, row + offset))
    return placed


def _draw_warnings(ax: Axes, labels: Sequence[_WarningLabel]) -> None:
    for label in labels:
        ax.plot(
            label.minute,
            1.0,
            marker="v",
            markersize=9,
            color=_PURPLE if label.key.startswith("time") else _BLUE,
            transform=ax.get_xaxis_transform(),
            clip_on=False,
            zorder=6,
        )
        ax.annotate(
            label.text,
            (label.centre, 1.0),
            xycoords="axes fraction",
            xytext=(0, -_TRIANGLE_PT - label.row * _ROW_PT),
            textcoords="offset points",
            ha="center",
            va="top",
            fontsize=_SMALL,
            color=_PURPLE_TEXT if label.key.startswith("time") else _BLUE,
            bbox=_TEXT_BACKGROUND,
            zorder=6,
        )


def _group_warnings(
    warnings: Sequence[tuple[float, str]], x_max: float
) -> list[tuple[float, list[str]]]:
    """Warnings at (nearly) the same minute, together."""
    groups: list[tuple[float, list[str]]] = []
    order = list(_WARNING_LABELS)
    ranked = sorted(warnings, key=lambda w: (w[0], order.index(w[1]) if w[1] in order else 99))
    for minute, key in ranked:
        if groups and minute - groups[-1][0] < x_max * 0.005:
            groups[-1][1].append(key)
        else:
            groups.append((minute, [key]))
    return groups


def _free_rows(row_ends: Sequence[float], left: float, height: int) -> int:
    """The first row from which ``height`` rows are free to the right of ``left``."""
    row = 0
    while any(end + 0.01 > left for end in row_ends[row : row + height]):
        row += 1
    return row


def _style(fig: Figure, ax: Axes, timeline: Timeline) -> None:
    from matplotlib.ticker import StrMethodFormatter

    ax.set_xlabel("Minutes since start", fontsize=_FONT)
    ax.set_ylabel("Tokens used", fontsize=_FONT)
    ax.tick_params(labelsize=_SMALL + 1, width=1.2, length=5)
    ax.yaxis.set_major_formatter(StrMethodFormatter("{x:,.0f}"))
    ax.spines[["top", "right"]].set_visible(False)
    ax.grid(axis="y", color="#E6E6E6", linewidth=0.8)
    ax.set_axisbelow(True)
    fig.suptitle(_shorten(timeline.title), fontsize=14, fontweight="bold")
    handles = _legend_handles(timeline.turns)
    fig.legend(
        handles=handles,
        loc="outside lower center",
        ncols=len(handles),
        frameon=False,
        fontsize=_SMALL,
        handlelength=2.2,
        columnspacing=1.6,
    )


_LEGEND_NAMES = {"failed": "Failed turn", "refused": "Refused: did not fit"}


def _legend_handles(turns: Sequence[TurnPoint]) -> list[Line2D]:
    from matplotlib.lines import Line2D

    handles = [Line2D([], [], color=_BLUE, linewidth=_LINE, label="Tokens used")]
    _set_marker(handles[0], "answered", _MARKER_SIZE)
    present = {t.status for t in turns}
    for status, name in _LEGEND_NAMES.items():
        if status in present:
            handle = Line2D([], [], linestyle="none", label=name)
            _set_marker(handle, status, _MARKER_SIZE)
            handles.append(handle)
    return handles


def _shorten(title: str) -> str:
    return title if len(title) <= _MAX_TITLE_CHARS else title[: _MAX_TITLE_CHARS - 1] + "…"
