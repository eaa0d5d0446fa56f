"""Local stand-ins for Slack's Web API, Discord's HTTP API and gateway, and an
OpenAI-compatible endpoint, on 127.0.0.1; plus real bot processes to drive through them.

Shared by the test suite and the benchmarks (which must not import from ``tests/``). Each
fake follows the platform's documented wire format and limits; see each module.
"""
