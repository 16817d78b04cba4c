"""``python -m netassist``: the same as the ``netassist`` command."""

import sys

from netassist.cli import main

if __name__ == "__main__":
    sys.exit(main())
