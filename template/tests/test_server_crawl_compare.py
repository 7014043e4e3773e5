"""Crawl comparison (crawl_compare.py, in the Site crawl app): two crawls of a small site whose pages change between
them, compared through the app's routes and its CSV, each kind of change with its exact pages."""

import csv
import html
import io
import re

import pytest
from starlette.applications import Starlette
from starlette.responses import HTMLResponse
from starlette.routing import Route

from conftest import served, shipped
from local_site import page
from test_server_site_crawl import HX, done_page, start

pytestmark = shipped("plugins/025_site_crawl.py")

BEFORE = {"/": (200, page("Home", "/a", "/b", "/c", "/d", "/gone")), "/a": (200, page("A", "/")),
          "/b": (200, page("B", "/")), "/c": (200, page("C", "/")), "/d": (200, page("D", "/")),
          "/gone": (200, page("Gone", "/"))}
AFTER = {"/": (200, page("Home", "/a", "/b", "/c", "/d", "/fresh")), "/a": (200, page("A, renamed", "/")),
         "/b": (200, page("B", "/", head='<meta name="robots" content="noindex">')),
         "/c": (200, page("C", "/", head='<link rel="canonical" href="/a">')), "/d": (410, page("D", "/")),
         "/fresh": (200, page("Fresh", "/"))}


class ChangingSite:
    "A site answering from .pages {path: (status, html)}, which a test swaps between crawls."

    def __init__(self):
        self.pages = BEFORE

        def answer(request):
            status, body = self.pages.get(request.url.path, (404, "<title>Not found</title>"))
            return HTMLResponse(body, status)
        self.app = Starlette(routes=[Route("/{path:path}", answer)])


@pytest.fixture
def site():
    with served(ChangingSite()) as site:
        yield site


def test_two_crawls_compare_as_counts_pages_and_a_csv(live, site):
    earlier = start(live, f"{site.url}/")
    done_page(live)
    site.pages = AFTER
    later = start(live, f"{site.url}/")
    done_page(live)
    picker = live.get(f"/site_crawl/runs/{later}/compare", headers=HX).text
    assert f'<option value="{earlier}">' in picker and f'value="{later}"' not in picker  # not itself

    shown = html.unescape(live.get(f"/site_crawl/runs/{later}/compare", params={"earlier": earlier}, headers=HX).text)
    counts = dict(re.findall(r"<span>([^<]+)</span><span>(\d+)</span>", shown))
    assert counts == {"New pages (only in the later crawl)": "1", "Removed pages (only in the earlier crawl)": "1",
                      "Status code changed": "1", "Title changed": "1", "Canonical changed": "1",
                      "Indexability changed": "3"}
    assert f"<td>title</td>\n<td>{site.url}/a</td>\n<td>A</td>\n<td>A, renamed</td>" in re.sub(r"\n\s+", "\n", shown)

    download = live.get(f"/site_crawl/runs/{later}/compare.csv", params={"earlier": earlier})
    assert download.status_code == 200 and download.headers["content-type"].startswith("text/csv")
    rows = [(row["change"], row["url"].removeprefix(site.url), row["before"], row["after"])
            for row in csv.DictReader(io.StringIO(download.text))]
    assert rows == [("new", "/fresh", "", "200"), ("removed", "/gone", "200", ""), ("status", "/d", "200", "410"),
                    ("title", "/a", "A", "A, renamed"), ("canonical", "/c", "", f"{site.url}/a"),
                    ("indexability", "/b", "yes", "no: noindex in the meta robots tag"),
                    ("indexability", "/c", "yes", "no: canonical points elsewhere"),
                    ("indexability", "/d", "yes", "no: HTTP 410")]

    assert live.get(f"/site_crawl/runs/{later}/compare.csv", params={"earlier": later}).status_code == 404
    assert live.get(f"/site_crawl/runs/{later}/compare", params={"earlier": "nope"}, headers=HX).status_code == 404
