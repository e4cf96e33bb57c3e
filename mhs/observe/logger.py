"""The type of every role's logger (structlog's filtering bound logger)."""

from structlog.typing import FilteringBoundLogger

Logger = FilteringBoundLogger
