"""A crawl of a hostile site (tests/hostile_site.py): for each trap, the crawl ends with the trap as a finding, its
memory stays bounded, the event loop (the one that serves the app's pages) is never held, and Stop is honoured in
under a second; no credentials are kept or sent; the app's summary says what was refused, while /todos answers. The
URL checker's and the external link checks' requests are bounded the same way."""

import asyncio
import html
import re
import sqlite3
import statistics
import time
import tracemalloc

import pytest

from core.seo import link_check
from core.seo import url_checker
from conftest import served, shipped
from core.seo.crawler import Crawl, Settings
from hostile_site import BOMB, HostileSite

LIMIT = 256 * 1024  # the page and sitemap size cap of these crawls
MEMORY = 24 * 1024 * 1024  # bytes the crawl may allocate at its peak: a tenth of one bomb, and well above the caps
HOLD = 0.2  # seconds of CPU the event loop may spend between two of its 10 ms ticks while the crawl runs


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    with served(HostileSite()) as site:
        # A first crawl imports httpx's transports and the parsers: a one-time cost (up to 0.5 s on a busy machine)
        # that is no trap's.
        watched(tmp_path_factory.mktemp("warm"), site, start=f"{site.url}/after")
        yield site


async def ticking(holds: list[float]):
    """How long the event loop is held between two 10 ms ticks, again and again: the delay every page of the app
    would see. Counted in the loop thread's CPU time, which a busy machine that deschedules the process leaves alone."""
    while True:
        before = time.thread_time()
        await asyncio.sleep(0.01)
        holds.append(time.thread_time() - before)


def watched(tmp_path, site, robots="none", **settings) -> tuple[Crawl, int, float]:
    "A finished crawl of the hostile site, the peak of the memory it allocated, and the event loop's longest hold."
    site.robots = robots
    options = {"start": f"{site.url}/", "delay": 0, "timeout": 2, "max_size": LIMIT, "max_sitemap_size": LIMIT,
               "robots_sitemaps": False} | settings
    crawl, holds = Crawl(tmp_path / "crawl.db", Settings(**options)), []

    async def run():
        ticker = asyncio.create_task(ticking(holds))
        try: await crawl.run()
        finally: ticker.cancel()

    tracemalloc.start()
    try:
        asyncio.run(run())
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    return crawl, peak, max(holds, default=0)


def on(site, settings: dict) -> dict:
    "The settings with their paths made URLs of the site."
    return settings | {"start": settings["start"] and site.url + settings["start"],
                       "sitemaps": [site.url + path for path in settings.get("sitemaps", [])]}


def refused(crawl: Crawl, path: str, site) -> str:
    row = crawl.db.execute("SELECT refused FROM page WHERE url = ?", [f"{site.url}{path}"]).fetchone()
    return row["refused"] if row else None


def finding(crawl: Crawl, id: str) -> int:
    return dict((found.id, count) for found, count in crawl.findings())[id]


TRAPS = {  # what is crawled, the robots.txt, and the finding it must end with: (finding, path, words in its note)
    "gzip bomb page": ({"start": "/bomb"}, "none", ("truncated", "/bomb", None)),
    "endless page": ({"start": "/endless"}, "none", ("truncated", "/endless", None)),
    "trickling page": ({"start": "/trickle"}, "none", ("broken", "/trickle", None)),
    "redirect to javascript:": ({"start": "/to-javascript"}, "none",
                                ("refused", "/to-javascript", "not a web address (javascript:)")),
    "redirect to data:": ({"start": "/to-data"}, "none", ("refused", "/to-data", "not a web address (data:)")),
    "redirect to a bad port": ({"start": "/to-bad-port"}, "none", ("refused", "/to-bad-port", "no valid port")),
    "endless redirect chain": ({"start": "/hops/0"}, "none", ("refused", "/hops/10", "more than 10 redirects")),
    "huge robots.txt": ({"start": "/after"}, "huge", ("refused", "/robots.txt", "only its first 500 KB")),
    "gzip bomb robots.txt": ({"start": "/after"}, "bomb", ("refused", "/robots.txt", "only its first 500 KB")),
    "trickling robots.txt": ({"start": "/after"}, "trickle", ("refused", "/robots.txt", "did not arrive within 2 s")),
    "robots.txt down": ({"start": "/after"}, "down", ("refused", "/robots.txt", "as if it allowed every page")),
    "gzip bomb sitemap": ({"start": "", "sitemaps": ["/sitemap-bomb.xml.gz"]}, "none",
                          ("refused", "/sitemap-bomb.xml.gz", "larger than 256 KB unpacked")),
    "gzip bomb as Content-Encoding": ({"start": "", "sitemaps": ["/sitemap-encoded.xml"]}, "none",
                                      ("refused", "/sitemap-encoded.xml", "larger than 256 KB unpacked")),
    "endless sitemap": ({"start": "", "sitemaps": ["/sitemap-endless.xml"]}, "none",
                        ("refused", "/sitemap-endless.xml", "larger than 256 KB unpacked")),
    "billion laughs sitemap": ({"start": "", "sitemaps": ["/sitemap-laughs.xml"]}, "none",
                               ("refused", "/sitemap-laughs.xml", "declares entities")),
    "external entity sitemap": ({"start": "", "sitemaps": ["/sitemap-external.xml"]}, "none",
                                ("refused", "/sitemap-external.xml", "declares entities")),
}


@pytest.mark.parametrize("trap", TRAPS)
def test_each_trap_ends_as_a_finding_in_bounded_memory_without_holding_the_app(tmp_path, site, trap):
    where, robots, (finding_id, path, words) = TRAPS[trap]
    crawl, peak, held = watched(tmp_path, site, robots, **on(site, where))
    assert crawl.status == "done"
    assert finding(crawl, finding_id) >= 1
    if words: assert words in refused(crawl, path, site)
    assert peak < MEMORY < BOMB, f"{peak:,} bytes at the peak"
    assert held < HOLD, f"the event loop was held {held:.3f} s"


def test_a_crawl_goes_on_past_every_trap_and_shows_what_it_crawled(tmp_path, site):
    crawl, _, _ = watched(tmp_path, site, max_depth=1)
    assert crawl.status == "done"
    done = {url.removeprefix(site.url) for url, in crawl.db.execute("SELECT url FROM page WHERE state = 'done'")}
    assert {"/", "/after", "/bomb", "/to-javascript", "/to-data", "/credentials"} <= done
    assert "1 link not followed: javascript:alert(1) is not a web address (javascript:)" in refused(crawl, "/", site)


def test_credentials_are_never_kept_shown_exported_or_sent(tmp_path, site):
    start = f"http://user:secret@{site.url.split('://')[1]}/credentials"
    crawl, _, _ = watched(tmp_path, site, "credentials", start=start, robots_sitemaps=True)
    assert crawl.settings.start == f"{site.url}/credentials"
    rows = [str(value) for row in crawl.db.execute("SELECT * FROM page") for value in row]
    assert not [value for value in rows if "secret" in value] and "secret" not in crawl.write_csv(
        tmp_path / "pages.csv").read_text()
    assert site.authorizations and not any(site.authorizations)  # followed, as the site's page, without them


def test_external_link_checks_read_no_redirect_body_and_stop_a_chain_past_the_limit(site):
    db = sqlite3.connect(":memory:")
    db.row_factory = sqlite3.Row
    db.executescript(link_check.SCHEMA)
    db.executemany("INSERT INTO external (url) VALUES (?)", [(f"{site.url}{path}",) for path in ("/redirect-bomb",
                                                                                                 "/hops/0")])
    tracemalloc.start()
    try:
        asyncio.run(link_check.check(db, Settings(start=f"{site.url}/", delay=0, timeout=5)))
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert [tuple(row) for row in db.execute("SELECT url, status, error FROM external ORDER BY id")] == [
        (f"{site.url}/redirect-bomb", 200, None), (f"{site.url}/hops/0", None, "More than 10 redirects")]
    assert peak < MEMORY, f"{peak:,} bytes at the peak"


def test_the_url_checker_reads_a_gzip_bomb_page_title_in_bounded_memory(site):
    tracemalloc.start()
    try:
        [checked] = asyncio.run(url_checker.check_urls([f"{site.url}/bomb"], timeout=10))
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert (checked.final_status, checked.title) == (200, "Bomb")
    assert peak < MEMORY, f"{peak:,} bytes at the peak"


STOP_WHILE = {  # what the crawl is waiting for when it is stopped: its settings and the request to wait for
    "robots.txt trickling": ({"start": "/after"}, "trickle", "/robots.txt"),
    "a page trickling": ({"start": "/trickle"}, "none", "/trickle"),
    "a sitemap trickling": ({"start": "", "sitemaps": ["/sitemap-trickle.xml"]}, "none", "/sitemap-trickle.xml"),
}


def ended_while(tmp_path, site, state: str, end) -> tuple[Crawl, asyncio.Task, float]:
    """A crawl ended by end(crawl, its task) while it waits for STOP_WHILE[state]'s request: the crawl, its task, and
    the seconds from end() until the task was over."""
    settings, site.robots, path = STOP_WHILE[state]
    crawl = Crawl(tmp_path / "crawl.db", Settings(**{"delay": 0, "timeout": 60, "robots_sitemaps": False,
                                                      "max_size": BOMB} | on(site, settings)))
    seen = len(site.requests)

    async def ended() -> tuple[asyncio.Task, float]:
        running = asyncio.create_task(crawl.run())
        while path not in [asked for _, asked in site.requests[seen:]]: await asyncio.sleep(0.01)
        await asyncio.sleep(0.2)  # well into it
        asked = time.monotonic()
        end(crawl, running)
        await asyncio.wait({running})
        return running, time.monotonic() - asked

    return crawl, *asyncio.run(ended())


@pytest.mark.parametrize("state", STOP_WHILE)
def test_stop_is_honoured_within_a_second_whatever_the_crawl_waits_for(tmp_path, site, state):
    crawl, _, seconds = ended_while(tmp_path, site, state, lambda crawl, running: crawl.stop())
    assert seconds < 1
    assert crawl.status == "stopped"


def test_cancel_is_honoured_within_a_second_while_robots_txt_trickles(tmp_path, site):
    _, running, seconds = ended_while(tmp_path, site, "robots.txt trickling", lambda crawl, running: running.cancel())
    assert seconds < 1
    assert running.cancelled()


@shipped("plugins/025_site_crawl.py", "plugins/010_todos.py")
def test_the_app_summary_names_each_refusal_while_its_pages_answer(live, site):
    site.robots, hx = "trickle", {"HX-Request": "true"}  # the crawl waits for it 2 s: /todos is asked meanwhile
    key = re.search(r'id="run-([\w-]+)"', live.get("/site_crawl/new", headers=hx).text)[1]
    live.post(f"/site_crawl/runs/{key}/steps/site", headers=hx, data={
        "start": f"{site.url}/to-javascript", "sitemaps": f"{site.url}/sitemap-bomb.xml.gz"})
    live.post(f"/site_crawl/runs/{key}/steps/crawl", headers=hx, data={
        "max_pages": "20", "max_depth": "1", "concurrency": "4", "delay": "0", "timeout": "2", "max_size_mb": "0.25",
        "user_agent": "test-crawler"})
    seconds = []
    while 'id="step-crawl" class="step done"' not in (page := live.get("/site_crawl").text):
        asked = time.monotonic()
        assert live.get("/todos").status_code == 200
        seconds.append(time.monotonic() - asked)
    assert len(seconds) >= 5 and statistics.quantiles(seconds, n=100)[98] < 1, seconds
    summary = html.unescape(page)
    assert "Not read or not followed (3): " in summary
    assert (f"{site.url}/robots.txt: robots.txt did not arrive within 2 s: the crawl went on as if it allowed every "
            "page") in summary
    assert f"{site.url}/sitemap-bomb.xml.gz: The sitemap was not read (it is larger than" in summary
