"""``python -m urlb.tools.aggregate``: the ``urlb-aggregate`` command."""

import sys

from urlb.tools.aggregate.cli import main

if __name__ == "__main__":
    sys.exit(main())
