"""The URL checker workflow in a real browser (Playwright driving Chromium) against the real server and a local
site: paste, check with live progress while the rest of the app stays usable, results, CSV download, revert; and not
one request to another host. Saves a screenshot to $SCREENSHOT_DIR (else a temporary folder)."""

import os
import shutil
import tempfile
from pathlib import Path
from urllib.parse import urlsplit

import pytest

from conftest import app_server
from fake_ollama import running
from local_site import LocalSite

CHROMIUM = os.environ.get("CHROMIUM") or shutil.which("chromium") or "/usr/bin/chromium"
pytestmark = pytest.mark.skipif(not Path(CHROMIUM).exists(), reason=f"no Chromium at {CHROMIUM} (set CHROMIUM)")


@pytest.fixture
def site():
    site = LocalSite()
    with running(site.app) as url:
        site.url = url
        yield site
        site.release.set()


@pytest.fixture
def browser_page(data_env):
    from playwright.sync_api import sync_playwright

    with app_server(data_env) as url, sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=CHROMIUM, args=["--headless", "--no-sandbox", "--disable-gpu",
                                            "--disable-background-networking", "--disable-component-update"])
        context = browser.new_context(base_url=url, viewport={"width": 1280, "height": 800}, accept_downloads=True)
        context.requested = []
        context.on("request", lambda request: context.requested.append(request.url))
        page = context.new_page()
        page.set_default_timeout(10_000)
        try:
            yield page
        finally:
            browser.close()


def test_a_person_checks_urls_with_live_progress(browser_page, site):
    from playwright.sync_api import expect

    page = browser_page
    urls = [f"{site.url}/page/1", f"{site.url}/old", f"{site.url}/missing", f"{site.url}/held/1"]
    page.goto("/url_checker")
    expect(page.get_by_role("heading", name="URL checker")).to_be_visible()
    expect(page.locator("#chat")).to_have_attribute("ws-connect", "/ws")

    page.get_by_label("URLs, one per line").fill("\n".join(urls[:3] + ["not a url", urls[3]]))
    page.get_by_role("button", name="Next").click()
    expect(page.locator("#step-urls")).to_contain_text("4 URLs to check.")
    expect(page.locator("#step-urls")).to_contain_text("Not a URL, skipped: not a url")
    page.get_by_label("URLs at a time").fill("1")
    page.get_by_role("button", name="Check 4 URLs").click()

    # Three pages answer, the fourth is held: the bar, pushed over the WebSocket, stops at 3 of 4.
    bar = page.locator("#step-check .job progress")
    expect(bar).to_have_attribute("value", "3")
    expect(bar).to_have_attribute("max", "4")
    expect(page.locator("#chat-log .note").last).to_have_text("URL checker: “Check them” started.")

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
    expect(rows.locator("mark")).to_have_text(["200", "200", "404", "200"])
    expect(rows.nth(1)).to_contain_text(f"→ {site.url}/page/1")
    expect(rows.nth(3)).to_contain_text("Held 1")
    expect(page.locator("#chat-log .note").last).to_contain_text("“Check them” done. Checked 4 URLs")

    with page.expect_download() as download:
        page.get_by_role("button", name="Download the CSV").click()
    assert download.value.suggested_filename.endswith(".csv")
    lines = Path(download.value.path()).read_text().splitlines()
    assert lines[0] == "url,status,final_url,title,seconds,error" and len(lines) == 5

    screenshots = Path(os.environ.get("SCREENSHOT_DIR") or tempfile.mkdtemp(prefix="screenshots-"))
    screenshots.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=screenshots / "url-checker.png", full_page=True)

    # Revert to the first step: its form comes back filled, the check is cleared.
    page.locator("#step-urls").get_by_role("button", name="Revert").click()
    expect(page.get_by_label("URLs, one per line")).to_have_value("\n".join(urls[:3] + ["not a url", urls[3]]))
    expect(page.locator("#step-check")).to_have_class("step later")

    # A reload opens the run where it was.
    page.reload()
    expect(page.get_by_label("URLs, one per line")).to_be_visible()

    hosts = {urlsplit(url).hostname for url in page.context.requested}
    assert hosts == {"127.0.0.1"}, page.context.requested
