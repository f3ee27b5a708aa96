"""Durable state (issue 14): the embedded SQLite store. Not wired into the broker yet."""
