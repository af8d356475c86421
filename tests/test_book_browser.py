"""The built book, opened in a real browser without a network.

Headless Chromium opens every page of ``_build/html`` from ``file://`` and dumps the DOM after
its scripts ran. A page fails when it has math but MathJax rendered none (no ``mjx-container``),
when raw ``\\(``, ``$$`` or a markdown table (``|---|``) is left in its text, when an image
does not decode, or when an internal link points to a missing file or anchor.

The browser tests are marked ``book``: the default pytest run deselects them (the book is
built after pytest); ``scripts/build_book.sh`` runs them after each build. They skip when the
book or Chromium is missing, unless ``BBPM_REQUIRE_BROWSER=1`` (set by ``.ci/run``), which makes that a failure.
``BBPM_BOOK_HTML`` points it at another build folder.

Chromium takes seconds per page, so the rendered DOMs are kept in ``_build/browser-dom/``
(beside the build folder), each under a key made of the page's bytes, the book's ``_static``
folder (every script and style a page loads), the browser's version and its flags. The search
index (``searchindex.js``, read only by the search box) is not in the key: it changes with any
page's text, and would re-open every page for a change in one. A page whose key has a stored DOM is not opened again; every check still runs on
that DOM and on the files as they are now (images, link targets). ``BBPM_BROWSER_CACHE=0``
opens every page.
"""

from __future__ import annotations

import base64
import hashlib
import io
import os
import re
import shutil
import subprocess
import tempfile
import xml.etree.ElementTree as ET
from concurrent.futures import ThreadPoolExecutor
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import unquote, urlsplit

import pytest

ROOT = Path(__file__).resolve().parents[1]
BOOK = Path(os.environ.get("BBPM_BOOK_HTML", ROOT / "_build" / "html")).resolve()
REQUIRED = os.environ.get("BBPM_REQUIRE_BROWSER", "0") == "1"
DOM_CACHE = BOOK.parent / "browser-dom"
USE_DOM_CACHE = os.environ.get("BBPM_BROWSER_CACHE", "1") != "0"
#: Pages Sphinx writes for itself (search needs its index at run time, genindex is empty).
SKIPPED_PAGES = {"search.html", "genindex.html"}
#: Chromium flags: no sandbox (root in CI), no GPU, and no background network traffic.
CHROMIUM_FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-default-apps",
    "--disable-sync",
    "--no-first-run",
    "--virtual-time-budget=8000",
    "--dump-dom",
]
#: Text inside these elements is code or rendered math, not prose.
NON_PROSE = {"script", "style", "pre", "code", "textarea", "mjx-container", "svg", "math"}


def chromium() -> str | None:
    for name in ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable"):
        path = shutil.which(name)
        if path:
            return path
    return None


def book_pages() -> list[Path]:
    if not (BOOK / "index.html").is_file():
        return []
    return sorted(
        p
        for p in BOOK.rglob("*.html")
        if "_static" not in p.parts
        and "_sources" not in p.parts
        and p.relative_to(BOOK).as_posix() not in SKIPPED_PAGES
    )


class Page(HTMLParser):
    """Collects what the checks need from one HTML document."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.ids: set[str] = set()
        self.links: list[str] = []
        self.images: list[str] = []
        self.prose: list[str] = []
        self.mjx = 0
        self.math_spans = 0
        self._skip_depth = 0

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = {k: v or "" for k, v in attrs}
        for key in ("id", "name"):
            if a.get(key):
                self.ids.add(a[key])
        if tag == "a" and "href" in a:
            self.links.append(a["href"])
        if tag == "img" and "src" in a:
            self.images.append(a["src"])
        if tag == "mjx-container":
            self.mjx += 1
        if "math" in a.get("class", "").split():
            self.math_spans += 1
        if tag in NON_PROSE:
            self._skip_depth += 1

    def handle_endtag(self, tag: str) -> None:
        if tag in NON_PROSE and self._skip_depth:
            self._skip_depth -= 1

    def handle_data(self, data: str) -> None:
        if not self._skip_depth:
            self.prose.append(data)


def parse(html: str) -> Page:
    page = Page()
    page.feed(html)
    page.close()
    return page


def dump_dom(browser: str, page: Path) -> str:
    with tempfile.TemporaryDirectory(prefix="bbpm-chromium-") as profile:
        done = subprocess.run(
            [browser, *CHROMIUM_FLAGS, f"--user-data-dir={profile}", page.as_uri()],
            capture_output=True,
            text=True,
            timeout=120,
        )
    if done.returncode != 0 or "<html" not in done.stdout:
        raise AssertionError(
            f"chromium could not render {page} (exit {done.returncode}): {done.stderr[-2000:]}"
        )
    return done.stdout


def scripts_digest(book: Path, browser: str) -> str:
    """sha256 of what a page's rendering depends on besides the page: the browser's version
    and flags and the files under ``_static``."""
    version = subprocess.run([browser, "--version"], capture_output=True, text=True, timeout=60)
    digest = hashlib.sha256(f"{version.stdout.strip()}\0{CHROMIUM_FLAGS}\0".encode())
    for path in sorted(p for p in (book / "_static").rglob("*") if p.is_file()):
        digest.update(path.relative_to(book).as_posix().encode() + b"\0")
        digest.update(hashlib.sha256(path.read_bytes()).digest())
    return digest.hexdigest()


def dom_key(page: Path, scripts: str) -> str:
    """The key of a page's stored DOM: its bytes and :func:`scripts_digest`."""
    return hashlib.sha256(scripts.encode() + b"\0" + page.read_bytes()).hexdigest()


def dump_dom_cached(browser: str, page: Path, scripts: str, cache: Path | None) -> str:
    """:func:`dump_dom`, re-using the DOM stored under the page's :func:`dom_key` in ``cache``
    (None: no cache); a new DOM is stored there."""
    if cache is None:
        return dump_dom(browser, page)
    stored = cache / f"{dom_key(page, scripts)}.html"
    if stored.is_file():
        return stored.read_text(encoding="utf-8")
    dom = dump_dom(browser, page)
    cache.mkdir(parents=True, exist_ok=True)
    partial = stored.with_suffix(f".{os.getpid()}.tmp")
    partial.write_text(dom, encoding="utf-8")
    partial.replace(stored)
    return dom


def prune_cache(cache: Path, keep: set[str]) -> None:
    """Remove the stored DOMs whose key is not in ``keep`` (pages of older builds)."""
    for path in cache.glob("*.html") if cache.is_dir() else ():
        if path.stem not in keep:
            path.unlink(missing_ok=True)


@pytest.fixture(scope="module")
def rendered() -> dict[Path, Page]:
    pages = book_pages()
    browser = chromium()
    if not pages or browser is None:
        why = (
            f"no built book at {BOOK} (run scripts/build_book.sh)"
            if not pages
            else "chromium is not installed (apt-get install chromium)"
        )
        if REQUIRED:
            pytest.fail(why + "; BBPM_REQUIRE_BROWSER=1 asks for the browser check")
        pytest.skip(why)
    scripts = scripts_digest(BOOK, browser)
    cache = DOM_CACHE if USE_DOM_CACHE else None
    workers = max(1, min(4, os.cpu_count() or 1))
    with ThreadPoolExecutor(workers) as pool:
        doms = list(pool.map(lambda p: dump_dom_cached(browser, p, scripts, cache), pages))
    if cache is not None:
        prune_cache(cache, {dom_key(page, scripts) for page in pages})
    return {page: parse(dom) for page, dom in zip(pages, doms)}


def label(page: Path) -> str:
    return page.relative_to(BOOK).as_posix()


@pytest.mark.book
def test_every_page_with_math_shows_rendered_math_and_no_raw_tex(rendered):
    problems = []
    for page, dom in rendered.items():
        static = parse(page.read_text(encoding="utf-8"))
        if static.math_spans and dom.mjx == 0:
            problems.append(f"{label(page)}: {static.math_spans} math elements, none rendered")
        text = " ".join(dom.prose)
        for raw, at in (("\\(", text.find("\\(")), ("$$", text.find("$$")), table_row(text)):
            if at >= 0:
                problems.append(
                    f"{label(page)}: raw {raw} in text: ...{text[at - 40 : at + 40]}..."
                )
    assert not problems, "\n".join(problems)


#: A markdown table's separator row left as text ("---" may have become an em dash).
RAW_TABLE = re.compile(r"\|\s*(?:-{3,}|\u2014)\s*\|")


def table_row(text: str) -> tuple[str, int]:
    match = RAW_TABLE.search(text)
    return "a markdown table", match.start() if match else -1


def check_image(data: bytes, svg: bool) -> None:
    if svg:
        ET.fromstring(data)
        return
    from PIL import Image

    with Image.open(io.BytesIO(data)) as image:
        image.verify()


@pytest.mark.book
def test_every_image_loads(rendered):
    problems = []
    for page, dom in rendered.items():
        for src in dom.images:
            where = f"{label(page)}: image {src[:60]}"
            try:
                if src.startswith("data:"):
                    header, _, payload = src.partition(",")
                    data = (
                        base64.b64decode(payload)
                        if ";base64" in header
                        else unquote(payload).encode()
                    )
                    check_image(data, "svg" in header)
                    continue
                parts = urlsplit(src)
                if parts.scheme not in ("", "file"):
                    problems.append(f"{where} needs the network")
                    continue
                target = (page.parent / unquote(parts.path)).resolve()
                check_image(target.read_bytes(), target.suffix == ".svg")
            except Exception as error:  # any decode or read error is a broken image
                problems.append(f"{where} does not load: {type(error).__name__}: {error}")
    assert not problems, "\n".join(problems)


@pytest.mark.book
def test_every_internal_link_reaches_its_page_and_anchor(rendered):
    ids_of: dict[Path, set[str]] = {page: dom.ids for page, dom in rendered.items()}
    problems = []
    for page, dom in rendered.items():
        for href in dom.links:
            parts = urlsplit(href)
            if parts.scheme or href.startswith(("//", "javascript:", "mailto:")):
                continue
            target = (page.parent / unquote(parts.path)).resolve() if parts.path else page
            if target.is_dir():
                target = target / "index.html"
            if not target.is_file():
                problems.append(f"{label(page)}: link {href} -> missing file")
                continue
            fragment = unquote(parts.fragment)
            if fragment and target.suffix == ".html":
                if target not in ids_of:
                    ids_of[target] = parse(target.read_text(encoding="utf-8")).ids
                if fragment not in ids_of[target]:
                    problems.append(f"{label(page)}: link {href} -> no anchor #{fragment}")
    assert not problems, "\n".join(problems)


def test_checks_catch_raw_tex_broken_images_and_links(tmp_path):
    """The parser sees what the checks look for (runs without a browser)."""
    page = parse(
        '<p id="top">See \\(x\\) and <code>$$ not prose</code> | a |\n|---|</p>'
        '<mjx-container>\\(y\\)</mjx-container><span class="math">z</span>'
        '<img src="missing.png"><a href="other.html#sec">x</a>'
    )
    assert "\\(x\\)" in " ".join(page.prose) and "$$" not in " ".join(page.prose)
    assert table_row(" ".join(page.prose))[1] >= 0
    assert table_row("| a |\n|\u2014|\u2014|")[1] >= 0 and table_row("a | b")[1] < 0
    assert page.mjx == 1 and page.math_spans == 1 and page.ids == {"top"}
    assert page.images == ["missing.png"] and page.links == ["other.html#sec"]
    with pytest.raises(OSError):
        check_image(b"not a png", svg=False)
    png = tmp_path / "one.png"
    from PIL import Image

    Image.new("RGB", (2, 2)).save(png)
    check_image(png.read_bytes(), svg=False)


def test_dom_cache_reuses_a_page_only_while_its_bytes_and_scripts_are_unchanged(
    tmp_path, monkeypatch
):
    """A stored DOM is returned for the same page bytes and scripts digest; a changed page or
    digest opens the browser again; pruning keeps only the given keys (runs without a
    browser: the browser call is counted)."""
    opened = []

    def fake_dump(browser: str, page: Path) -> str:
        opened.append(page.read_text())
        return f"<html>{page.read_text()}</html>"

    monkeypatch.setitem(globals(), "dump_dom", fake_dump)
    page, cache = tmp_path / "a.html", tmp_path / "cache"
    page.write_text("one")
    assert dump_dom_cached("chromium", page, "s1", cache) == "<html>one</html>"
    assert dump_dom_cached("chromium", page, "s1", cache) == "<html>one</html>"
    assert opened == ["one"]
    dump_dom_cached("chromium", page, "s2", cache)  # new scripts: opened again
    page.write_text("two")
    assert dump_dom_cached("chromium", page, "s2", cache) == "<html>two</html>"
    assert opened == ["one", "one", "two"]
    assert dump_dom_cached("chromium", page, "s2", None) == "<html>two</html>"
    assert len(opened) == 4 and len(list(cache.glob("*.html"))) == 3
    prune_cache(cache, {dom_key(page, "s2")})
    assert [p.stem for p in cache.glob("*.html")] == [dom_key(page, "s2")]
