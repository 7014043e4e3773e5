"""In Chromium the chat streams: the reply grows in visible steps, and the page asks nothing of any other host."""

import time

import pytest
from playwright.sync_api import expect

from chat import Ollama
from chat_app import chat_app
from conftest import assert_only_local_requests, needs_chromium, record_requests
from fake_ollama import running

pytestmark = needs_chromium


@pytest.fixture
def page(browser, tmp_path, fake):
    "The chat page, with every request it makes (WebSockets included) in page.requested."
    with running(chat_app(tmp_path / "app.db", Ollama(fake.url, "llama3.2", timeout=5))) as url:
        page = browser.new_page()
        record_requests(page)
        page.on("websocket", lambda ws: page.requested.append(ws.url))
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
    assert_only_local_requests(page.requested)
    assert any(u.endswith("/static/vendor/ws.js") for u in page.requested)
    assert any(u.endswith("/ws") for u in page.requested)


def test_markup_in_the_chat_shows_as_text_and_never_runs(page, fake):
    attack = '<img src="nowhere" onerror="window.pwned = 1"><script>window.pwned = 1</script>'
    send(page, attack)
    expect(page.locator("#chat-log .assistant.done")).to_have_text(f"You said: {attack}")
    expect(page.locator("#chat-log .user")).to_have_text(attack)
    assert page.evaluate("window.pwned") is None
    assert page.locator("#chat-log img, #chat-log script").count() == 0
