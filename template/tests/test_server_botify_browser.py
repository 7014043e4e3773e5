"""The Botify apps in a real browser (Playwright driving Chromium) against the real server and the fake Botify API:
connect with a token, export a crawl with visible progress, see the link and the preview; the token never shows
unmasked, and the page asks no other host for anything. Saves botifython.png to $SCREENSHOT_DIR (else a temporary
folder)."""

from pathlib import Path

import pytest

from core import config
from conftest import (app_server, assert_accessible, assert_only_local_requests, needs_chromium, page_at,
                      save_screenshot, served, shipped)
from fake_botify import TOKEN, FakeBotify

pytestmark = [needs_chromium, shipped("plugins/030_botify_connect.py", "plugins/040_botify_export.py",
                                      "plugins/020_url_checker.py")]  # the menu it checks has the URL checker too


@pytest.fixture
def browser_page(browser, data_env, tmp_path):
    fake = FakeBotify(step_delay=2)  # CREATED at the first poll, PROCESSING at the second (3 s on), then DONE
    env = data_env | {"BOTIFY_TOKEN_FILE": str(tmp_path / "botify_token.txt")}
    with (served(fake), app_server(env | {"BOTIFY_API_URL": fake.url}) as url,
          page_at(browser, url, timeout=15_000, accept_downloads=True) as page):
        yield page


def test_a_person_connects_botify_and_exports_a_crawl(browser_page):
    from playwright.sync_api import expect

    page = browser_page
    page.goto("/")
    expect(page.locator("header .brand")).to_have_text(config.SETTINGS["name"])  # Botifython, unless renamed
    expect(page.locator(".app-menu a")).to_contain_text(["URL checker", "Connect Botify", "Botify export"])

    page.get_by_role("link", name="Connect Botify").click()
    token = page.get_by_label("Botify API token")
    expect(token).to_have_attribute("type", "password")
    token.fill("not-my-token-000000")
    page.get_by_role("button", name="Connect").click()
    expect(page.locator("#message")).to_contain_text("Botify refused the API token")
    token.fill(TOKEN)
    page.get_by_role("button", name="Connect").click()
    expect(page.locator("#botify-account")).to_contain_text("Connected to Botify as jane.doe with the token …cdef.")
    assert TOKEN not in page.content()
    assert_accessible(page)  # connected, the account shown

    page.get_by_role("button", name="Export a crawl").click()
    expect(page.get_by_role("heading", name="Botify export")).to_be_visible()
    assert_accessible(page)
    page.get_by_label("Project").select_option(label="Example Shop · acme-org")  # once the list has loaded
    page.get_by_role("button", name="Next").click()
    page.get_by_label("Analysis").select_option(label="2025-02-01 (2) · 20250201-2")
    page.get_by_role("button", name="Next").click()
    page.get_by_label("Meta description").uncheck()
    page.get_by_label("More fields, comma-separated").fill("segments.pagetype.value")
    page.get_by_label("At most this many URLs").fill("25")
    page.get_by_role("button", name="Next").click()
    expect(page.locator("#step-fields")).to_contain_text("URL, HTTP status code, Depth, Title, H1")
    assert_accessible(page)  # the steps done, the export's to start

    page.get_by_role("button", name="Start the export").click()
    expect(page.locator("#step-export .job small")).to_contain_text("Export job 1000: CREATED")  # over the WebSocket
    # Botify gives no share done while it prepares the file: the bar moves without a value, never an empty track.
    bar = page.locator("#step-export .job progress")
    assert bar.evaluate("bar => bar.matches(':indeterminate') && getComputedStyle(bar).backgroundImage") != "none"
    assert bar.evaluate("bar => getComputedStyle(bar).animationName") == "job-busy"
    expect(page.locator("#step-export .job small")).to_contain_text("PROCESSING")
    expect(page.locator("#chat-log .note").last).to_have_text("Botify export: “Export” started.")
    assert_accessible(page)  # at work

    expect(page.locator("#step-export")).to_contain_text("25 URLs exported by Botify job 1000.")
    preview = page.locator("#step-export table")
    expect(preview.locator("th")).to_have_text(["URL", "HTTP status code", "Depth", "Title", "H1",
                                                "Compliant (indexable)", "Internal inlinks", "segments.pagetype.value"])
    expect(preview.locator("tbody tr")).to_have_count(10)
    expect(page.locator("#chat-log .note").last).to_contain_text("“Export” done. Exported 25 URLs")
    assert_accessible(page)  # the preview

    save_screenshot(page, "botifython.png", full_page=True)

    with page.expect_download() as download:
        page.get_by_role("button", name="acme-org_example-shop_20250201-2_1000.csv").click()
    assert Path(download.value.path()).read_text().startswith("url,http_code,depth,")
    assert TOKEN not in page.content()

    assert_only_local_requests(page.context.requested)
