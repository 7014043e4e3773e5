"""In Chromium the chat streams: the reply grows in visible steps, and the page asks nothing of any other host."""

import os
import shutil
import time
from pathlib import Path
from urllib.parse import urlsplit

import pytest
from playwright.sync_api import expect, sync_playwright

from chat import Ollama
from chat_app import chat_app
from fake_ollama import FakeLLM, running

CHROMIUM = os.environ.get("CHROMIUM") or shutil.which("chromium") or "/usr/bin/chromium"
pytestmark = pytest.mark.skipif(not Path(CHROMIUM).exists(), reason=f"no Chromium at {CHROMIUM} (set CHROMIUM)")
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update"]


@pytest.fixture(scope="module")
def browser():
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield browser
        browser.close()


@pytest.fixture
def fake():
    fake = FakeLLM()
    with running(fake.app) as url:
        fake.url = url
        yield fake


@pytest.fixture
def page(browser, tmp_path, fake):
    "The chat page, with every request it makes (WebSockets included) in page.urls."
    with running(chat_app(tmp_path / "app.db", Ollama(fake.url, "llama3.2", timeout=5))) as url:
        page = browser.new_page()
        page.urls = []
        page.on("request", lambda request: page.urls.append(request.url))
        page.on("websocket", lambda ws: page.urls.append(ws.url))
        page.add_init_script("document.addEventListener('htmx:wsOpen', () => window.chatOpen = true)")
        page.goto(url)
        expect(page.locator("#chat-model")).to_be_visible()  # htmx ran: the picker was loaded
        yield page
        page.close()


def send(page, text: str):
    page.wait_for_function("window.chatOpen")
    page.fill("#chat-input", text)
    page.press("#chat-input", "Enter")


def test_the_reply_grows_in_visible_steps_from_127_0_0_1_only(page, fake):
    fake.tokens, fake.delay = ["The", " reply", " grows", " one", " token", " at", " a", " time."], 0.2
    send(page, "show me")
    expect(page.locator("#chat-log .user")).to_have_text("show me")  # at once,
    expect(page.locator("#chat-input")).to_have_value("")  # the input cleared
    reply, states = page.locator("#chat-log .assistant"), []
    deadline = time.monotonic() + 10
    while "done" not in (reply.get_attribute("class") or "") and time.monotonic() < deadline:
        if (text := reply.inner_text()) and text not in states: states.append(text)
        time.sleep(0.03)
    expect(reply).to_have_class("msg assistant done")
    expect(reply).to_have_text("The reply grows one token at a time.")
    assert len(states) >= 3 and all("The reply grows one token at a time.".startswith(s) for s in states), states
    assert page.urls and {urlsplit(u).hostname for u in page.urls} == {"127.0.0.1"}, page.urls
    assert any(u.endswith("/static/vendor/ws.js") for u in page.urls) and any(u.endswith("/ws") for u in page.urls)


def test_markup_in_the_chat_shows_as_text_and_never_runs(page, fake):
    attack = '<img src="nowhere" onerror="window.pwned = 1"><script>window.pwned = 1</script>'
    send(page, attack)
    expect(page.locator("#chat-log .assistant.done")).to_have_text(f"You said: {attack}")
    expect(page.locator("#chat-log .user")).to_have_text(attack)
    assert page.evaluate("window.pwned") is None
    assert page.locator("#chat-log img, #chat-log script").count() == 0
