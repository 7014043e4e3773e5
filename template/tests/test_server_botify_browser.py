"""The Botify apps in a real browser (Playwright driving Chromium) against the real server and the fake Botify API:
connect with a token, export a crawl with visible progress, see the link and the preview; the token never shows
unmasked, and the page asks no other host for anything. Saves botifython.png to $SCREENSHOT_DIR (else a temporary
folder)."""

import os
import shutil
import tempfile
from pathlib import Path
from urllib.parse import urlsplit

import pytest

import config
from conftest import app_server
from fake_botify import TOKEN, FakeBotify
from fake_ollama import running

CHROMIUM = os.environ.get("CHROMIUM") or shutil.which("chromium") or "/usr/bin/chromium"
pytestmark = pytest.mark.skipif(not Path(CHROMIUM).exists(), reason=f"no Chromium at {CHROMIUM} (set CHROMIUM)")


@pytest.fixture
def browser_page(data_env, tmp_path):
    from playwright.sync_api import sync_playwright

    fake = FakeBotify(step_delay=2)  # CREATED at the first poll, PROCESSING at the second (3 s on), then DONE
    env = data_env | {"BOTIFY_TOKEN_FILE": str(tmp_path / "botify_token.txt")}
    with running(fake.app) as api, app_server(env | {"BOTIFY_API_URL": api}) as url, sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=CHROMIUM, args=["--headless", "--no-sandbox", "--disable-gpu",
                                            "--disable-background-networking", "--disable-component-update"])
        context = browser.new_context(base_url=url, viewport={"width": 1280, "height": 800}, accept_downloads=True)
        context.requested = []
        context.on("request", lambda request: context.requested.append(request.url))
        page = context.new_page()
        page.set_default_timeout(15_000)
        try:
            yield page
        finally:
            browser.close()


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

    page.get_by_role("button", name="Export a crawl").click()
    expect(page.get_by_role("heading", name="Botify export")).to_be_visible()
    page.get_by_label("Project").select_option(label="Example Shop · acme-org")  # once the list has loaded
    page.get_by_role("button", name="Next").click()
    page.get_by_label("Analysis").select_option(label="2025-02-01 (2) · 20250201-2")
    page.get_by_role("button", name="Next").click()
    page.get_by_label("Meta description").uncheck()
    page.get_by_label("More fields, comma-separated").fill("segments.pagetype.value")
    page.get_by_label("At most this many URLs").fill("25")
    page.get_by_role("button", name="Next").click()
    expect(page.locator("#step-fields")).to_contain_text("URL, HTTP status code, Depth, Title, H1")

    page.get_by_role("button", name="Start the export").click()
    expect(page.locator("#step-export .job small")).to_contain_text("Export job 1000: CREATED")  # over the WebSocket
    expect(page.locator("#step-export .job small")).to_contain_text("PROCESSING")
    expect(page.locator("#chat-log .note").last).to_have_text("Botify export: “Export” started.")

    expect(page.locator("#step-export")).to_contain_text("25 URLs exported by Botify job 1000.")
    preview = page.locator("#step-export table")
    expect(preview.locator("th")).to_have_text(["url", "http_code", "depth", "metadata.title.content",
                                                "metadata.h1.contents", "compliant.is_compliant",
                                                "inlinks_internal.nb.total", "segments.pagetype.value"])
    expect(preview.locator("tbody tr")).to_have_count(10)
    expect(page.locator("#chat-log .note").last).to_contain_text("“Export” done. Exported 25 URLs")

    screenshots = Path(os.environ.get("SCREENSHOT_DIR") or tempfile.mkdtemp(prefix="screenshots-"))
    screenshots.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=screenshots / "botifython.png", full_page=True)

    with page.expect_download() as download:
        page.get_by_role("button", name="acme-org_example-shop_20250201-2_1000.csv").click()
    assert Path(download.value.path()).read_text().startswith("url,http_code,depth,")
    assert TOKEN not in page.content()

    hosts = {urlsplit(url).hostname for url in page.context.requested}
    assert hosts == {"127.0.0.1"}, page.context.requested
