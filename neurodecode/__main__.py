"""``python -m neurodecode``: the command-line interface (see `neurodecode.cli`)."""

import sys

from .cli import main

if __name__ == "__main__":
    sys.exit(main())
