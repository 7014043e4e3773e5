"""JavaScript rendering for the crawl: a page as Chromium has it once its scripts ran, for sites whose links or
titles exist only then (a search engine that renders sees them; one that does not, and a crawl of the HTML alone,
do not).

The crawl fetches each page itself, as always (its status, redirects, headers and politeness stay the crawl's);
an HTML page that answered 200 is then opened in headless Chromium (Playwright) with that very answer, so the
site is not asked for it twice, and its scripts, styles and XHRs load as a browser's would (without images, media
or fonts, which change no link). What Chromium holds once the page has loaded and the network has been quiet for
half a second (or SETTLE seconds have passed) is parsed like any page, and compared with the HTML as served:
the links only the rendered page has, the title it changed, a redirect made by a script.
"""

import asyncio
import os
import shutil
from contextlib import suppress
from pathlib import Path

from core.seo.findings import HTML_200, Finding
from core.seo.url_checker import same_address

SETTLE = 3  # seconds a page's scripts get, after its load event, to bring the network to rest
SKIPPED = {"image", "media", "font"}  # resources that change no link or title: not loaded
CHROMIUM = os.environ.get("CHROMIUM") or next(
    filter(None, map(shutil.which, ("chromium", "chromium-browser", "google-chrome"))), "")

COLUMNS = {"js_links": "INTEGER", "raw_title": "TEXT", "raw_canonical": "TEXT", "raw_meta_robots": "TEXT",
           "js_redirect": "TEXT", "render_error": "TEXT"}
CHANGED = {"title": "raw_title", "canonical": "raw_canonical", "meta_robots": "raw_meta_robots"}  # as served, if not
FINDINGS = [
    Finding("js_links", "Links only after JavaScript", "js_links > 0", "warning",
            "Only a search engine that runs the page's scripts finds them: link in the HTML as served."),
    Finding("js_title", "Titles set by JavaScript", "raw_title IS NOT NULL", "warning",
            "The HTML as served has another title (or none): a search engine may show that one."),
    Finding("js_canonical", "Canonicals changed by JavaScript", "raw_canonical IS NOT NULL", "warning",
            "The canonical as served is another URL (or none): search engines may take that one."),
    Finding("js_robots", "Meta robots changed by JavaScript", "raw_meta_robots IS NOT NULL", "warning",
            "A search engine that does not render reads the directives as served: a noindex a script adds is missed."),
    Finding("js_redirect", "Redirected by JavaScript", "js_redirect IS NOT NULL", "warning",
            "A script sends the visitor elsewhere: a 301 says so to every search engine."),
    Finding("render_error", "Not rendered (Chromium failed or timed out)", f"{HTML_200} AND render_error IS NOT NULL",
            "notice"),
]


def unavailable() -> str | None:
    "Why this machine cannot render pages (None: it can)."
    try: import playwright  # noqa: F401 -- installed with the app; a hand-made environment may lack it
    except ImportError: return "Rendering JavaScript needs Playwright: run ./run setup."
    if not CHROMIUM or not Path(CHROMIUM).exists():
        return ("Rendering JavaScript needs Chromium: install it (apt install chromium, brew install --cask "
                "chromium) or set CHROMIUM to its path.")
    return None


class Renderer:
    "A headless Chromium for one crawl: start() it, html() each page at once (as many as the crawl asks), close() it."

    def __init__(self, user_agent: str, timeout: float):
        self.user_agent, self.timeout = user_agent, timeout
        self.playwright = self.browser = self.context = None

    async def start(self):
        from playwright.async_api import async_playwright  # a crawl that renders nothing never loads it
        self.playwright = await async_playwright().start()
        self.browser = await self.playwright.chromium.launch(executable_path=CHROMIUM,
                                                             args=["--headless", "--no-sandbox", "--disable-gpu"])
        self.context = await self.browser.new_context(user_agent=self.user_agent, service_workers="block")

    async def close(self):
        if self.browser is not None: await self.browser.close()
        if self.playwright is not None: await self.playwright.stop()

    async def html(self, url: str, body: bytes, content_type: str) -> tuple[str, str]:
        """(the URL the page ends at, its HTML once rendered), the page being url answering body; an Exception
        (TimeoutError, Playwright's Error) when Chromium could not render it within the crawl's timeout and SETTLE."""
        page, served = await self.context.new_page(), []

        async def answer(route):
            "The first document is the crawl's answer, not asked of the site again; heavy resources are not loaded."
            if route.request.is_navigation_request() and not served:
                served.append(route.request.url)
                await route.fulfill(status=200, body=body, headers={"content-type": content_type or "text/html"})
            elif route.request.resource_type in SKIPPED: await route.abort()
            else: await route.fallback()

        # The deadlines are kept here, not by Playwright's timeouts: a busy machine saw a page's wait for a quiet
        # network outlive its own timeout.
        try:
            async with asyncio.timeout(self.timeout + SETTLE):
                await page.route("**/*", answer)
                await page.goto(url, wait_until="load")
                with suppress(TimeoutError):  # a page that polls for ever: what it holds by now
                    async with asyncio.timeout(SETTLE): await page.wait_for_load_state("networkidle")
                return page.url, await page.content()
        finally:
            with suppress(Exception):
                async with asyncio.timeout(SETTLE): await page.close()


def compared(raw, rendered, url: str, final_url: str):
    """The rendered page's Parsed (parsing.Parsed), with what rendering changed in its columns: the links only it
    has, the title, canonical and meta robots as served where a script changed them ("" for none), where a script
    sent the page."""
    if not same_address(final_url, url):  # another page now: what the served one says, and where it went
        raw.columns |= {"js_redirect": final_url}
        return raw
    served = {link for link, _ in raw.links}
    rendered.columns |= {"js_links": sum(1 for link, _ in rendered.links if link not in served)} | {
        column: getattr(raw, fact) or "" for fact, column in CHANGED.items()
        if getattr(raw, fact) != getattr(rendered, fact)}
    return rendered
