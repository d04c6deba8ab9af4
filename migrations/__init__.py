"""Alembic migrations for the mail2case schema."""
