"""A fork named in any script serves every page: emoji, accents and right-to-left text in the name reach the pages,
and their titles as they are. (tests/test_answers.py in the template proves that a name given to copier
reaches config.py as it is; this is the app's half.)"""

import html
import json
import re

import httpx

from conftest import app_server

NAME = "Café 🚀 שלום 👩‍💻"  # accents, an emoji, Hebrew (right to left) and a joined emoji sequence


def test_an_app_with_a_unicode_name_serves_every_page(fork_copy, data_env):
    # The copy's settings: only the name (a JSON string is a TOML one); every other setting keeps its default.
    (fork_copy / "settings.toml").write_text(f"name = {json.dumps(NAME, ensure_ascii=False)}\n", encoding="utf-8")
    with app_server(data_env, cwd=fork_copy) as url, httpx.Client(base_url=url, follow_redirects=True) as client:
        home = client.get("/")
        pages = {"/"} | {link for link in re.findall(r'href="(/[^"]*)"', home.text)
                         if not link.startswith("/static/") and "download" not in link}
        for path in sorted(pages):
            page = client.get(path)
            assert page.status_code == 200, f"{path}: {page.status_code} {page.text[:300]}"
            title = html.unescape(re.search(r"<title>(.*?)</title>", page.text)[1])
            assert title.endswith(f" · {NAME}"), (path, title)
        assert "/profiles" in pages, pages  # the header's links were read: the profiles, and every app's page
