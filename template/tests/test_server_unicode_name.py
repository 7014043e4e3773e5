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
    settings = fork_copy / "settings.toml"
    # A JSON string is a TOML one; first, so that it is a top-level key whatever tables follow.
    settings.write_text(f"name = {json.dumps(NAME, ensure_ascii=False)}\n{settings.read_text()}", encoding="utf-8")
    with app_server(data_env, cwd=fork_copy) as url, httpx.Client(base_url=url, follow_redirects=True) as client:
        home = client.get("/")
        pages = {"/"} | {link for link in re.findall(r'href="(/[^"]*)"', home.text)
                         if not link.startswith("/static/") and "download" not in link}
        for path in sorted(pages):
            page = client.get(path)
            assert page.status_code == 200, f"{path}: {page.status_code} {page.text[:300]}"
            title = html.unescape(re.search(r"<title>(.*?)</title>", page.text)[1])
            assert title.endswith(f" · {NAME}"), (path, title)
        assert len(pages) > 3, pages  # the nav was read: every app's page, the profiles, the home page
