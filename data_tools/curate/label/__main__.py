"""`python -m data_tools.curate.label` (also wired as `python -m data_tools.curate label`)."""

import sys

from .run import main

if __name__ == "__main__":
    sys.exit(main())
