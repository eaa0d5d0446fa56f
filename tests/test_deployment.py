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


def compose() -> dict[str, Any]:
    loaded: dict[str, Any] = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    return loaded


def test_the_default_profile_runs_one_bot_on_the_published_port() -> None:
    services = compose()["services"]
    default = sorted(name for name, s in services.items() if not s.get("profiles"))
    assert default == ["bot", "db"]
    assert [str(p) for p in services["bot"]["ports"]] == ["3000:3000"]


def test_the_replicas_profile_runs_two_bots_behind_nginx_on_one_database() -> None:
    config = compose()
    services = config["services"]
    profiled = sorted(name for name, s in services.items() if "replicas" in s.get("profiles", []))
    assert profiled == ["bot-a", "bot-b", "proxy"]
    single = services["bot"]
    for name in ("bot-a", "bot-b"):
        replica = services[name]
        # The same bot as the default one (one anchor), on the same database, not published.
        for key in ("build", "environment", "healthcheck", "stop_grace_period", "depends_on"):
            assert replica[key] == single[key], (name, key)
        assert "ports" not in replica and "3000" in [str(p) for p in replica["expose"]]
    proxy = services["proxy"]
    assert proxy["image"].startswith("nginx:")
    assert set(proxy["depends_on"]) == {"bot-a", "bot-b"}
    assert [str(p) for p in proxy["ports"]] == ["3000:3000"]
    (mount,) = proxy["configs"]
    assert mount["target"] == "/etc/nginx/conf.d/default.conf"
    conf = config["configs"][mount["source"]]["content"]
    assert "$" not in conf  # Compose would interpolate it
    upstream = re.search(r"upstream (\w+) \{(.*?)\}", conf, re.S)
    assert upstream is not None
    servers = re.findall(r"server ([\w-]+):(\d+)", upstream.group(2))
    assert servers == [("bot-a", "3000"), ("bot-b", "3000")]  # round-robin: nginx's default
    assert not re.search(r"\b(ip_hash|hash|least_conn|random)\b", upstream.group(2))
    for path in ("/slack/events", "/healthz"):
        assert re.search(rf"location = {path} \{{ proxy_pass http://{upstream.group(1)}; \}}", conf)
    assert "listen 3000;" in conf
