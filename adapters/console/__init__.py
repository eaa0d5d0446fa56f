"""The terminal try-out: interviewer commands and candidate chat on stdin/stdout."""
