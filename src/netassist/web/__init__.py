"""``netassist.web``: a small WSGI web framework in the spirit of Bottle and Flask."""
