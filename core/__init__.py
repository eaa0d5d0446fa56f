"""Platform-neutral interview engine: sessions, budgets, token counting, LLM gateway, views.

Nothing in this package imports Slack, Discord, SQLAlchemy or APScheduler code; adapters and
storage implement the protocols in :mod:`core.ports`.
"""
