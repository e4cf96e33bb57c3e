"""Observability: lifecycle events, structured logs, metrics and status timelines."""
