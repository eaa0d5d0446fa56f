"""Make the README's example report: a scripted 45-minute interview on the offline model
(a manual clock, so it runs in a second), evaluated by the offline judge.

    python docs/example_report.py     # writes docs/report-example.png and .md
"""

from __future__ import annotations

import asyncio
import io
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from adapters.console.platform import ConsolePlatform  # noqa: E402
from adapters.llm.offline import OfflineChatModel, OfflineJudge  # noqa: E402
from adapters.report_chart import render_chart  # noqa: E402
from core.clock import ManualClock  # noqa: E402
from core.models import Actor  # noqa: E402
from core.service import EngineConfig, InterviewService  # noqa: E402
from storage import create_uow_factory, upgrade  # noqa: E402

INTERVIEWER = Actor("ivy", is_interviewer=True)
PROMPTS = [
    (2, "First, let me restate: given a list of ints and a target, return two indices."),
    (3, "My plan: brute force first, then look for the repeated work. What does O(n^2) cost?"),
    (4, "Why does a hash map make the lookup O(1) on average?"),
    (5, "Write the single-pass version in Python, please."),
    (4, "What about duplicates like [3, 3] with target 6? Does the order of insert matter?"),
    (6, "What tests would you write first? Include edge cases: empty list, negatives."),
    (3, "The test with negatives fails for me. Why would that be?"),
    (5, "Explain the invariant of the loop, because I want to be sure it is correct."),
    (4, "What is the space complexity, and can we trade it for time?"),
    (4, "Summarise the final solution with its complexity."),
]


async def main() -> None:
    with tempfile.TemporaryDirectory() as folder:
        url = f"sqlite+aiosqlite:///{folder}/example.db"
        await upgrade(url)
        uow = create_uow_factory(url)
        clock = ManualClock()
        platform = ConsolePlatform(out=io.StringIO(), folder=Path(folder))
        service = InterviewService(
            uow,
            OfflineChatModel(),
            clock,
            {"console": platform},
            EngineConfig(model="gpt-4o-mini"),
            judge=OfflineJudge(),
            render_chart=render_chart,
        )
        workspace = await service.queries.workspace("console", "local")
        interview = await service.lifecycle.start(
            workspace, INTERVIEWER, "alice", time_limit_s=45 * 60, token_budget=12_000
        )
        assert interview.room_key is not None
        for n, (minutes, prompt) in enumerate(PROMPTS, start=1):
            clock.advance(minutes * 60)
            await service.turns.handle_message(
                "console", interview.room_key, "alice", f"m{n}", prompt
            )
            await service.settle()
            if n == 4:
                await service.lifecycle.pause(INTERVIEWER, interview.id)
                clock.advance(3 * 60)
                await service.lifecycle.resume(INTERVIEWER, interview.id)
            if n == 7:
                await service.lifecycle.extend(INTERVIEWER, interview.id, tokens=5000)
            if n == 8:
                await service.lifecycle.extend(INTERVIEWER, interview.id, seconds=10 * 60)
        for _ in range(20):  # the clock runs out, a minute at a time
            clock.advance(60)
            await service.sweep()
            await service.settle()
        for made in sorted(Path(folder).glob("*-*.*")):  # noqa: ASYNC240 (a script)
            if made.suffix in (".png", ".md"):
                target = ROOT / "docs" / f"report-example{made.suffix}"
                target.write_bytes(made.read_bytes())
                print(f"wrote {target.relative_to(ROOT)} ({target.stat().st_size:,} bytes)")
        await service.close()
        await uow.close()


if __name__ == "__main__":
    asyncio.run(main())
