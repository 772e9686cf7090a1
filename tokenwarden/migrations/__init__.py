"""Alembic migrations of the SQL store (``revocation.tables``); run by ``tokenwarden.db``."""
