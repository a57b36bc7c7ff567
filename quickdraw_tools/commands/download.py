"""`quickdraw download`: fetch official files into a cache (or list the categories)."""

from __future__ import annotations

import argparse

from ..errors import QuickDrawError
from .common import add_cache_arguments


def add_parser(sub: argparse._SubParsersAction) -> None:
    from ..download import BASE_URL_ENV, DEFAULT_BASE_URL, FORMAT_PATHS

    formats = "\n".join(
        f"  {name:<15} {path.format('<category>')}" for name, path in FORMAT_PATHS.items()
    )
    p = sub.add_parser(
        "download",
        help="download official Quick, Draw! files into a cache",
        description="Download each CATEGORY in one format into the cache, keeping the official\n"
        "layout (CACHE/full/simplified/cat.ndjson). Files already in the cache are kept; an\n"
        "interrupted download resumes where it stopped (HTTP Range); every file is checked\n"
        "against the server's size and renamed into place only when complete. Prints the\n"
        "path of each file.",
        epilog=f"formats and their paths under the base URL:\n{formats}\n\n"
        "examples:\n"
        "  quickdraw download cat 'The Eiffel Tower' --format simplified --cache data\n"
        "  quickdraw download cat --format raw --base-url ../shared/quickdraw/mirror\n"
        "  quickdraw download --list\n\n"
        f"default base URL: {DEFAULT_BASE_URL} (or ${BASE_URL_ENV})",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument(
        "categories",
        nargs="*",
        metavar="CATEGORY",
        help="official category name; quote names with spaces ('power outlet')",
    )
    p.add_argument(
        "--format",
        default="simplified",
        choices=list(FORMAT_PATHS),
        metavar="FORMAT",
        help="one of: " + ", ".join(FORMAT_PATHS) + " (default: simplified)",
    )
    add_cache_arguments(p)
    p.add_argument("--force", action="store_true", help="download again even if cached")
    p.add_argument(
        "--retries",
        type=int,
        default=4,
        metavar="N",
        help="retries per file on network errors (default 4)",
    )
    p.add_argument("--list", action="store_true", help="print the 345 category names and exit")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from ..categories import CATEGORIES, check_category
    from ..download import download

    if args.list:
        print("\n".join(CATEGORIES))
        return 0
    if not args.categories:
        raise QuickDrawError("name at least one CATEGORY (see `quickdraw download --list`)")
    if args.retries < 0:
        raise QuickDrawError(f"--retries must be >= 0, got {args.retries}")
    # Check every name before fetching anything: a typo should not stop a long run halfway.
    names = [check_category(name) for name in args.categories]
    for name in names:
        path = download(
            name,
            args.format,
            args.cache,
            base_url=args.base_url,
            force=args.force,
            progress=not args.quiet,
            retries=args.retries,
        )
        print(path)
    return 0
