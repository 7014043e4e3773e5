"""A person's session in a real browser (Playwright driving Chromium) against the real server: todos and profiles,
a reload, and not one request to another host. Saves a screenshot to $SCREENSHOT_DIR (else a temporary folder)."""

import re

import pytest

from conftest import (app_server, assert_accessible, assert_only_local_requests, needs_chromium, page_at,
                      save_screenshot, shipped)

pytestmark = [needs_chromium, shipped("plugins/010_todos.py")]


@pytest.fixture
def browser_page(browser, data_env):
    with app_server(data_env) as url, page_at(browser, url) as page:
        yield page


def test_a_person_uses_todos_and_profiles_in_the_browser(browser_page):
    from playwright.sync_api import expect

    page = browser_page
    rows = page.locator("#todo-list > li")

    def row(title: str):
        return rows.filter(has=page.locator(".title", has_text=title))

    def add(title: str):
        page.get_by_label("New todo").fill(title)
        page.get_by_label("New todo").press("Enter")
        expect(row(title)).to_be_visible()
        expect(page.get_by_label("New todo")).to_have_value("")

    page.goto("/")
    expect(page).to_have_url(re.compile(r"/todos$"))
    expect(rows).to_have_count(0)
    for title in ("Draft the quarterly SEO report", "Check the crawl budget", "Buy milk",
                  "Review redirects after the migration"):
        add(title)

    # A title of blanks: a visible message, no row.
    page.get_by_label("New todo").fill("   ")
    page.get_by_label("New todo").press("Enter")
    expect(page.locator("#message")).to_have_text("A todo cannot be empty.")
    expect(rows).to_have_count(4)

    # Edit in place.
    row("Buy milk").locator(".title").click()
    page.locator("#todo-list form input[name=title]").fill("Buy oat milk")
    page.get_by_role("button", name="Save").click()
    expect(row("Buy oat milk")).to_be_visible()
    expect(page.locator("#message")).to_be_empty()

    # Toggle done.
    row("Check the crawl budget").get_by_label("Done").check()
    expect(row("Check the crawl budget")).to_have_class("row done")
    assert_accessible(page)  # a list with a done todo

    # Drag the last todo to the top.
    with page.expect_response(lambda response: response.url.endswith("/todos/order")) as reorder:
        row("Review redirects").locator(".handle").drag_to(rows.first.locator(".handle"))
    assert reorder.value.status == 200
    order = ["Review redirects after the migration", "Draft the quarterly SEO report", "Check the crawl budget",
             "Buy oat milk"]
    expect(rows.locator(".title")).to_have_text(order)

    # Delete.
    row("Buy oat milk").get_by_role("button", name="Delete").click()
    expect(row("Buy oat milk")).to_have_count(0)
    order.remove("Buy oat milk")

    # A second profile, with a list of its own.
    page.locator("#profile-menu summary").click()
    page.get_by_role("link", name="Manage profiles…").click()
    page.get_by_label("New profile name").fill("Client: ACME")
    page.get_by_role("button", name="Add profile").click()
    acme = page.locator("#profiles li", has_text="Client: ACME")
    acme.get_by_role("button", name="Switch").click()
    expect(page.locator("#profile-menu summary")).to_contain_text("Client: ACME")
    page.get_by_role("link", name="Todos").click()
    expect(rows).to_have_count(0)
    add("Audit ACME's hreflang tags")

    # Back to the first profile from the header menu: its list as it was left.
    page.locator("#profile-menu summary").click()
    page.locator("#profile-menu").get_by_role("link", name="Default").click()
    expect(page.locator("#profile-menu summary")).to_contain_text("Default")
    expect(rows.locator(".title")).to_have_text(order)

    # A reload shows the same state: order, done, profile.
    page.reload()
    expect(rows.locator(".title")).to_have_text(order)
    expect(row("Check the crawl budget")).to_have_class("row done")
    expect(row("Check the crawl budget").get_by_label("Done")).to_be_checked()
    expect(page.locator("#profile-menu summary")).to_contain_text("Default")

    save_screenshot(page, "todos.png")

    # Deleting a profile asks first.
    page.goto("/profiles")
    page.once("dialog", lambda dialog: dialog.accept())
    page.locator("#profiles li", has_text="Client: ACME").get_by_role("button", name="Delete").click()
    expect(page.locator("#profiles li")).to_have_count(1)

    assert_only_local_requests(page.context.requested)


# htmx swaps a row in with the attributes of the row it replaced until it settles: 20 ms, and seconds on a busy
# machine, where an Escape used to come in between and do nothing. "settling" holds every swap that long.
@pytest.mark.parametrize("settle_ms", [None, 1500], ids=["settled", "settling"])
def test_escape_cancels_an_inline_edit_and_focus_returns_to_what_opened_it(browser_page, settle_ms):
    "From the keyboard alone: a todo and a profile opened for editing, changed, then Escape: nothing is saved."
    from playwright.sync_api import expect

    page, soon = browser_page, {"timeout": 30_000}  # each key may be answered by a request: a loaded machine is slow
    def settle_slowly():  # from now on, once the page is wired
        if settle_ms: page.evaluate(f"htmx.config.defaultSettleDelay = {settle_ms}")

    page.goto("/todos")
    page.get_by_label("New todo").fill("Write the brief")
    page.get_by_label("New todo").press("Enter")
    title = page.locator("#todo-list .title")
    expect(title).to_have_text(["Write the brief"], **soon)
    expect(page.locator("#todo-list")).not_to_have_class(re.compile("htmx-settling"), **soon)

    settle_slowly()
    title.focus()
    page.keyboard.press("Enter")
    editor = page.get_by_label("Todo", exact=True)
    expect(editor).to_be_focused(**soon)
    page.keyboard.type(", twice")
    expect(editor).to_have_value("Write the brief, twice")  # the cursor was after the old text
    page.keyboard.press("Escape")
    expect(title).to_have_text(["Write the brief"], **soon)
    expect(title).to_be_focused(**soon)

    page.keyboard.press("Enter")  # a save gives the focus back too
    expect(editor).to_be_focused(**soon)
    page.keyboard.type(" again")
    page.keyboard.press("Enter")
    expect(title).to_have_text(["Write the brief again"], **soon)
    expect(title).to_be_focused(**soon)

    page.goto("/profiles")
    settle_slowly()
    page.get_by_role("button", name="Rename").focus()
    page.keyboard.press("Enter")
    name = page.get_by_label("Profile name", exact=True)
    expect(name).to_be_focused(**soon)
    page.keyboard.type(" (changed)")
    expect(name).to_have_value("Default (changed)")
    page.keyboard.press("Escape")
    expect(page.get_by_role("button", name="Rename")).to_be_focused(**soon)
    expect(page.locator("#profiles .name")).to_have_text(["Default"], **soon)

    page.reload()
    expect(page.locator("#profiles .name")).to_have_text(["Default"], **soon)
    page.goto("/todos")
    expect(title).to_have_text(["Write the brief again"], **soon)
    assert_only_local_requests(page.context.requested)


def test_the_keyboard_reorders_a_list_and_says_where_the_item_went(browser_page):
    "Alt+ArrowUp/Down on a todo's handle moves it, keeps the focus on it, says its place, and the order is kept."
    from playwright.sync_api import expect

    page = browser_page
    page.goto("/todos")
    titles = ["Draft the report", "Check the crawl budget", "Fix the redirects"]
    for title in titles:
        page.get_by_label("New todo").fill(title)
        page.get_by_label("New todo").press("Enter")
        expect(page.locator("#todo-list .title").last).to_have_text(title)
    handle = page.locator("#todo-list > li", has_text="Fix the redirects").get_by_role("button", name="Move")
    expect(handle).to_have_accessible_name("Move: Alt+Up or Alt+Down")
    handle.focus()
    for place in (2, 1):
        with page.expect_response(lambda response: response.url.endswith("/todos/order")) as saved:
            page.keyboard.press("Alt+ArrowUp")
        assert saved.value.status == 200
        expect(page.locator("#announcer")).to_have_text(f"Moved to {place} of 3")
        expect(handle).to_be_focused()
    with page.expect_response(lambda response: response.url.endswith("/todos/order")):
        page.keyboard.press("Alt+ArrowDown")
    expect(page.locator("#announcer")).to_have_text("Moved to 2 of 3")
    order = ["Draft the report", "Fix the redirects", "Check the crawl budget"]
    expect(page.locator("#todo-list .title")).to_have_text(order)
    assert_accessible(page)
    page.reload()
    expect(page.locator("#todo-list .title")).to_have_text(order)
