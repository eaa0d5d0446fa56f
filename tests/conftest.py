"""Shared fixtures: the engine over in-memory fakes and a manual clock."""

from __future__ import annotations

import os
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import pytest
import pytest_asyncio
import sqlalchemy as sa
from sqlalchemy.ext.asyncio import create_async_engine
from sqlalchemy.pool import NullPool

from adapters.llm.offline import OfflineChatModel
from core.clock import ManualClock
from core.models import Actor, Workspace
from core.ports import ChartRenderer, ChatModel, Judge
from core.service import EngineConfig, InterviewService
from storage import UnitOfWorkFactory, create_uow_factory, normalize_url, upgrade
from tests.fakes.memory_uow import MemoryDatabase, MemoryUnitOfWorkFactory
from tests.fakes.recording_platform import RecordingPlatform
from tests.fakes.store_view import StoreView

# Every bot a test starts serves its metrics on a free port (not the fixed default).
os.environ.setdefault("METRICS_PORT", "0")

INTERVIEWER = Actor("U_INT", is_interviewer=True)
CANDIDATE = "U_CAND"


@dataclass
class Engine:
    service: InterviewService
    store: StoreView
    db: MemoryDatabase
    platform: RecordingPlatform
    clock: ManualClock
    workspace: Workspace


async def make_engine(
    model: ChatModel | None = None,
    *,
    judge: Judge | None = None,
    render_chart: ChartRenderer | None = None,
    **config: object,
) -> Engine:
    uow = MemoryUnitOfWorkFactory()
    platform = RecordingPlatform()
    clock = ManualClock()
    service = InterviewService(
        uow,
        model or OfflineChatModel(),
        clock,
        {"test": platform},
        EngineConfig(**config),  # type: ignore[arg-type]
        owner="test-process",
        judge=judge,
        render_chart=render_chart,
    )
    store = StoreView(uow)
    workspace = await store.get_or_create_workspace("test", "T1")
    return Engine(service, store, uow.db, platform, clock, workspace)


@pytest_asyncio.fixture
async def engine() -> AsyncIterator[Engine]:
    built = await make_engine()
    yield built
    await built.service.close()


# ---- SQL backends: SQLite always, PostgreSQL when TEST_DATABASE_URL is set ----

PG_URL = os.environ.get("TEST_DATABASE_URL")


@dataclass(frozen=True)
class Backend:
    name: str
    url: str
    connect_args: dict[str, Any] | None = None


@pytest_asyncio.fixture(params=["sqlite", "postgresql"])
async def backend(request: pytest.FixtureRequest, tmp_path: Any) -> AsyncIterator[Backend]:
    if request.param == "sqlite":
        yield Backend("sqlite", f"sqlite+aiosqlite:///{tmp_path / 'test.db'}")
        return
    if not PG_URL:
        pytest.skip("TEST_DATABASE_URL is not set; skipping the PostgreSQL backend")
    schema = f"test_{uuid.uuid4().hex[:16]}"
    admin = create_async_engine(normalize_url(PG_URL), poolclass=NullPool)
    try:
        async with admin.begin() as conn:
            await conn.execute(sa.text(f'CREATE SCHEMA "{schema}"'))
        yield Backend("postgresql", PG_URL, {"server_settings": {"search_path": schema}})
        async with admin.begin() as conn:
            await conn.execute(sa.text(f'DROP SCHEMA "{schema}" CASCADE'))
    finally:
        await admin.dispose()


@pytest_asyncio.fixture
async def database(backend: Backend) -> AsyncIterator[UnitOfWorkFactory]:
    await upgrade(backend.url, connect_args=backend.connect_args)
    factory = create_uow_factory(backend.url, connect_args=backend.connect_args)
    try:
        yield factory
    finally:
        await factory.close()
