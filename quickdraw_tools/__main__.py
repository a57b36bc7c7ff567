"""``python -m quickdraw_tools``: the `quickdraw` command."""

import sys

from .cli import main

sys.exit(main())
