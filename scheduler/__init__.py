"""Recurring interviews, reminders and weekly summaries (APScheduler): a later issue."""
