"""Real role applications on port 0: the roles harness, shared with tests/roles."""

from tests.roles.conftest import harness_factory

__all__ = ["harness_factory"]
