"""The four roles, each an aiohttp application built by its own factory."""
