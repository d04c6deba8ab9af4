"""Persistence: SQLAlchemy 2.0 models, engine and session setup, queries and claims."""
