"""The Site crawl app (plugins/025_site_crawl.py) through its routes, against the local test site: the two steps and
what they refuse, the findings whose counts open their pages, the table sorted, filtered and paged on the server,
a page's details, CSV and Excel downloads, Stop, and a crawl that resumes from its frontier after the server is
killed mid-crawl."""

import csv
import html
import io
import re
import signal
import sqlite3
from contextlib import closing
from pathlib import Path

import httpx
import openpyxl
import pytest

from conftest import app_process, served, shipped, wait_for
from local_site import FORMULA, BigSite, LocalSite

pytestmark = shipped("plugins/025_site_crawl.py")

HX = {"HX-Request": "true"}
SETTINGS = {"max_pages": "200", "max_depth": "40", "concurrency": "4", "delay": "0", "timeout": "5",
            "max_size_mb": "1", "user_agent": "Mozilla/5.0 (compatible; test-crawler)"}


@pytest.fixture(scope="module")
def site():
    with served(LocalSite()) as site:
        yield site


def start(client, site_url: str, **settings) -> str:
    "Starts a crawl of site_url in a new run; returns the run's key."
    key = re.search(r'id="run-([\w-]+)"', client.get("/site_crawl/new", headers=HX).text)[1]
    answer = client.post(f"/site_crawl/runs/{key}/steps/site", data={"start": site_url, "robots_sitemaps": "1"},
                         headers=HX)
    assert answer.status_code == 200, answer.text
    answer = client.post(f"/site_crawl/runs/{key}/steps/crawl", data=SETTINGS | settings, headers=HX)
    assert answer.status_code == 200, answer.text
    return key


def done_page(client) -> str:
    def ready():
        page = client.get("/site_crawl").text
        return page if 'id="step-crawl" class="step done"' in page else None
    return wait_for(ready)


def rows(client, key: str, **query) -> list[str]:
    "The paths of the table's rows for this query."
    answer = client.get(f"/site_crawl/runs/{key}/pages", params=query, headers=HX)
    assert answer.status_code == 200
    return paths(answer.text)


def paths(fragment: str) -> list[str]:
    "The path of each row's URL (its first address: the others are where it redirects, what links to it)."
    body = fragment[fragment.index("<tbody>"):fragment.index("</tbody>")]
    return [re.sub(r"<[^>]+>|\s", "", html.unescape(re.search(r'<span class="address">(.*?)</span>', row, re.S)[1]))
            .removeprefix("/") for row in body.split("<tr>")[1:]]


def test_what_to_crawl_is_refused_with_the_reason(live):
    key = re.search(r'id="run-([\w-]+)"', live.get("/site_crawl/new", headers=HX).text)[1]
    for form, reason in (({"start": "nope"}, "“nope” is not a URL: there is no dot in the host."),
                         ({"start": ""}, "Give a start URL, a sitemap, or both."),
                         ({"start": "", "sitemaps": "ftp://example.com/s.xml"}, "ftp: is not http or https")):
        answer = live.post(f"/site_crawl/runs/{key}/steps/site", data=form, headers=HX)
        assert answer.status_code == 422 and reason in html.unescape(answer.text)
    live.post(f"/site_crawl/runs/{key}/steps/site", data={"start": "https://example.com"}, headers=HX)
    for name, value in (("max_pages", "0"), ("concurrency", "many"), ("delay", "-1"), ("user_agent", " ")):
        answer = live.post(f"/site_crawl/runs/{key}/steps/crawl", data=SETTINGS | {name: value}, headers=HX)
        assert answer.status_code == 422, name


def test_a_custom_extraction_is_a_column_to_sort_a_line_of_each_page_and_a_csv_column(live, site):
    key = re.search(r'id="run-([\w-]+)"', live.get("/site_crawl/new", headers=HX).text)[1]
    live.post(f"/site_crawl/runs/{key}/steps/site", data={"start": f"{site.url}/"}, headers=HX)
    refused = live.post(f"/site_crawl/runs/{key}/steps/crawl", data=SETTINGS | {"extract": "heading: h1[["},
                        headers=HX)
    assert refused.status_code == 422 and "“h1[[” is not a CSS selector (for heading)." in html.unescape(refused.text)
    key = start(live, f"{site.url}/", max_depth="1",
                extract="Heading: h1\nrobots: meta[name=robots]::attr(content)")
    page = html.unescape(done_page(live))
    assert re.search(r">heading<span[^>]*></span></button>.*>robots<span", page, re.S)  # sortable, named as given
    assert rows(live, key, sort="x_robots", desc="1")[0] == "noindex"  # the one page with a meta robots
    found = live.get(f"/site_crawl/runs/{key}/pages", params={"q": "/noindex"}).text
    detail = re.search(r'hx-get="(/site_crawl/runs/[\w-]+/pages/\d+)"', found)[1]
    assert "robots</th>\n        <td>noindex, follow</td>" in html.unescape(live.get(detail, headers=HX).text)
    download = live.get(f"/site_crawl/runs/{key}/pages.csv", params={"q": "/about"})
    table = list(csv.DictReader(io.StringIO(download.text)))
    assert [(row["x_heading"], row["x_robots"]) for row in table] == [("About us", "")]


def test_a_crawl_shows_its_findings_charts_and_pages(server, live, site):
    key = start(live, f"{site.url}/")
    page = html.unescape(done_page(live))
    assert re.search(r"Crawled \d+ pages of 127\.0\.0\.1 \(every page within the limits\): 2 errors, 1 blocked", page)
    counts = dict(re.findall(r"<span[^>]*>([^<]+)</span>\s*<button[^>]*>([\d,]+)</button>", page))
    assert counts["Redirect chains and loops"] == "5" and counts["Duplicate titles"] == "2"
    assert counts["In the sitemap, linked from nowhere"] == "1"
    assert counts["Broken pages (4xx, 5xx or no answer)"] == "2"
    assert "Missing titles" in page and "Missing titles</span><button" not in page  # a zero is no button
    for chart in ("Status codes", "Depth (clicks from the start)", "Response times"):
        assert re.search(rf'<svg [^>]*viewbox="0 0 250 \d+" role="img" aria-label="{re.escape(chart)}"', page, re.I)
    assert "<title>404: 1 page</title>" in page and "<title>301: 3 pages</title>" in page
    assert paths(page)[:4] == ["", "about", "orphan", "old"]  # the order found: the sitemap first, then links
    assert (server.config.DATA_DIR / "crawls" / f"{key}.db").exists()
    assert f"/site_crawl/runs/{key}/crawl.xlsx" in page


def test_the_table_sorts_filters_and_pages_on_the_server(live, site):
    key = start(live, f"{site.url}/")
    done_page(live)
    everything = rows(live, key, page=1) + rows(live, key, page=2)
    assert len(everything) > 50 and len(rows(live, key, page=2)) == len(everything) - 50
    assert "51–" in live.get(f"/site_crawl/runs/{key}/pages", params={"page": 2}).text
    assert rows(live, key, finding="broken") == ["missing", "error"]
    assert rows(live, key, finding="redirect_chain", sort="url") == [
        "loop-a", "loop-b", "moved", "moved-again", "moved-last"]
    assert rows(live, key, finding="duplicate_title") == ["dup/1", "dup/2"]
    assert rows(live, key, show="blocked") == ["private/secret"]
    assert rows(live, key, show="4xx") == ["missing"]
    assert rows(live, key, q="calendar/2026-0", sort="url", desc="1")[:2] == ["calendar/2026-09", "calendar/2026-08"]
    assert rows(live, key, sort="seconds", desc="1")[0] == "slow"
    assert rows(live, key, sort="words", desc="1")[0] == "huge"
    assert rows(live, key, q="no such page") == []
    broken = live.get(f"/site_crawl/runs/{key}/pages", params={"finding": "broken"}).text
    assert re.search(r'Linked from <span class="address">/(<wbr>)?</span>', broken)  # what links to a broken page
    assert 'hx-swap-oob="true"' in broken and 'name="finding"' in broken  # the form follows the view


def test_a_page_opens_with_everything_about_it(live, site):
    key = start(live, f"{site.url}/", max_depth="1")
    done_page(live)
    found = live.get(f"/site_crawl/runs/{key}/pages", params={"q": "/moved"}).text
    detail = re.search(r'hx-get="(/site_crawl/runs/[\w-]+/pages/\d+)"', found)[1]
    shown = html.unescape(live.get(detail, headers=HX).text)
    assert f"301 {site.url}/moved → 302 {site.url}/moved-again → 307 {site.url}/moved-last → 308 " \
           f"{site.url}/moved-final → 200 {site.url}/about" in shown
    assert f"Linked from</th>\n        <td>{site.url}/</td>" in shown
    assert live.get(detail.rsplit("/", 1)[0] + "/999999", headers=HX).status_code == 404


def test_the_pages_download_as_csv_and_the_crawl_as_a_workbook(server, live, site):
    key = start(live, f"{site.url}/", max_depth="1")
    done_page(live)
    download = live.get(f"/site_crawl/runs/{key}/pages.csv", params={"finding": "duplicate_title", "sort": "url"})
    assert download.status_code == 200 and download.headers["content-type"].startswith("text/csv")
    assert download.headers["content-disposition"] == f'attachment; filename="crawl-{key}.csv"'
    table = list(csv.DictReader(io.StringIO(download.text)))
    assert [(row["url"], row["title"]) for row in table] == [(f"{site.url}/dup/1", "Same title"),
                                                           (f"{site.url}/dup/2", "Same title")]
    everything = list(csv.DictReader(io.StringIO(live.get(f"/site_crawl/runs/{key}/pages.csv").text)))
    assert next(row for row in everything if row["url"].endswith("/formula"))["title"] == "'" + FORMULA

    workbook = live.get(f"/site_crawl/runs/{key}/crawl.xlsx")
    assert workbook.status_code == 200 and workbook.headers["content-type"].endswith("spreadsheetml.sheet")
    book = openpyxl.load_workbook(io.BytesIO(workbook.content))
    assert book.sheetnames == ["Pages", "Findings", "Broken links", "Redirect chains",
                               "Broken external links"]
    assert book["Pages"].max_row == len(everything) + 1
    assert live.get("/site_crawl/runs/20250101-000000-abcd/crawl.xlsx").status_code == 404
    downloads = [path for path in (server.config.DATA_DIR / "crawls").iterdir() if path.suffix in (".csv", ".xlsx")]
    assert downloads == []  # each download's file went once it was sent


def test_stop_keeps_the_pages_crawled_so_far_and_waits_for_no_site(live, site):
    site.release.clear()
    key = start(live, f"{site.url}/held/1", concurrency="1")
    wait_for(lambda: site.held_now == 1)
    working = live.get("/site_crawl").text
    assert "Stop and keep the pages so far" in working and 'hx-trigger="every 2s"' in working  # live rows
    assert live.post(f"/site_crawl/runs/{key}/stop", headers=HX).status_code == 200
    page = html.unescape(done_page(live))  # the page held stays queued: a stop waits for no site
    site.release.set()
    assert "Crawled 0 pages of 127.0.0.1 (stopped before the end)" in page
    assert live.post(f"/site_crawl/runs/{key}/stop", headers=HX).status_code == 409  # nothing at work now


def test_another_profile_sees_none_of_a_crawl(server, live, site):
    key = start(live, f"{site.url}/", max_depth="0")
    done_page(live)
    other = server.profiles.insert(name="Other").id
    live.post(f"/profiles/{other}/switch", headers=HX)
    for path in ("pages", "pages/1", "pages.csv", "crawl.xlsx"):
        assert live.get(f"/site_crawl/runs/{key}/{path}", headers=HX).status_code == 404, path


def test_a_crawl_resumes_from_its_frontier_after_the_server_is_killed(data_env, tmp_path):
    "kill -9 mid-crawl: the pages kept stay kept, the frontier is in the file, and the resume fetches none twice."
    with served(BigSite(200)) as site:  # 201 pages: the home page and /p/0 … /p/199
        with app_process(data_env) as server, httpx.Client(base_url=server.url, headers=HX, timeout=30) as client:
            key = start(client, f"{site.url}/", max_pages="1000", concurrency="2", delay="0.02")
            crawl_db = Path(data_env["DATA_DIR"]) / "crawls" / f"{key}.db"
            wait_for(lambda: crawl_db.exists() and done_count(crawl_db) >= 40)
            server.send_signal(signal.SIGKILL)
            server.wait(10)
        kept = done_count(crawl_db)
        assert 40 <= kept < 201

        with app_process(data_env) as server, httpx.Client(base_url=server.url, headers=HX, timeout=30) as client:
            page = client.get("/site_crawl").text
            assert "Interrupted: the app stopped while this step was at work." in page
            assert client.post(f"/site_crawl/runs/{key}/resume").status_code == 200
            page = html.unescape(done_page(client))
            assert "Crawled 201 pages of 127.0.0.1 (every page within the limits)" in page
    pages = [path for _, path in site.requests if path != "/robots.txt" and not path.startswith("/sitemap")]
    assert len(set(pages)) == 201
    assert len(pages) - 201 <= 2  # asked twice: at most the two pages at work when the server was killed


def done_count(path: Path) -> int:
    "The pages the crawl in this file has fetched (none while the file is still being made)."
    with closing(sqlite3.connect(path, timeout=5)) as db:
        try: return db.execute("SELECT count(*) FROM page WHERE state = 'done'").fetchone()[0]
        except sqlite3.OperationalError: return 0  # no page table yet
