"""Real role applications on port 0 (the roles harness), with the production logging chain
where a test reads status timelines."""

from tests.ops.conftest import live_logs
from tests.roles.conftest import harness_factory

__all__ = ["harness_factory", "live_logs"]
