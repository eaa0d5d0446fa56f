"""Domain errors. Adapters turn them into friendly, private replies."""

from __future__ import annotations


class DomainError(Exception):
    """A request the engine refuses; the message is safe to show to the person who asked."""


class InvalidInput(DomainError):
    """A command argument could not be understood."""


class NotFound(DomainError):
    """The interview, challenge or candidate asked for does not exist."""


class NotAuthorized(DomainError):
    """The caller may not act on this interview."""


class IllegalTransition(DomainError):
    """The interview's state does not allow this operation (e.g. resuming an active session)."""


class Conflict(DomainError):
    """The operation clashes with existing state (e.g. the candidate already has an interview)."""


class StartupError(Exception):
    """Something the bot needs could not be reached or was refused at start-up.

    The message is one line naming what failed and the setting that points there, e.g.
    ``could not reach Slack at https://slack.example/api/ (SLACK_API_URL): ...``; the CLI
    prints it and exits non-zero (the traceback only at ``LOG_LEVEL=DEBUG``).
    """


class Stale(Conflict):
    """Someone saved the interview since it was read; read it again and retry."""
