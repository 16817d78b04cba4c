"""Selling N tickets to many buyers at once, safely across processes: the tutorial's
20-ticket lock example as a web app.

    netassist run --chdir examples tickets:app --workers 4 --threads 4   (or: make tickets)

The tickets live in a database (SQLite by default, PostgreSQL when ``DATABASE_URL`` names
one), never in a worker's memory; ``docs/tickets.md`` tells the story.
"""

from tickets.app import create_app

app = create_app()

__all__ = ["app", "create_app"]
