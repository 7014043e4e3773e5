"""Screenshots of every shipped app of the web flavours at 390, 768 and 1280 px wide, into docs/, so they can be
remade after a change (the README shows some of them).

Run as scripts/screenshots: it renders pipulate and botifython from this working tree (uncommitted changes too)
into a temporary folder, sets each up, and runs this file again with the fork's own Python (`--fork FORK SHOTS`).
That run starts the app on a free port with demo data (todos, a second profile, a chat reply from the fork's fake
LLM, a URL check and a site crawl of its local test site, a Botify export from its fake Botify API), drives
Chromium through each app and saves viewport-sized PNGs (not full pages: they stay small). Back here, Pillow makes
each one a 256-colour palette PNG in docs/. A page wider than the screen is named on the way: it must be fixed.
The apps both flavours share are shot in pipulate; botifython adds its Botify apps.
"""

import os
import subprocess
import sys
import tempfile
from contextlib import ExitStack
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
WIDTHS = {390: 844, 768: 1024, 1280: 800}  # a phone, a tablet, a laptop: width -> height
# The pages shot in each flavour: pipulate's are every app of its menu (with JupyterLab, the notebook apps too)
# and the profiles; botifython's, its own apps. A page's name in docs/ is its path.
PAGES = {"pipulate": None, "botifython": ["/botify_connect", "/botify_export"]}


def render_and_shoot(flavour: str, scratch: Path) -> list[Path]:
    "Renders the flavour, sets it up, and has the fork's Python take its screenshots; returns their paths."
    fork, shots = scratch / flavour, scratch / f"{flavour}-shots"
    subprocess.run(["copier", "copy", "--quiet", "--trust", "--vcs-ref", "HEAD", "--defaults", "-d",
                    f"flavour={flavour}", str(ROOT), str(fork)], check=True)
    subprocess.run(["./run", "setup"], cwd=fork, check=True, stdout=subprocess.DEVNULL)
    subprocess.run([fork / ".venv/bin/python", __file__, "--fork", fork, shots], check=True)
    return sorted(shots.glob("*.png"))


def made_small(png: Path, to: Path):
    "The screenshot as a palette PNG (256 colours, optimised): a fifth of its size, the text still sharp."
    from PIL import Image

    with Image.open(png) as image:
        image.convert("RGB").quantize(256).save(to, optimize=True)


# --- In the fork, with its Python: its test helpers start the app and the fakes.

def demo_data(page, flavour: str, fakes: dict):
    "What a person would have done by the time of the screenshots."
    from playwright.sync_api import expect

    page.goto("/todos")
    for title in ("Review redirects after the migration", "Draft the quarterly SEO report",
                  "Check the crawl budget", "Fix the 404s the crawl found"):
        page.get_by_label("New todo").fill(title)
        page.get_by_label("New todo").press("Enter")
        expect(page.locator("#todo-list .title").last).to_have_text(title)
    page.locator("#todo-list > li").nth(2).get_by_label("Done").check()
    fakes["llm"].tokens = ["Start with **the redirects**: a migration that loses them loses its rankings.\n\n",
                           "1. Check the old URLs with the *URL checker*\n2. Fix the `404`s first\n"]
    page.locator("#chat-input").fill("What should I do first?")
    page.locator("#chat-input").press("Enter")
    expect(page.locator("#chat-log .assistant.done")).to_have_count(1)
    page.goto("/profiles")
    page.get_by_label("New profile name").fill("Client: ACME")
    page.get_by_role("button", name="Add profile").click()
    expect(page.locator("#profiles li", has_text="Client: ACME")).to_be_visible()
    site = fakes["site"].url
    if flavour == "pipulate":
        page.goto("/url_checker")
        page.get_by_label("URLs, one per line").fill("\n".join(
            f"{site}{path}" for path in ("/", "/old", "/moved", "/missing", "/dup/1", "/canonical", "/error")))
        page.get_by_role("button", name="Next").click()
        page.get_by_role("button", name="Check 7 URLs").click()
        expect(page.locator("#step-check tbody tr")).to_have_count(7, timeout=60_000)
        page.goto("/site_crawl")
        page.get_by_label("Start URL").fill(f"{site}/")
        page.get_by_role("button", name="Next").click()
        page.get_by_label("Depth at most (clicks)").fill("30")
        page.get_by_label("Seconds between requests").fill("0.05")
        page.get_by_label("Timeout per page (s)").fill("5")
        page.get_by_role("button", name="Start the crawl").click()
        expect(page.locator("ul.findings")).to_be_visible(timeout=120_000)
    else:
        from fake_botify import TOKEN

        page.goto("/botify_connect")
        page.get_by_label("Botify API token").fill(TOKEN)
        page.get_by_role("button", name="Connect").click()
        page.get_by_role("button", name="Export a crawl").click()
        page.get_by_label("Project").select_option(label="Example Shop · acme-org")
        page.get_by_role("button", name="Next").click()
        page.get_by_label("Analysis").select_option(label="2025-02-01 (2) · 20250201-2")
        page.get_by_role("button", name="Next").click()
        page.get_by_role("button", name="Next").click()
        page.get_by_role("button", name="Start the export").click()
        expect(page.locator("#step-export table")).to_be_visible(timeout=60_000)


def shoot(fork: Path, shots: Path):
    "Starts the fork's app with the fakes, makes the demo data, and saves each page at each width in shots."
    sys.path[:0] = [str(fork / "tests"), str(fork)]
    from playwright.sync_api import sync_playwright

    from conftest import CHROMIUM, app_server, served
    from fake_ollama import FakeLLM
    from local_site import LocalSite

    flavour = "botifython" if (fork / "core" / "botify.py").exists() else "pipulate"
    shots.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="screenshots-data-") as data, ExitStack() as fakes:
        llm, site = fakes.enter_context(served(FakeLLM())), fakes.enter_context(served(LocalSite()))
        env = os.environ | {"DATA_DIR": f"{data}/data", "LOG_DIR": f"{data}/logs", "OLLAMA_HOST": llm.url}
        if flavour == "botifython":
            from fake_botify import FakeBotify
            botify = fakes.enter_context(served(FakeBotify()))
            env |= {"BOTIFY_API_URL": botify.url, "BOTIFY_TOKEN_FILE": f"{data}/botify_token.txt"}
        with app_server(env, cwd=fork) as url, sync_playwright() as playwright:
            browser = playwright.chromium.launch(executable_path=CHROMIUM, args=["--headless", "--no-sandbox"])
            page = browser.new_page(base_url=url, viewport={"width": 1280, "height": 800})
            page.set_default_timeout(20_000)
            demo_data(page, flavour, {"llm": llm, "site": site})
            paths = PAGES[flavour] or [*page.locator(".app-menu a").evaluate_all("links => links.map(a => a.pathname)"),
                                       "/profiles"]
            for width, height in WIDTHS.items():
                page.set_viewport_size({"width": width, "height": height})
                for path in paths:
                    page.goto(path)
                    page.wait_for_load_state("networkidle")
                    if page.evaluate("document.documentElement.scrollWidth") > width:
                        print(f"{flavour} {path} is wider than {width} px: it scrolls sideways", file=sys.stderr)
                    page.screenshot(path=shots / f"{flavour}-{path.strip('/').replace('_', '-')}-{width}.png")
            browser.close()


def main():
    if sys.argv[1:2] == ["--fork"]: return shoot(Path(sys.argv[2]), Path(sys.argv[3]))
    with tempfile.TemporaryDirectory(prefix="screenshots-") as scratch:
        for flavour in PAGES:
            for png in render_and_shoot(flavour, Path(scratch)):
                made_small(png, ROOT / "docs" / png.name)
                print(f"docs/{png.name}: {(ROOT / 'docs' / png.name).stat().st_size // 1024} KB")


if __name__ == "__main__":
    main()
