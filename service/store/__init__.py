"""Feedback and the decision log, with SQLAlchemy: a SQLite file by default, PostgreSQL by URL."""
