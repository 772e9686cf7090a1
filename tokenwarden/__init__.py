"""tokenwarden: the composition root (settings, API, runners, database, CLI)."""

__version__ = "0.1.0"
