"""The deployment files agree with the bot's settings: shutdown grace, healthcheck, port."""

from __future__ import annotations

import re
import shlex
from pathlib import Path
from typing import Any

import yaml

from bot.settings import Settings

ROOT = Path(__file__).resolve().parents[1]
UNITS = {"h": 3600.0, "m": 60.0, "s": 1.0, "ms": 0.001, "us": 1e-6}


def seconds(duration: str) -> float:
    """A Compose/Docker duration (``25s``, ``1m30s``) in seconds."""
    parts = re.findall(r"(\d+(?:\.\d+)?)(ms|us|h|m|s)", duration)
    assert parts and "".join(n + u for n, u in parts) == duration, duration
    return sum(float(n) * UNITS[u] for n, u in parts)


def bot_service() -> dict[str, Any]:
    compose = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    service: dict[str, Any] = compose["services"]["bot"]
    return service


def dockerfile() -> list[str]:
    """The Dockerfile's instructions, continuation lines joined."""
    text = (ROOT / "Dockerfile").read_text().replace("\\\n", " ")
    return [line.strip() for line in text.splitlines() if line.strip() and line[0] != "#"]


def test_compose_gives_the_bot_longer_than_its_shutdown_grace() -> None:
    bot = bot_service()
    default = Settings.model_fields["shutdown_grace"].default
    grace = float(bot["environment"].get("SHUTDOWN_GRACE", default))
    stop = seconds(bot["stop_grace_period"])
    assert grace == default == 20.0
    # Docker sends SIGKILL after stop_grace_period: the bot must be done before that.
    assert grace + 3 <= stop <= grace + 15


def test_compose_healthcheck_asks_healthz_on_the_http_port_in_time() -> None:
    bot = bot_service()
    check = bot["healthcheck"]
    test = check["test"]
    assert test[0] in ("CMD", "CMD-SHELL")
    command = " ".join(test[1:])
    port = bot["environment"]["HTTP_PORT"]
    assert f"http://127.0.0.1:{port}/healthz" in command
    assert f"{port}:{port}" in [str(p) for p in bot["ports"]]
    timeout, interval = seconds(check["timeout"]), seconds(check["interval"])
    # The client gives up (timeout=4) before Docker does, and before the next probe.
    client = re.search(r"timeout=(\d+(?:\.\d+)?)", command)
    assert client is not None and float(client.group(1)) < timeout < interval
    assert check["retries"] >= 2 and seconds(check["start_period"]) >= 20


def test_dockerfile_healthcheck_and_stop_signal_match() -> None:
    lines = dockerfile()
    env: dict[str, str] = {}
    for line in lines:
        if line.startswith("ENV "):
            for word in shlex.split(line[4:]):
                name, _, value = word.partition("=")
                env[name] = value
    assert env["HTTP_PORT"] == bot_service()["environment"]["HTTP_PORT"]
    assert float(env["SHUTDOWN_GRACE"]) == Settings.model_fields["shutdown_grace"].default
    assert f"EXPOSE {env['HTTP_PORT']}" in lines
    (healthcheck,) = [line for line in lines if line.startswith("HEALTHCHECK ")]
    assert "/healthz" in healthcheck and "HTTP_PORT" in healthcheck
    assert f'"{env["HTTP_PORT"]}"' in healthcheck.replace('\\"', '"')  # the same default
    options = dict(re.findall(r"--([a-z-]+)=(\S+)", healthcheck))
    assert seconds(options["timeout"]) < seconds(options["interval"])
    assert "STOPSIGNAL SIGTERM" in lines
