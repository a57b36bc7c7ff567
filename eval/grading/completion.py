"""How a rater who finishes is sent back to a crowd platform: one completion code, shown on the
page and sent in the redirect.

A platform such as Prolific gives the researcher the completion code of a study and the link
that carries it (``https://app.prolific.com/submissions/complete?cc=C1A2B3C4``). The code the
page shows and the code the link sends must be that one code, so `resolve_completion` takes it
from wherever the researcher wrote it: ``--completion-code CODE``, or the link's ``cc=`` (two
that differ are refused), with ``{code}`` in the link standing for the code. Without either, a
session gets a random code of its own (`store.new_completion_code`), which a platform that
checks codes would not know (``{code}`` in a link carries it all the same).
"""

from __future__ import annotations

import re
from urllib.parse import parse_qs, quote, urlsplit

from ...errors import QuickDrawError

COMPLETION_CODE = re.compile(r"[A-Za-z0-9_-]{4,40}")
CODE_FIELD = "{code}"  # where a completion URL takes the code
CODE_PARAMETERS = ("cc",)  # query parameters that carry a platform's code (Prolific: cc)
MAX_URL = 2000  # characters of a completion URL


def check_completion_code(code: str) -> str:
    """A --completion-code as a crowd platform shows it: 4 to 40 of A-Z a-z 0-9 _ -."""
    if not COMPLETION_CODE.fullmatch(code):
        raise QuickDrawError(
            f"--completion-code {code[:60]!r}: give 4 to 40 characters of A-Z a-z 0-9 _ - "
            "(the code your crowd platform shows, such as Prolific's C1A2B3C4)"
        )
    return code


def check_completion_url(url: str) -> str:
    """A --completion-url: an absolute http(s) URL, ASCII, with no white space; `{code}` in it
    (at most once) is where the completion code goes. Raises QuickDrawError saying what is
    wrong; returns the URL unchanged."""
    problem = None
    if len(url) > MAX_URL:
        problem = f"is over {MAX_URL} characters"
    elif not url.isascii() or not url.isprintable() or any(c.isspace() for c in url):
        problem = "has white space, control or non-ASCII characters (percent-encode them)"
    elif url.count(CODE_FIELD) > 1:
        problem = f"has {CODE_FIELD} more than once"
    else:
        parts = urlsplit(url.replace(CODE_FIELD, "CODE"))
        try:
            parts.port  # noqa: B018 - raises ValueError for a port that is no number
        except ValueError:
            problem = "has a bad port"
        if problem is None and (
            parts.scheme.lower() not in ("http", "https") or not parts.hostname
        ):
            problem = "is not an absolute http:// or https:// URL"
        elif problem is None and ("{" in parts.geturl() or "}" in parts.geturl()):
            problem = f"has braces other than {CODE_FIELD}"
    if problem:
        raise QuickDrawError(
            f"--completion-url {url[:100]!r} {problem}: give the URL your crowd platform shows, "
            "such as https://app.prolific.com/submissions/complete?cc=C1A2B3C4, or put "
            f"{CODE_FIELD} where the code goes"
        )
    return url


def completion_link(url: str, code: str) -> str:
    """The completion URL a finished rater is sent to: `{code}` replaced by the code."""
    return url.replace(CODE_FIELD, quote(code, safe=""))


def code_in_url(url: str) -> str | None:
    """The completion code a platform's link carries in its query (``?cc=C1A2B3C4``), or None
    (no such parameter, or ``{code}`` there)."""
    query = parse_qs(urlsplit(url).query)
    found = {v for name in CODE_PARAMETERS for v in query.get(name, []) if v != CODE_FIELD}
    if len(found) > 1:
        raise QuickDrawError(f"--completion-url {url[:100]!r} carries two codes: {sorted(found)}")
    return found.pop() if found else None


def resolve_completion(code: str | None, url: str | None) -> tuple[str | None, str | None]:
    """(completion code, completion URL) as the researcher gave them, checked and made one:
    the code is `code`, else the one `url` carries (Prolific's ``cc=``); a `code` that differs
    from the link's is refused. Either may be None: a session keeps what it stored, or gets a
    random code (which ``{code}`` in the link then carries)."""
    if code is not None:
        check_completion_code(code)
    if url is None:
        return code, None
    check_completion_url(url)
    carried = code_in_url(url)
    if carried is not None:
        check_completion_code(carried)
        if code is not None and code != carried:
            raise QuickDrawError(
                f"--completion-code {code} differs from the code the --completion-url carries "
                f"({carried}): a rater would be shown one and sent the other; give one of them "
                f"(or put {CODE_FIELD} in the URL)"
            )
        return carried, url
    return code, url
