"""In Chromium the chat is a panel a person can use all day: the reply grows in visible steps and shows as formatted
Markdown, Stop stops it, Shift+Enter starts a new line, the status says whether the LLM is there, a long conversation
scrolls inside the panel while the page keeps its height, and the page asks nothing of any other host.
Saves pipulate.png (the README's screenshot) to $SCREENSHOT_DIR, else a temporary folder."""

import re
import time

import pytest
from playwright.sync_api import expect

from core.chat import Ollama
from chat_app import chat_app
from conftest import (app_server, assert_accessible, assert_only_local_requests, browser_context, free_port,
                      needs_chromium, page_at, save_screenshot, shipped)
from fake_ollama import running

pytestmark = needs_chromium

OPENED = "document.addEventListener('htmx:wsOpen', () => window.chatOpen = true)"
SHOWN = """reply => {
    if (reply.classList.contains('done')) return ['', true];  // finished since the loop looked: its Copy is no step
    const rects = [...reply.querySelectorAll('.md, .tail')].flatMap(e => [...e.getClientRects()]);
    return [reply.textContent.replace(/\\s+/g, ' ').trim(), new Set(rects.map(r => Math.round(r.top))).size <= 1];
}"""  # what a streaming reply shows, and whether it is all on one line


@pytest.fixture
def backend(fake):
    return Ollama(fake.url, "llama3.2", timeout=5)


@pytest.fixture
def chat_url(tmp_path, backend):
    with running(chat_app(tmp_path / "app.db", backend)) as url:
        yield url


@pytest.fixture
def page(browser, chat_url):
    "The chat page, with every request it makes (WebSockets included) in page.context.requested."
    with page_at(browser, chat_url) as page:
        page.on("websocket", lambda ws: page.context.requested.append(ws.url))
        page.add_init_script(OPENED)
        page.goto(chat_url)
        expect(page.locator("#chat-model")).to_be_visible()  # htmx ran: the picker was loaded
        yield page


def send(page, text: str):
    page.wait_for_function("window.chatOpen")
    page.fill("#chat-input", text)
    page.press("#chat-input", "Enter")


def test_the_reply_grows_in_visible_steps_from_127_0_0_1_only(page, fake):
    fake.tokens, fake.delay = ["The", " reply", " grows", " one", " token", " at", " a", " time."], 0.2
    send(page, "show me")
    expect(page.locator("#chat-log .user")).to_have_text("show me")  # at once,
    expect(page.locator("#chat-input")).to_have_value("")  # the input cleared
    reply, states, lines = page.locator("#chat-log .assistant"), [], set()
    deadline = time.monotonic() + 10
    while "done" not in (reply.get_attribute("class") or "") and time.monotonic() < deadline:
        text, one_line = reply.evaluate(SHOWN)
        if text and text not in states: states.append(text)
        lines.add(one_line)
        time.sleep(0.03)
    expect(reply).to_have_class("msg assistant done")
    expect(reply.locator(".md")).to_have_text("The reply grows one token at a time.")
    assert len(states) >= 3 and all("The reply grows one token at a time.".startswith(s) for s in states), states
    assert lines == {True}  # the text since the last rendering went on the rendered line, never below it
    assert_only_local_requests(page.context.requested)
    assert any(u.endswith("/static/vendor/ws.js") for u in page.context.requested)
    assert any(u.endswith("/ws") for u in page.context.requested)


def test_markdown_shows_formatted_and_loads_nothing_from_elsewhere(page, fake):
    fake.tokens = ["## Plan\n\n", "1. **Crawl** the site\n2. Check `robots.txt`\n\n",
                   "| page | status |\n|---|--:|\n| / | 200 |\n\n", "```python\nprint('<b>hi</b>')\n```\n\n",
                   "![pixel](https://tracker.example/p.gif) [docs](https://example.com) [bad](javascript:alert(1))"]
    send(page, "plan it")
    reply = page.locator("#chat-log .assistant.done .md")
    expect(reply.locator("h2")).to_have_text("Plan")
    expect(reply.locator("ol > li")).to_have_text(["Crawl the site", "Check robots.txt"])
    expect(reply.locator("li strong")).to_have_text("Crawl")
    expect(reply.locator("td")).to_have_text(["/", "200"])
    expect(reply.locator("pre code")).to_have_text("print('<b>hi</b>')")
    assert reply.locator("img, b, script").count() == 0
    expect(reply.locator("a")).to_have_text(["pixel", "docs"])
    assert reply.locator("a").evaluate_all("links => links.map(a => a.getAttribute('href'))") == [
        "https://tracker.example/p.gif", "https://example.com"]
    assert reply.locator("pre").evaluate("pre => getComputedStyle(pre).whiteSpace") == "pre"
    assert_accessible(page)
    page.wait_for_timeout(200)
    assert_only_local_requests(page.context.requested)


def test_markup_in_the_chat_shows_as_text_and_never_runs(page, fake):
    attack = '<img src="nowhere" onerror="window.pwned = 1"><script>window.pwned = 1</script>'
    send(page, attack)
    expect(page.locator("#chat-log .assistant.done .md")).to_have_text(f"You said: {attack}")
    expect(page.locator("#chat-log .user")).to_have_text(attack)
    assert page.evaluate("window.pwned") is None
    assert page.locator("#chat-log img, #chat-log script").count() == 0


@pytest.mark.parametrize("how", ["button", "Escape"])
def test_stop_stops_the_reply_and_keeps_it(page, fake, how):
    fake.tokens, fake.delay = [f" word{n}" for n in range(300)], 0.03
    send(page, "go on and on")
    stop, reply = page.locator("#chat-stop"), page.locator("#chat-log .assistant")
    expect(reply).to_contain_text("word3")
    expect(stop).to_be_visible()
    expect(page.locator("#chat-send")).to_be_hidden()  # Stop in its place
    assert_accessible(page)  # while the reply streams
    stop.click() if how == "button" else page.press("#chat-input", "Escape")
    expect(reply).to_have_class("msg assistant done stopped")
    expect(reply.locator(".stopped-mark")).to_have_text("Stopped")
    expect(stop).to_be_hidden()
    expect(page.locator("#chat-send")).to_be_visible()
    assert_accessible(page)
    kept = reply.locator(".md").inner_text()
    page.wait_for_timeout(300)
    assert reply.locator(".md").inner_text() == kept and "word299" not in kept  # nothing more arrives
    deadline = time.monotonic() + 5
    while fake.aborted == 0 and time.monotonic() < deadline: time.sleep(0.02)
    assert fake.aborted == 1  # the LLM saw its stream closed


def test_shift_enter_adds_a_line_and_enter_sends_it_all(page, fake):
    page.wait_for_function("window.chatOpen")
    box = page.locator("#chat-input")
    box.click()
    box.press_sequentially("first line")
    box.press("Shift+Enter")
    box.press_sequentially("second line")
    expect(box).to_have_value("first line\nsecond line")
    assert page.locator("#chat-log .msg").count() == 0  # not sent yet
    height = box.bounding_box()["height"]
    box.press("Shift+Enter")
    box.press_sequentially("third")
    assert box.bounding_box()["height"] > height  # the box grows with its lines
    box.press("Enter")
    expect(page.locator("#chat-log .user")).to_have_text("first line\nsecond line\nthird")
    expect(box).to_have_value("")
    expect(page.locator("#chat-log .assistant.done .md")).to_have_text("You said: first line second line third")
    assert fake.requests[-1]["messages"][-1]["content"] == "first line\nsecond line\nthird"


def test_the_size_limit_shows_before_sending(page, fake):
    page.wait_for_function("window.chatOpen")
    size = page.locator("#chat-size")
    expect(size).to_contain_text("8 KB")
    page.fill("#chat-input", "é" * 4097)  # 8,194 bytes
    expect(size).to_have_text("8.0 of 8 KB: too long to send")
    expect(size).to_have_class("over")
    page.press("#chat-input", "Enter")
    page.locator("#chat-form button", has_text="Send").click()
    page.wait_for_timeout(200)
    assert page.locator("#chat-log .msg").count() == 0 and fake.requests == []
    page.press("#chat-input", "Backspace")
    expect(size).not_to_have_class("over")


def settled(swapped_in):
    "Waits until htmx has settled what it swapped in: only then does it listen to events there (20 ms, or more)."
    expect(swapped_in).not_to_have_class(re.compile(r"\bhtmx-added\b"))


def test_the_status_shows_whether_the_llm_is_there_before_sending(browser, chat_url, backend):
    running_at, backend.url = backend.url, f"http://127.0.0.1:{free_port()}"
    with page_at(browser, chat_url) as page:
        page.goto("/")
        status = page.locator("#chat-status")
        expect(status).to_have_text(backend.unreachable().replace("`", ""))  # its commands as code
        expect(page.get_by_label("Model")).to_have_value("llama3.2")
        expect(page.locator("#chat-log")).to_be_empty()
        assert "Enter sends" in page.locator("#chat-log").evaluate("log => getComputedStyle(log, '::before').content")
        assert_accessible(page)  # the LLM is not there
        settled(page.locator("#chat-picker"))
        backend.url = running_at  # Ollama started; the person opens the picker
        page.get_by_label("Model").focus()
        expect(status).to_have_text(f"llama3.2 is ready (Ollama at {running_at}).")
        settled(status)
        expect(page.locator("#chat-model option")).to_have_text(["llama3.2:latest", "qwen2.5:7b"])
        page.get_by_label("Model").select_option("qwen2.5:7b")
        expect(status).to_have_text(f"qwen2.5:7b is ready (Ollama at {running_at}).")
        assert_accessible(page)


@pytest.fixture
def clipboard_page(browser, chat_url):
    "The chat page, allowed to read what its Copy buttons put on the clipboard."
    with browser_context(browser) as context:
        context.grant_permissions(["clipboard-read", "clipboard-write"], origin=chat_url)
        page = context.new_page()
        page.add_init_script(OPENED)
        page.goto(chat_url)
        yield page


def test_copy_gives_the_reply_as_markdown(clipboard_page, fake):
    page = clipboard_page
    fake.tokens = ["**Bold** and\n\n- a list"]
    send(page, "copy this")
    reply = page.locator("#chat-log .assistant.done")
    reply.get_by_role("button", name="Copy this reply").click()
    expect(reply.locator(".copy")).to_have_text("Copied")
    assert page.evaluate("navigator.clipboard.readText()") == "**Bold** and\n\n- a list"


@shipped("plugins/010_todos.py")
def test_a_long_conversation_scrolls_in_the_panel_and_the_page_keeps_its_height(browser, data_env, fake):
    fake.tokens = ["Here is a **longer** answer, so that the log fills up quickly:\n\n"
                   + "\n".join(f"{n}. step number {n} of the plan" for n in range(1, 13))]
    with app_server(data_env | {"OLLAMA_HOST": fake.url}) as url, page_at(browser, url) as page:
        page.add_init_script(OPENED)
        page.goto("/todos")
        expect(page.locator("#chat-status")).to_have_text(f"llama3.2 is ready (Ollama at {fake.url}).")
        todos = ("Review redirects after the migration", "Draft the quarterly SEO report", "Check the crawl budget")
        for todo in todos:
            page.get_by_label("New todo").fill(todo)
            page.get_by_label("New todo").press("Enter")
            expect(page.locator("#chat-log .note").last).to_have_text(f"Added the todo: {todo}")
        page_height = page.evaluate("document.documentElement.scrollHeight")
        log, box = page.locator("#chat-log"), page.locator("#chat-input")
        for n in range(6):
            send(page, f"Question {n}: what next?")
            expect(log.locator(".assistant.done")).to_have_count(n + 1)
        assert page.evaluate("document.documentElement.scrollHeight") == page_height
        assert page.evaluate("scrollY") == 0
        viewport = page.viewport_size["height"]
        assert 0 < box.bounding_box()["y"] and box.bounding_box()["y"] + box.bounding_box()["height"] <= viewport
        scrolling = log.evaluate("log => [log.scrollHeight, log.clientHeight, log.scrollTop]")
        assert scrolling[0] > 2 * scrolling[1] and scrolling[2] >= scrolling[0] - scrolling[1] - 2  # at the end
        expect(log.locator(".assistant").last).to_be_in_viewport()

        # Scrolled up to read while a reply streams, the log stays there.
        fake.tokens, fake.delay = [f" Word {n} of a reply that takes its time." for n in range(20)], 0.03
        page.locator("#chat-input").fill("one more")
        page.locator("#chat-form button", has_text="Send").click()
        expect(log.locator(".assistant").last).to_contain_text("Word 2 ")
        log.evaluate("log => log.scrollTop = 100")
        expect(log.locator(".assistant.done")).to_have_count(7)
        assert log.evaluate("log => log.scrollTop") == 100

        fake.tokens, fake.delay = [
            "### Start with the redirects\n\nA migration that loses its redirects loses its **rankings**, so:\n\n",
            "1. Export the old URLs from the sitemap\n2. Check each one with the *URL checker*\n",
            "3. Fix the `404`s first, then the redirect chains\n\n",
            "| todo | why first |\n|---|---|\n| Review redirects | traffic is at stake |\n",
            "| Crawl budget | follows from the fixes |\n\nThen draft the report with what you found."], 0
        log.evaluate("log => log.scrollTop = log.scrollHeight")
        page.locator("#chat-input").fill("Which of these should I do first?")
        page.locator("#chat-input").press("Enter")
        expect(log.locator(".assistant.done")).to_have_count(8)
        expect(log.locator(".assistant").last).to_be_in_viewport()
        save_screenshot(page, "pipulate.png")
        assert_accessible(page)
        assert_only_local_requests(page.context.requested)


def test_each_code_block_copies_its_own_code_and_each_message_says_who_said_it(clipboard_page, fake):
    page = clipboard_page
    fake.tokens = ["Two ways:\n\n```python\nprint('one')\n```\n\n", "```bash\necho two\n```\n"]
    send(page, "show code")
    blocks = page.locator("#chat-log .assistant.done .code")
    expect(blocks.locator(".code-lang")).to_have_text(["python", "bash"])
    blocks.nth(1).get_by_role("button", name="Copy this code").click()
    expect(blocks.nth(1).locator(".copy")).to_have_text("Copied")
    assert page.evaluate("navigator.clipboard.readText()") == "echo two\n"
    page.reload()  # a reply drawn with the page gets its buttons too
    blocks.nth(0).get_by_role("button", name="Copy this code").click()
    assert page.evaluate("navigator.clipboard.readText()") == "print('one')\n"
    speakers = "[...document.querySelectorAll('#chat-log .msg')].map(m => getComputedStyle(m, '::before').content)"
    assert page.evaluate(speakers) == ['"You"', '"Assistant"']
    assert_accessible(page)
