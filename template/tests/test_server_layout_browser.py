"""The layout in a real browser: every app page fits a phone, a tablet and a laptop without scrolling sideways, and
axe-core finds nothing critical or serious on it."""

import os

import pytest

from conftest import app_server, assert_accessible, needs_chromium, page_at

pytestmark = needs_chromium
WIDTHS = [390, 768, 1280]


@pytest.fixture(scope="module")
def app_url(tmp_path_factory):
    env = os.environ | {"DATA_DIR": str(tmp_path_factory.mktemp("data")),
                                      "LOG_DIR": str(tmp_path_factory.mktemp("logs"))}
    with app_server(env) as url: yield url


@pytest.mark.parametrize("width", WIDTHS)
def test_every_app_page_fits_the_width_of_the_screen(browser, app_url, width):
    with page_at(browser, app_url, viewport={"width": width, "height": 844}) as page:
        page.goto("/profiles")
        pages = ["/profiles", *page.locator(".app-menu a").evaluate_all("links => links.map(a => a.pathname)")]
        too_wide = {}
        for path in pages:
            page.goto(path)
            scroll_width = page.evaluate("document.documentElement.scrollWidth")
            if scroll_width > width: too_wide[path] = scroll_width
            assert_accessible(page)
        assert len(pages) > 1 and too_wide == {}


def test_the_chat_folds_away_for_the_profile_and_the_app_takes_the_width(browser, app_url):
    with page_at(browser, app_url) as page:
        page.goto("/todos")
        app_width = page.locator("#content").bounding_box()["width"]
        with page.expect_response("**/side/fold"):
            page.get_by_role("button", name="Hide the chat").click()
        assert page.locator("#chat").is_hidden()
        assert page.locator("#content").bounding_box()["width"] > app_width + 300
        assert_accessible(page)
        page.reload()  # kept for the profile, with the button that brings it back
        assert page.locator("#chat").is_hidden() and page.locator("#content").bounding_box()["width"] > app_width + 300
        with page.expect_response("**/side/fold"):
            page.get_by_role("button", name="Show the chat").click()
        box = page.locator("#chat-input").bounding_box()  # unfolded after a folded load, the chat fits the screen
        assert page.locator("#chat").is_visible() and box["y"] + box["height"] <= 800
        page.reload()
        assert page.locator("#chat").is_visible()
        assert page.locator("#content").bounding_box()["width"] == pytest.approx(app_width, abs=2)
