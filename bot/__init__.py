"""Composition root: settings, CLI, HTTP server (Slack endpoint, health, metrics)."""
