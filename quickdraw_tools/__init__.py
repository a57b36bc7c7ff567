"""Quick, Draw! toolkit: the data layer and the `quickdraw` command.

Submodules are imported on demand (nothing heavy happens at import time):
`formats`, `download`, `categories`, `simplify`, `strokes`, `splits`, `raster`,
`mnist`, `svg`, `convert`.
"""

from .errors import QuickDrawError

__all__ = ["QuickDrawError"]
__version__ = "0.1.0"
