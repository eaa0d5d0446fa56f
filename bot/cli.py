"""The ``interview-buddy`` command line."""

from __future__ import annotations

import asyncio
import json
import logging
import sys
from collections.abc import Coroutine
from datetime import UTC, datetime
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import click

from bot.logs import configure_logging
from bot.settings import Settings, SettingsError, load_settings
from core.errors import StartupError
from core.ports import PurgeCounts

if TYPE_CHECKING:
    from storage.privacy import Person

T = TypeVar("T")
log = logging.getLogger("interview_buddy")


def _settings() -> Settings:
    try:
        return load_settings()
    except SettingsError as exc:
        click.echo(str(exc), err=True)
        sys.exit(2)


def _setup(settings: Settings, level: str | None = None) -> None:
    configure_logging(
        level or settings.log_level,
        (
            settings.database_password,
            settings.openai_api_key,
            settings.slack_bot_token,
            settings.slack_signing_secret,
            settings.slack_app_token,
            settings.discord_bot_token,
        ),
    )


def _run(coro: Coroutine[Any, Any, T]) -> T:
    """Run ``coro``; start-up failures end the process with one line (traceback at DEBUG)."""
    try:
        return asyncio.run(coro)
    except SettingsError as exc:
        click.echo(str(exc), err=True)
        sys.exit(2)
    except StartupError as exc:
        log.debug("start-up failed", exc_info=exc)
        click.echo(f"error: {exc}", err=True)
        sys.exit(1)
    except KeyboardInterrupt:
        sys.exit(130)


def _version() -> str:
    try:
        return version("interview-buddy")
    except PackageNotFoundError:  # pragma: no cover - running from a source tree
        return "unknown"


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(_version(), "--version", "-V", prog_name="interview-buddy")
def main() -> None:
    """Interview Buddy: AI-assisted technical interviews in Slack and Discord."""


@main.command()
def run() -> None:
    """Start every platform adapter whose credentials are set (Slack, Discord or both)."""
    settings = _settings()
    _setup(settings)
    from bot.app import adapter_factories, run_bot

    names = list(adapter_factories(settings))
    if not names:
        click.echo(
            "No platform is configured: set SLACK_BOT_TOKEN (and SLACK_SIGNING_SECRET or "
            "SLACK_APP_TOKEN) or DISCORD_BOT_TOKEN.\n"
            "To try Interview Buddy without any platform, run: interview-buddy console",
            err=True,
        )
        sys.exit(2)
    click.echo(f"Starting adapters: {', '.join(names)}", err=True)
    sys.exit(_run(run_bot(settings)))


@main.command()
def console() -> None:
    """Run a whole interview in this terminal (works with piped input too)."""
    settings = _settings()
    _setup(settings, "DEBUG" if settings.log_level == "DEBUG" else "WARNING")
    from adapters.console.lines import lines_for
    from adapters.console.platform import ConsolePlatform
    from adapters.console.repl import run_console
    from bot.app import build_service, check_default_challenge, open_database

    async def go() -> None:
        database = await open_database(settings)
        try:
            await check_default_challenge(settings, database)
            service = build_service(settings, database, {"console": ConsolePlatform()})
        except BaseException:
            await database.close()
            raise
        if not settings.uses_real_model:
            click.echo(
                "No OPENAI_API_KEY or OPENAI_BASE_URL set: using the built-in offline model "
                "(canned replies, real token counts)."
            )
        elif settings.openai_api_key is None:
            click.echo(
                f"No OPENAI_API_KEY set: talking to {settings.openai_base_url} with a "
                "placeholder key (local servers such as Ollama need none)."
            )
        try:
            await service.recover()
            await run_console(service, lines_for())
        finally:
            await service.close()
            await database.close()

    _run(go())


@main.command()
def migrate() -> None:
    """Apply database migrations (also done automatically at start-up)."""
    settings = _settings()
    _setup(settings)
    from bot.app import open_database

    async def go() -> None:
        database = await open_database(settings)
        await database.close()

    _run(go())
    click.echo("Database is up to date.")


@main.group()
def challenges() -> None:
    """List challenges or add custom ones."""


@challenges.command("list")
def challenges_list() -> None:
    """Built-in and global custom challenges (custom ones may replace a built-in)."""
    settings = _settings()
    from bot.app import open_database
    from core.challenges import builtin_challenge, list_challenges

    async def go() -> None:
        database = await open_database(settings)
        try:
            async with database() as uow:
                found = await list_challenges(uow.challenges, None)
            for c in found:
                origin = "built-in" if c.builtin else "custom"
                shadowed = None if c.builtin else builtin_challenge(c.slug)
                note = f" (replaces built-in {shadowed.title})" if shadowed else ""
                click.echo(f"{c.slug:18} {c.difficulty:7} {origin:8} {c.title}{note}")
        finally:
            await database.close()

    _run(go())


@challenges.command("add")
@click.argument("path", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option(
    "--replace",
    is_flag=True,
    help="Overwrite a custom challenge with the same slug, or replace a built-in one.",
)
def challenges_add(path: Path, replace: bool) -> None:
    """Add a custom challenge from a TOML file (same format as the built-ins)."""
    settings = _settings()
    from bot.app import open_database
    from core.challenge_file import challenge_from_toml
    from core.challenges import builtin_challenge
    from core.errors import InvalidInput

    try:
        challenge = challenge_from_toml(path.read_bytes(), source=str(path), builtin=False)
    except OSError as exc:
        click.echo(f"{path}: cannot read the file ({exc.strerror or exc})", err=True)
        sys.exit(2)
    except InvalidInput as exc:
        click.echo(str(exc), err=True)
        sys.exit(2)
    builtin = builtin_challenge(challenge.slug)

    async def go() -> tuple[int, str]:
        """Save the challenge unless it would replace one without --replace: (exit code, line)."""
        database = await open_database(settings)
        try:
            async with database() as uow:
                custom = await uow.challenges.get(None, challenge.slug)
                existing = custom or builtin
                kind = "custom" if custom else "built-in"
                if existing is not None and not replace:
                    return 2, (
                        f"{path}: a {kind} challenge {existing.slug} ({existing.title}) already "
                        "exists; pass --replace to replace it"
                    )
                await uow.challenges.save(None, challenge)
                await uow.commit()
        finally:
            await database.close()
        if existing is None:
            return 0, f"Saved challenge {challenge.slug} ({challenge.title})."
        where = " for this installation" if kind == "built-in" else ""
        return 0, f"Replaced {kind} challenge {existing.slug} ({existing.title}){where}."

    code, line = _run(go())
    if code:
        click.echo(line, err=True)
        sys.exit(code)
    click.echo(line)


# ---------------------------------------------------------------- data protection


def _person(candidate: str, workspace: str | None) -> Person:
    from storage.privacy import Person

    try:
        return Person.parse(candidate, workspace)
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="--candidate") from exc


def _plural(n: int, word: str) -> str:
    return f"{n:,} {word}" + ("" if n == 1 else "s")


def _counts(counts: PurgeCounts) -> str:
    parts = [
        _plural(counts.interviews, "interview"),
        _plural(counts.turns, "turn"),
        _plural(counts.audit_events, "audit event"),
        _plural(counts.reports, "report"),
        _plural(counts.programs, "program") + f" ({_plural(counts.occurrences, 'occurrence')})",
        _plural(counts.jobs, "job"),
    ]
    return ", ".join(parts)


@main.command()
@click.option(
    "--candidate",
    "candidate",
    required=True,
    metavar="PLATFORM:ID",
    help="slack:U123, discord:4242",
)
@click.option(
    "--workspace", metavar="EXTERNAL_ID", help="Only this workspace (Slack team or Discord guild)."
)
@click.option(
    "--output",
    "-o",
    type=click.Path(dir_okay=False, writable=True, path_type=Path),
    help="Write the JSON to this file instead of printing it.",
)
def export(candidate: str, workspace: str | None, output: Path | None) -> None:
    """Everything stored about a person, as JSON (their right of access).

    Interviews where they are the candidate come with turns, audit events and the report
    (metrics, evaluation, transcript, chart as base64); interviews they ran as the
    interviewer show only what they did. Programs, jobs naming them and workspace
    settings that list them are included.
    """
    person = _person(candidate, workspace)
    settings = _settings()
    _setup(settings, "WARNING")
    from bot.database import open_database  # not bot.app: no adapter is imported

    async def go() -> dict[str, Any]:
        database = await open_database(settings.database_url)
        try:
            async with database() as uow:
                return await uow.sql_privacy.export_person(person, datetime.now(UTC))
        finally:
            await database.close()

    data = _run(go())
    text = json.dumps(data, indent=2, ensure_ascii=False) + "\n"
    found = len(data["interviews"]) + len(data["programs"]) + len(data["workspace_settings"])
    if not found and not data["jobs"]:
        click.echo(f"Nothing is stored about {person}.", err=True)
    if output is None:
        click.echo(text, nl=False)
        return
    try:
        output.write_text(text, encoding="utf-8")
    except OSError as exc:
        click.echo(f"{output}: cannot write the file ({exc.strerror or exc})", err=True)
        sys.exit(1)
    click.echo(
        f"Wrote {_plural(len(data['interviews']), 'interview')}, "
        f"{_plural(len(data['programs']), 'program')} and {_plural(len(data['jobs']), 'job')} "
        f"about {person} to {output}.",
        err=True,
    )


@main.command()
@click.option("--candidate", metavar="PLATFORM:ID", help="Everything about this candidate.")
@click.option(
    "--before",
    type=click.DateTime(formats=["%Y-%m-%d"]),
    metavar="YYYY-MM-DD",
    help="Every interview that ended before this date (UTC midnight).",
)
@click.option("--workspace", metavar="EXTERNAL_ID", help="With --candidate: only this workspace.")
@click.option("--yes", "-y", is_flag=True, help="Do not ask for confirmation.")
def purge(candidate: str | None, before: datetime | None, workspace: str | None, yes: bool) -> None:
    """Delete a candidate's data, or every interview older than a date.

    Deletes the interviews with their turns, reports, audit events and jobs, and the
    programs (weekly schedules) with theirs. An interview that is still open is never
    deleted: end it first. Interviews a person ran as the interviewer stay (they are the
    candidates' records).
    """
    if (candidate is None) == (before is None):
        raise click.UsageError("give exactly one of --candidate PLATFORM:ID or --before DATE")
    if workspace is not None and candidate is None:
        raise click.UsageError("--workspace goes with --candidate")
    person = _person(candidate, workspace) if candidate is not None else None
    moment = before.replace(tzinfo=UTC) if before is not None else None
    what = f"about {person} as a candidate" if person else f"that ended before {moment:%Y-%m-%d}"
    settings = _settings()
    _setup(settings, "WARNING")
    from bot.database import open_database  # not bot.app: no adapter is imported

    async def delete(commit: bool) -> PurgeCounts:
        database = await open_database(settings.database_url)
        try:
            async with database() as uow:
                if person is not None:
                    counts = await uow.sql_privacy.purge_person(person)
                else:
                    assert moment is not None
                    counts = await uow.privacy.purge_before(moment)
                if commit:
                    await uow.commit()
        finally:
            await database.close()
        return counts

    planned = _run(delete(commit=False))  # counted in a transaction that is rolled back
    if not planned.deleted:
        click.echo(f"Nothing stored {what} to delete.")
    else:
        if not yes:
            click.confirm(f"Delete {_counts(planned)} {what}?", abort=True, err=True)
        done = _run(delete(commit=True))
        click.echo(f"Deleted {_counts(done)} {what}.")
        planned = done
    if planned.open_kept:
        left = _plural(planned.open_kept, "open interview")
        verb, it = ("was", "it") if planned.open_kept == 1 else ("were", "them")
        click.echo(f"{left} {verb} left alone: open interviews are never purged; end {it} first.")
