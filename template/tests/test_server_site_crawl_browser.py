"""The Site crawl in a real browser (Playwright driving Chromium) against the real server and the local test site:
a person starts a crawl, watches the pages come in, opens the findings, sorts, filters and pages the table, opens a
page, downloads the CSV and the workbook; and the page asks no other host than 127.0.0.1 for anything. Saves a
screenshot to $SCREENSHOT_DIR (else a temporary folder)."""

import csv

import openpyxl
import pytest

from conftest import (app_server, assert_accessible, assert_only_local_requests, needs_chromium, page_at,
                      save_screenshot, served, shipped)
from local_site import LocalSite

pytestmark = [needs_chromium, shipped("plugins/025_site_crawl.py")]


@pytest.fixture
def site():
    with served(LocalSite()) as site:
        yield site


def test_a_person_crawls_a_site_and_explores_what_it_found(browser, data_env, site):
    from playwright.sync_api import expect

    with app_server(data_env) as url, page_at(browser, url, accept_downloads=True, timeout=20_000) as page:
        page.goto("/site_crawl")
        expect(page.get_by_role("heading", name="Site crawl")).to_be_visible()
        page.get_by_label("Start URL").fill("nope")
        page.get_by_role("button", name="Next").click()
        expect(page.locator("#message")).to_contain_text("“nope” is not a URL: there is no dot in the host.")
        page.get_by_label("Start URL").fill(f"{site.url}/")
        page.get_by_role("button", name="Next").click()
        expect(page.locator("#step-site")).to_contain_text(f"{site.url}/")

        page.get_by_label("Depth at most (clicks)").fill("30")
        page.get_by_label("Seconds between requests").fill("0.1")
        page.get_by_label("Timeout per page (s)").fill("5")
        page.get_by_role("button", name="Start the crawl").click()

        # The pages come in while it works: the progress over the WebSocket, the rows every two seconds.
        expect(page.get_by_role("button", name="Stop and keep the pages so far")).to_be_visible()
        expect(page.locator("#step-crawl .job small")).to_contain_text("pages crawled")
        expect(page.locator("#pages-rows[hx-trigger='every 2s'] tbody tr").first).to_be_visible()

        findings = page.locator("ul.findings")
        expect(findings).to_be_visible(timeout=60_000)
        expect(page.locator("#step-crawl")).to_contain_text("every page within the limits")
        expect(page.locator(".charts svg")).to_have_count(3)
        assert_accessible(page)  # the finished crawl: findings, charts and the table of pages
        save_screenshot(page, "site-crawl.png", full_page=True, clip={"x": 0, "y": 0, "width": 1280, "height": 1700})
        for width in (390, 768):  # a phone and a tablet see the finished crawl without scrolling sideways
            page.set_viewport_size({"width": width, "height": 844})
            save_screenshot(page, f"site-crawl-{width}.png")
            assert page.evaluate("document.documentElement.scrollWidth") <= width
            # and every column of a row: the table, too narrow for them side by side, shows its rows as cards
            table = page.locator("#pages-rows .table-box").bounding_box()
            cells = [cell.bounding_box() for cell in page.locator("#pages-rows tbody tr").first.locator("td").all()]
            assert all(cell["x"] + cell["width"] <= table["x"] + table["width"] + 1 for cell in cells if cell)
        page.set_viewport_size({"width": 1280, "height": 800})

        rows = page.locator("#pages-rows tbody tr")
        findings.locator("li", has_text="Redirect chains and loops").get_by_role("button").click()
        expect(rows).to_have_count(5)
        expect(page.locator("#pages-finding")).to_have_value("redirect_chain")  # the form follows
        expect(rows.first).to_contain_text("Linked from")

        page.locator("#pages-finding").select_option("")
        expect(page.locator(".pager small")).to_contain_text("1–50 of ")
        page.get_by_role("button", name="Next ›").click()
        expect(page.locator(".pager small")).to_contain_text("51–")
        page.locator("th button.sort", has_text="Words").click()  # sorting goes back to the first page
        expect(page.locator(".pager small")).to_contain_text("1–50 of ")
        expect(rows.first).to_contain_text("/huge")
        page.get_by_placeholder("Search the URLs and titles").fill("moved")
        expect(rows).to_have_count(4)
        page.get_by_role("link", name=f"{site.url}/moved-again: everything about this page").click()
        expect(page.locator("table.page-detail")).to_contain_text(
            f"302 {site.url}/moved-again → 307 {site.url}/moved-last")

        with page.expect_download() as download:
            page.get_by_role("button", name="CSV of these pages").click()
        with open(download.value.path(), newline="") as file:
            assert {row["url"] for row in csv.DictReader(file)} == {
                f"{site.url}/moved{tail}" for tail in ("", "-again", "-last", "-final")}
        with page.expect_download() as download:
            page.get_by_role("button", name="Excel workbook").click()
        assert download.value.suggested_filename.endswith(".xlsx")
        with open(download.value.path(), "rb") as file:
            assert openpyxl.load_workbook(file).sheetnames[0] == "Pages"

        assert_only_local_requests(page.context.requested)
