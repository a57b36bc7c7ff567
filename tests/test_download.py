"""Downloads against a real HTTP server on 127.0.0.1 serving the official layout."""

from __future__ import annotations

import io
from pathlib import Path

import pytest
from conftest import MIRROR
from tqdm import tqdm

from quickdraw_tools import download as D
from quickdraw_tools.categories import CATEGORIES, check_category
from quickdraw_tools.cli import main
from quickdraw_tools.errors import QuickDrawError

NO_WAIT = {"backoff": 0.0, "progress": False}


def files_under(path: Path) -> list[Path]:
    return sorted(p for p in path.rglob("*") if p.is_file())


# --- categories ----------------------------------------------------------------------------


def test_categories_are_the_official_345_and_cover_the_mirror():
    assert len(CATEGORIES) == 345 == len(set(CATEGORIES))
    for fmt in ("raw", "simplified"):
        names = {p.name.removesuffix(".ndjson") for p in (MIRROR / "full" / fmt).iterdir()}
        assert len(names) == 230
        assert names <= set(CATEGORIES)
    assert {"The Eiffel Tower", "power outlet", "teddy-bear", "t-shirt"} <= set(CATEGORIES)


def test_check_category_accepts_official_names_and_forgiving_spellings():
    assert check_category("cat") == "cat"
    assert check_category("The Eiffel Tower") == "The Eiffel Tower"
    assert check_category("the_eiffel_tower") == "The Eiffel Tower"
    assert check_category("  Power   Outlet ") == "power outlet"


@pytest.mark.parametrize(
    ("name", "suggested"),
    [("catt", "cat"), ("eifel tower", "The Eiffel Tower"), ("aeroplane", "airplane")],
)
def test_unknown_category_suggests_the_closest(name, suggested):
    with pytest.raises(QuickDrawError, match="unknown category") as e:
        check_category(name)
    assert repr(suggested) in str(e.value)


# --- URLs ----------------------------------------------------------------------------------


def test_official_urls_for_every_format_are_quoted():
    base = D.DEFAULT_BASE_URL
    assert D.url_for("The Eiffel Tower", "raw", base) == (
        base + "full/raw/The%20Eiffel%20Tower.ndjson"
    )
    expected = {
        "raw": "full/raw/cat.ndjson",
        "simplified": "full/simplified/cat.ndjson",
        "binary": "full/binary/cat.bin",
        "numpy_bitmap": "full/numpy_bitmap/cat.npy",
        "sketchrnn": "sketchrnn/cat.npz",
        "sketchrnn_full": "sketchrnn/cat.full.npz",
    }
    assert {fmt: D.url_for("cat", fmt, base) for fmt in D.FORMATS} == {
        fmt: base + path for fmt, path in expected.items()
    }
    with pytest.raises(QuickDrawError, match="unknown format 'svg'"):
        D.url_for("cat", "svg", base)


def test_base_url_from_environment(monkeypatch):
    monkeypatch.setenv("QUICKDRAW_BASE_URL", "http://mirror.example/qd")
    assert D.url_for("cat", "simplified") == "http://mirror.example/qd/full/simplified/cat.ndjson"
    monkeypatch.delenv("QUICKDRAW_BASE_URL")
    assert D.url_for("cat", "simplified").startswith(D.DEFAULT_BASE_URL)


# --- HTTP ----------------------------------------------------------------------------------


def test_full_download(mirror_server, tmp_path):
    path = D.download("The Eiffel Tower", "raw", tmp_path, base_url=mirror_server.url, **NO_WAIT)
    source = MIRROR / "full" / "raw" / "The Eiffel Tower.ndjson"
    assert path == tmp_path / "full" / "raw" / "The Eiffel Tower.ndjson"
    assert path.read_bytes() == source.read_bytes()
    assert files_under(tmp_path) == [path]  # no .part or temp file left
    assert mirror_server.requests[-1]["path"] == "/full/raw/The%20Eiffel%20Tower.ndjson"
    # Cached: a second call does not touch the network.
    n = len(mirror_server.requests)
    assert D.download("The Eiffel Tower", "raw", tmp_path, base_url=mirror_server.url) == path
    assert len(mirror_server.requests) == n


def test_bitmap_download(mirror_server, tmp_path):
    path = D.download("cat", "numpy_bitmap", tmp_path, base_url=mirror_server.url, **NO_WAIT)
    assert path.read_bytes() == (MIRROR / "full" / "numpy_bitmap" / "cat.npy").read_bytes()


def test_interrupted_download_resumes_with_range(mirror_server, tmp_path):
    source = MIRROR / "full" / "raw" / "cat.ndjson"
    size = source.stat().st_size
    dest = tmp_path / "full" / "raw" / "cat.ndjson"
    mirror_server.cut_next(40_000)
    with pytest.raises(QuickDrawError, match="received 40000 of") as e:
        D.download("cat", "raw", tmp_path, base_url=mirror_server.url, retries=0, **NO_WAIT)
    assert "to resume" in str(e.value)
    assert not dest.exists()  # the partial is not presented as complete
    part = dest.with_name("cat.ndjson.part")
    assert part.stat().st_size == 40_000

    path = D.download("cat", "raw", tmp_path, base_url=mirror_server.url, **NO_WAIT)
    assert mirror_server.ranges() == ["bytes=40000-"]
    assert mirror_server.requests[-1]["status"] == 206
    assert path.read_bytes() == source.read_bytes()
    assert path.stat().st_size == size and not part.exists()


def test_retry_resumes_within_one_call(mirror_server, tmp_path):
    waits = []
    mirror_server.cut_next(10_000, times=2)
    path = D.download_url(
        mirror_server.url + "full/simplified/monkey.ndjson",
        tmp_path / "monkey.ndjson",
        retries=3,
        backoff=0.5,
        progress=False,
        sleep=waits.append,
    )
    assert path.read_bytes() == (MIRROR / "full" / "simplified" / "monkey.ndjson").read_bytes()
    assert mirror_server.ranges() == ["bytes=10000-", "bytes=20000-"]
    assert waits == [0.5, 1.0]  # exponential backoff


def test_server_ignoring_range_restarts_cleanly(mirror_server, tmp_path):
    mirror_server.cut_next(5_000)
    mirror_server.ignore_range = True
    path = D.download("apple", "simplified", tmp_path, base_url=mirror_server.url, **NO_WAIT)
    assert mirror_server.ranges() == ["bytes=5000-"]
    assert mirror_server.requests[-1]["status"] == 200
    assert path.read_bytes() == (MIRROR / "full" / "simplified" / "apple.ndjson").read_bytes()


def test_stale_partial_larger_than_file_is_restarted(mirror_server, tmp_path):
    mirror_server.cut_next(5_000)
    with pytest.raises(QuickDrawError, match="to resume"):
        D.download(
            "apple", "simplified", tmp_path, base_url=mirror_server.url, retries=0, **NO_WAIT
        )
    dest = tmp_path / "full" / "simplified" / "apple.ndjson"
    with open(dest.with_name("apple.ndjson.part"), "ab") as f:  # now longer than the file
        f.write(b"x" * 10_000_000)
    path = D.download("apple", "simplified", tmp_path, base_url=mirror_server.url, **NO_WAIT)
    assert [r["status"] for r in mirror_server.requests] == [200, 416, 200]
    assert path.read_bytes() == (MIRROR / "full" / "simplified" / "apple.ndjson").read_bytes()
    assert files_under(tmp_path) == [path]


def test_partial_without_its_validators_is_not_resumed(mirror_server, tmp_path):
    # A .part with no sidecar: nothing says which version of the file it holds.
    dest = tmp_path / "full" / "simplified" / "apple.ndjson"
    dest.parent.mkdir(parents=True)
    dest.with_name("apple.ndjson.part").write_bytes(b"x" * 5_000)
    path = D.download("apple", "simplified", tmp_path, base_url=mirror_server.url, **NO_WAIT)
    assert [(r["range"], r["status"]) for r in mirror_server.requests] == [(None, 200)]
    assert path.read_bytes() == (MIRROR / "full" / "simplified" / "apple.ndjson").read_bytes()
    assert files_under(tmp_path) == [path]


def test_server_without_validators_leaves_nothing_to_resume(mirror_server, tmp_path):
    mirror_server.etag = mirror_server.last_modified = False
    mirror_server.cut_next(40_000)
    with pytest.raises(QuickDrawError, match="received 40000 of") as e:
        D.download("cat", "raw", tmp_path, base_url=mirror_server.url, retries=0, **NO_WAIT)
    assert "to resume" not in str(e.value)
    assert files_under(tmp_path) == []
    path = D.download("cat", "raw", tmp_path, base_url=mirror_server.url, **NO_WAIT)
    assert mirror_server.ranges() == []
    assert path.read_bytes() == (MIRROR / "full" / "raw" / "cat.ndjson").read_bytes()


def test_404_is_a_clear_error_and_leaves_nothing(mirror_server, tmp_path):
    # `binary` files are not in the mirror: the server answers 404.
    cache = tmp_path / "cache"
    with pytest.raises(QuickDrawError, match=r"HTTP 404 .*full/binary/cat\.bin"):
        D.download("cat", "binary", cache, base_url=mirror_server.url, **NO_WAIT)
    assert [r["status"] for r in mirror_server.requests] == [404]  # not retried
    assert not cache.exists() or files_under(cache) == []


def test_truncated_response_fails_size_check(mirror_server, tmp_path):
    mirror_server.cut_always = 1_000  # every response stops short of its Content-Length
    with pytest.raises(QuickDrawError, match="size check failed") as e:
        D.download("cat", "simplified", tmp_path, base_url=mirror_server.url, retries=2, **NO_WAIT)
    assert "3 attempt(s)" in str(e.value)
    dest = tmp_path / "full" / "simplified" / "cat.ndjson"
    assert not dest.exists()
    # The .part stays with its validators, for a later call to resume.
    part = dest.with_name("cat.ndjson.part")
    assert files_under(tmp_path) == [part, dest.with_name("cat.ndjson.part.json")]
    assert part.stat().st_size == 3_000
    assert mirror_server.ranges() == ["bytes=1000-", "bytes=2000-"]


def test_unreachable_server_is_a_clear_error(tmp_path):
    with pytest.raises(QuickDrawError, match="cannot connect"):
        D.download("cat", "raw", tmp_path, base_url="http://127.0.0.1:9/", retries=1, **NO_WAIT)
    assert files_under(tmp_path) == []


# --- a file that changes on the server, hashes ------------------------------------------------

CAT = "full/raw/cat.ndjson"


@pytest.fixture
def bars(monkeypatch):
    """The progress bars downloads make, shown (into a string) whatever `progress` says."""
    made = []

    def byte_bar(total, desc, progress, initial=0):
        made.append(tqdm(total=total, initial=initial, desc=desc, file=io.StringIO()))
        return made[-1]

    monkeypatch.setattr(D, "_byte_bar", byte_bar)
    return made


def interrupted_cat(server, tmp_path, at: int = 40_000) -> Path:
    """Leave ``cat.ndjson.part`` (`at` bytes of raw/cat) and its sidecar in the cache."""
    server.cut_next(at)
    with pytest.raises(QuickDrawError, match="to resume"):
        D.download("cat", "raw", tmp_path, base_url=server.url, retries=0, **NO_WAIT)
    part = tmp_path / CAT.replace("cat.ndjson", "cat.ndjson.part")
    assert files_under(tmp_path) == [part, part.with_name("cat.ndjson.part.json")]
    return part


def change_after_first_request(server, rel: str, new: bytes) -> None:
    """From the server's second request on, `rel` holds `new`."""

    def hook(entry: dict) -> None:
        if len(server.requests) > 1:
            server.files[rel] = new

    server.on_request = hook


@pytest.mark.parametrize("validators", ["etag", "last-modified"])
def test_resume_sends_if_range_with_the_first_responses_validator(
    mirror_server, tmp_path, validators
):
    mirror_server.etag = validators == "etag"
    interrupted_cat(mirror_server, tmp_path)
    path = D.download("cat", "raw", tmp_path, base_url=mirror_server.url, **NO_WAIT)
    source = (MIRROR / CAT).read_bytes()
    etag, date = mirror_server.validators(CAT, source)
    assert mirror_server.ranges() == ["bytes=40000-"]
    assert mirror_server.if_ranges() == [etag if validators == "etag" else date]
    assert [r["status"] for r in mirror_server.requests] == [200, 206]
    assert path.read_bytes() == source  # and its MD5 (x-goog-hash) checked over the whole file
    assert files_under(tmp_path) == [path]


@pytest.mark.parametrize("validators", ["etag", "last-modified"])
def test_file_changed_before_the_resume_is_fetched_afresh_not_spliced(
    mirror_server, tmp_path, validators
):
    mirror_server.etag = validators == "etag"
    interrupted_cat(mirror_server, tmp_path)
    old = (MIRROR / CAT).read_bytes()
    new = mirror_server.files[CAT] = old.replace(b'"cat"', b'"dog"')  # same size
    path = D.download("cat", "raw", tmp_path, base_url=mirror_server.url, **NO_WAIT)
    assert path.read_bytes() == new
    # The server saw an If-Range it no longer matches and sent the whole new file.
    etag, date = mirror_server.validators(CAT, old)
    assert mirror_server.if_ranges() == [etag if validators == "etag" else date]
    assert [r["status"] for r in mirror_server.requests] == [200, 200]
    assert files_under(tmp_path) == [path]


@pytest.mark.parametrize(
    "detected_by",
    ["etag", "total size", "md5"],
)
def test_change_is_caught_when_the_server_ignores_if_range(mirror_server, tmp_path, detected_by):
    # The server serves the Range asked for from whatever file it has now: the client must
    # see from the 206's headers alone that it is another file.
    mirror_server.honour_if_range = False
    mirror_server.etag = detected_by == "etag"
    mirror_server.last_modified = detected_by != "etag"
    mirror_server.dates[CAT] = "Wed, 01 Mar 2017 00:00:00 GMT"  # does not change with the file
    mirror_server.md5_header = "x-goog-hash" if detected_by == "md5" else None
    old = (MIRROR / CAT).read_bytes()
    longer = detected_by == "total size"
    new = old.replace(b'"cat"', b'"kitty"' if longer else b'"dog"')
    mirror_server.cut_next(40_000)  # within one call: the file changes after the first request
    change_after_first_request(mirror_server, CAT, new)
    path = D.download("cat", "raw", tmp_path, base_url=mirror_server.url, **NO_WAIT)
    assert path.read_bytes() == new
    assert [(r["range"], r["status"]) for r in mirror_server.requests] == [
        (None, 200),
        ("bytes=40000-", 206),  # seen to be another file: not appended
        (None, 200),
    ]
    assert files_under(tmp_path) == [path]


def test_server_ignoring_if_range_and_range_gives_the_new_file(mirror_server, tmp_path, bars):
    mirror_server.ignore_range = True  # always 200, the whole file
    old = (MIRROR / CAT).read_bytes()
    new = old.replace(b'"cat"', b'"kitty"')
    mirror_server.cut_next(20_000, times=2)
    change_after_first_request(mirror_server, CAT, new)
    path = D.download("cat", "raw", tmp_path, base_url=mirror_server.url, **NO_WAIT)
    assert path.read_bytes() == new
    assert [r["status"] for r in mirror_server.requests] == [200, 200, 200]
    old_etag, new_etag = (
        mirror_server.validators(CAT, old)[0],
        mirror_server.validators(CAT, new)[0],
    )
    assert mirror_server.ranges() == ["bytes=20000-", "bytes=20000-"]
    assert mirror_server.if_ranges() == [old_etag, new_etag]
    # One bar, restarted at 0 by each 200: it ends at the file's size, not beyond.
    assert len(bars) == 1
    assert bars[0].n == bars[0].total == len(new)
    assert files_under(tmp_path) == [path]


@pytest.mark.parametrize("header", ["x-goog-hash", "Content-MD5"])
def test_wrong_md5_is_never_cached(mirror_server, tmp_path, header):
    mirror_server.md5_header = header
    mirror_server.wrong_md5 = True
    url = mirror_server.url + "full/raw/cat.ndjson"
    with pytest.raises(QuickDrawError, match="MD5 hash did not match") as e:
        D.download("cat", "raw", tmp_path, base_url=mirror_server.url, retries=2, **NO_WAIT)
    assert url in str(e.value) and "3 attempt(s)" in str(e.value)
    assert "\n" not in str(e.value)
    assert files_under(tmp_path) == []  # neither the file nor a .part to resume
    assert [(r["range"], r["status"]) for r in mirror_server.requests] == [(None, 200)] * 3


def test_md5_covers_the_whole_resumed_file(mirror_server, tmp_path):
    part = interrupted_cat(mirror_server, tmp_path)
    with open(part, "r+b") as f:  # damage the first half, which the resume does not fetch
        f.write(b"#" * 100)
    path = D.download("cat", "raw", tmp_path, base_url=mirror_server.url, **NO_WAIT)
    assert path.read_bytes() == (MIRROR / CAT).read_bytes()
    assert [(r["range"], r["status"]) for r in mirror_server.requests] == [
        (None, 200),
        ("bytes=40000-", 206),  # completed, but the MD5 of the whole .part is wrong
        (None, 200),  # so fetched again from scratch
    ]
    assert files_under(tmp_path) == [path]


# --- local mirrors and `fetch` -------------------------------------------------------------


@pytest.mark.parametrize("as_url", [False, True])
def test_local_directory_mirror(tmp_path, as_url):
    base = MIRROR.as_uri() if as_url else str(MIRROR)
    name = "The Great Wall of China"
    path = D.download(name, "simplified", tmp_path, base_url=base, progress=False)
    assert path == tmp_path / "full" / "simplified" / f"{name}.ndjson"
    assert path.read_bytes() == (MIRROR / "full" / "simplified" / f"{name}.ndjson").read_bytes()
    with pytest.raises(QuickDrawError, match="not in the mirror"):
        D.download("cat", "sketchrnn", tmp_path, base_url=base, progress=False)


def test_bad_base_urls(tmp_path):
    with pytest.raises(QuickDrawError, match="unsupported base URL"):
        D.download("cat", "raw", tmp_path, base_url="ftp://example.com/")
    with pytest.raises(QuickDrawError, match="does not exist"):
        D.download("cat", "raw", tmp_path, base_url=str(tmp_path / "nowhere"))


def test_fetch_sources(shared, mirror_server, tmp_path, monkeypatch):
    monkeypatch.delenv("QUICKDRAW_BASE_URL", raising=False)
    training = shared / "training"
    # An explicit file, a flat folder, a folder in the official layout.
    assert D.fetch("cake", source=training / "cake.ndjson") == training / "cake.ndjson"
    assert D.fetch("cake", source=training) == training / "cake.ndjson"
    assert D.fetch("cat", "raw", source=MIRROR) == MIRROR / "full/raw/cat.ndjson"
    with pytest.raises(QuickDrawError, match="no binary file for 'cake'"):
        D.fetch("cake", "binary", source=training)
    # A local mirror is used in place; an HTTP one is downloaded into the cache once.
    assert D.fetch("fish", "numpy_bitmap", base_url=str(MIRROR)) == (
        MIRROR / "full/numpy_bitmap/fish.npy"
    )
    got = D.fetch("cat", cache_dir=tmp_path, base_url=mirror_server.url, progress=False)
    assert got == tmp_path / "full/simplified/cat.ndjson" and got.is_file()
    assert D.fetch("cat", cache_dir=tmp_path, base_url=mirror_server.url) == got
    assert len(mirror_server.requests) == 1
    with pytest.raises(QuickDrawError, match="unknown category"):
        D.fetch("caat", source=training)


# --- CLI -----------------------------------------------------------------------------------


def test_cli_download(mirror_server, tmp_path, capsys):
    rc = main(
        [
            "download",
            "cat",
            "smiley face",
            "--format",
            "simplified",
            "--cache",
            str(tmp_path),
            "--base-url",
            mirror_server.url,
            "--quiet",
        ]
    )
    out = capsys.readouterr().out.splitlines()
    assert rc == 0
    assert out == [
        str(tmp_path / "full/simplified/cat.ndjson"),
        str(tmp_path / "full/simplified/smiley face.ndjson"),
    ]
    for line in out:
        assert Path(line).read_bytes() == (MIRROR / Path(line).relative_to(tmp_path)).read_bytes()


def test_cli_env_base_url_and_local_mirror(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("QUICKDRAW_BASE_URL", str(MIRROR))
    assert main(["download", "fish", "--format", "numpy_bitmap", "--cache", str(tmp_path)]) == 0
    assert capsys.readouterr().out.strip() == str(tmp_path / "full/numpy_bitmap/fish.npy")


def test_cli_unknown_category_is_one_line_and_downloads_nothing(mirror_server, tmp_path, capsys):
    argv = ["download", "cat", "eifel tower", "--cache", str(tmp_path)]
    assert main(argv + ["--base-url", mirror_server.url, "--quiet"]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "Traceback" not in err
    assert "unknown category 'eifel tower'; did you mean 'The Eiffel Tower'" in err
    assert mirror_server.requests == []


def test_cli_404_is_one_line(mirror_server, tmp_path, capsys):
    argv = ["download", "cat", "--format", "sketchrnn", "--cache", str(tmp_path)]
    assert main(argv + ["--base-url", mirror_server.url, "--quiet"]) == 1
    err = capsys.readouterr().err
    assert err.startswith("quickdraw download: error: download failed: HTTP 404")
    assert err.count("\n") == 1


def test_cli_list_and_help(capsys):
    assert main(["download", "--list"]) == 0
    assert capsys.readouterr().out.splitlines() == list(CATEGORIES)
    with pytest.raises(SystemExit) as e:
        main(["download", "--help"])
    assert e.value.code == 0
    help_text = capsys.readouterr().out
    for fmt in D.FORMATS:
        assert fmt in help_text
    assert "--base-url" in help_text and "QUICKDRAW_BASE_URL" in help_text
