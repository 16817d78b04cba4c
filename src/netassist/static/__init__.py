"""Static files as a WSGI application: :class:`StaticFiles` (what ``netassist serve`` runs)."""

from netassist.static.app import StaticFiles

__all__ = ["StaticFiles"]
