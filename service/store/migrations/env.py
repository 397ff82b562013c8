"""Alembic environment: the URL comes from the caller (`service.store.db.migrate`), never from a file."""

from alembic import context

from service.store.tables import Base

connection = context.config.attributes.get("connection")
context.configure(connection=connection, target_metadata=Base.metadata, render_as_batch=True)
with context.begin_transaction():
    context.run_migrations()
