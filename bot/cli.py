"""The ``interview-buddy`` command line."""

from __future__ import annotations

import asyncio
import sys
import tomllib
from pathlib import Path

import click

from bot.logs import configure_logging
from bot.settings import Settings, SettingsError, load_settings


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
            settings.openai_api_key,
            settings.slack_bot_token,
            settings.slack_signing_secret,
            settings.slack_app_token,
            settings.discord_bot_token,
        ),
    )


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
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
    asyncio.run(run_bot(settings))


@main.command()
def console() -> None:
    """Run a whole interview in this terminal (works with piped input too)."""
    settings = _settings()
    _setup(settings, "WARNING")
    from adapters.console.platform import ConsolePlatform
    from adapters.console.repl import run_console
    from bot.app import build_service, open_store

    async def go() -> None:
        store = await open_store(settings)
        service = build_service(settings, store, {"console": ConsolePlatform(sys.stdout)})
        if not settings.uses_real_model:
            click.echo(
                "No OPENAI_API_KEY or OPENAI_BASE_URL set: using the built-in offline model "
                "(canned replies, real token counts)."
            )
        try:
            await service.recover()
            await run_console(service, sys.stdin, sys.stdout, echo=not sys.stdin.isatty())
        finally:
            await service.close()
            await store.close()

    asyncio.run(go())


@main.command()
def migrate() -> None:
    """Apply database migrations (also done automatically at start-up)."""
    settings = _settings()
    _setup(settings)
    from storage.migrate import upgrade

    asyncio.run(upgrade(settings.database_url))
    click.echo("Database is up to date.")


@main.group()
def challenges() -> None:
    """List challenges or add custom ones."""


@challenges.command("list")
def challenges_list() -> None:
    """Built-in and global custom challenges."""
    settings = _settings()
    from bot.app import open_store
    from core.challenges import ChallengeLibrary

    async def go() -> None:
        store = await open_store(settings)
        try:
            for c in await ChallengeLibrary(store).list(None):
                origin = "built-in" if c.builtin else "custom"
                click.echo(f"{c.slug:18} {c.difficulty:7} {origin:8} {c.title}")
        finally:
            await store.close()

    asyncio.run(go())


@challenges.command("add")
@click.argument("path", type=click.Path(exists=True, dir_okay=False, path_type=Path))
def challenges_add(path: Path) -> None:
    """Add or replace a custom challenge from a TOML file (same format as the built-ins)."""
    settings = _settings()
    from bot.app import open_store
    from core.challenges import challenge_from_mapping
    from core.errors import DomainError

    try:
        challenge = challenge_from_mapping(tomllib.loads(path.read_text("utf-8")), builtin=False)
    except (tomllib.TOMLDecodeError, DomainError) as exc:
        click.echo(f"{path}: {exc}", err=True)
        sys.exit(2)

    async def go() -> None:
        store = await open_store(settings)
        try:
            await store.save_custom_challenge(None, challenge)
        finally:
            await store.close()

    asyncio.run(go())
    click.echo(f"Saved challenge {challenge.slug}.")
