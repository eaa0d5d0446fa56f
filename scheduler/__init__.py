"""Recurring interviews, reminders and weekly summaries (APScheduler); arrives with a later issue."""
