"""The URL checker workflow in a real browser (Playwright driving Chromium) against the real server and a local
site: paste, check with live progress while the rest of the app stays usable, results, CSV download, revert; and not
one request to another host. Saves a screenshot to $SCREENSHOT_DIR (else a temporary folder)."""

from pathlib import Path

import pytest

from conftest import (app_server, assert_accessible, assert_only_local_requests, needs_chromium, page_at,
                      save_screenshot, served, shipped)
from local_site import LocalSite

pytestmark = [needs_chromium, shipped("plugins/020_url_checker.py", "plugins/010_todos.py")]


@pytest.fixture
def site():
    with served(LocalSite()) as site:
        yield site
        site.release.set()


@pytest.fixture
def browser_page(browser, data_env):
    with app_server(data_env) as url, page_at(browser, url, accept_downloads=True) as page:
        yield page


def test_a_person_checks_urls_with_live_progress(browser_page, site):
    from playwright.sync_api import expect

    page = browser_page
    urls = [f"{site.url}/page/1", f"{site.url}/old", f"{site.url}/missing", f"{site.url}/held/1"]
    page.goto("/url_checker")
    expect(page.get_by_role("heading", name="URL checker")).to_be_visible()
    expect(page.locator("#chat")).to_have_attribute("ws-connect", "/ws")
    assert_accessible(page)

    page.get_by_label("URLs, one per line").fill("\n".join(urls[:3] + ["not a url", urls[3]]))
    page.get_by_role("button", name="Next").click()
    expect(page.locator("#step-urls")).to_contain_text("4 URLs to check.")
    expect(page.locator("#step-urls")).to_contain_text("Not a URL, skipped: “not a url” (it has spaces in it)")
    assert_accessible(page)  # the first step done, the second open
    page.get_by_label("URLs at a time").fill("1")
    page.get_by_role("button", name="Check 4 URLs").click()

    # Three pages answer, the fourth is held: the bar, pushed over the WebSocket, stops at 3 of 4.
    bar = page.locator("#step-check .job progress")
    expect(bar).to_have_attribute("value", "3")
    expect(bar).to_have_attribute("max", "4")
    expect(page.locator("#chat-log .note").last).to_have_text("URL checker: “Check them” started.")
    assert_accessible(page)  # at work

    # The app stays usable meanwhile, and the work goes on.
    page.get_by_role("link", name="Todos").click()
    page.get_by_label("New todo").fill("Read the URL check")
    page.get_by_label("New todo").press("Enter")
    expect(page.locator("#todo-list .title")).to_have_text(["Read the URL check"])
    page.get_by_role("link", name="URL checker").click()
    expect(page.locator("#step-check .job progress")).to_have_attribute("value", "3")

    site.release.set()  # the results arrive without a reload
    rows = page.locator("#step-check tbody tr")
    expect(rows).to_have_count(4)
    expect(rows.locator("mark")).to_have_text(["200", "301", "200", "404", "200"])
    expect(rows.nth(1)).to_contain_text(f"→ {site.url}/page/1")
    expect(rows.nth(3)).to_contain_text("Held 1")
    expect(page.locator("#chat-log .note").last).to_contain_text("“Check them” done. Checked 4 URLs")
    assert_accessible(page)  # the results

    with page.expect_download() as download:
        page.get_by_role("button", name="Download the CSV").click()
    assert download.value.suggested_filename.endswith(".csv")
    lines = Path(download.value.path()).read_text().splitlines()
    assert lines[0] == "url,status,redirects,chain,final_url,final_status,title,seconds,flag,error,expected,migration"
    assert len(lines) == 5

    save_screenshot(page, "url-checker.png", full_page=True)

    # Revert to the first step: its form comes back filled, the check is cleared.
    page.locator("#step-urls").get_by_role("button", name="Revert").click()
    expect(page.get_by_label("URLs, one per line")).to_have_value("\n".join(urls[:3] + ["not a url", urls[3]]))
    expect(page.locator("#step-check")).to_have_class("step later")
    assert_accessible(page)

    # A reload opens the run where it was.
    page.reload()
    expect(page.get_by_label("URLs, one per line")).to_be_visible()

    assert_only_local_requests(page.context.requested)
