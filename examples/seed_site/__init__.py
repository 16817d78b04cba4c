"""The tutorial's demo site on netassist.web: what ``make run`` serves.

    netassist run --chdir examples seed_site:app

(see ``site.py`` for the pages and ``docs/web.md`` for how they map to the tutorial).
"""

from seed_site.site import app

__all__ = ["app"]
