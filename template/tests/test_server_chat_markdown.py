"""Replies show as Markdown, and nothing an LLM writes can run script, leave for another site on its own or make the
page load anything from another host: the parser passes no raw HTML, the sanitiser keeps only what it draws."""

import re
from urllib.parse import urlsplit

import pytest
from fasthtml.common import to_xml

from core.chat import markdown_html
from core.chat.panel import finished_reply, rendered_so_far
from chat_app import html_tree
from core.config import ROOT


def tree(markdown: str):
    return html_tree(markdown_html(markdown))


def tags(markdown: str) -> list[str]:
    return [e.tag for e in list(tree(markdown).iter())[1:]]


def links(markdown: str) -> list[dict]:
    return [e.attrs for e in tree(markdown).iter() if e.tag == "a"]


def test_the_markdown_subset_replies_use():
    assert markdown_html("# Title\n\n## Part\n\nSome **bold**, *emphasis*, ~~gone~~ and `code`.") == (
        "<h1>Title</h1>\n<h2>Part</h2>\n"
        "<p>Some <strong>bold</strong>, <em>emphasis</em>, <s>gone</s> and <code>code</code>.</p>\n")
    assert tags("- one\n- two\n\n3. three\n4. four") == ["ul", "li", "li", "ol", "li", "li"]
    assert tree("3. three").find(lambda e: e.tag == "ol").get("start") == "3"
    assert tags("> quoted\n\n---") == ["blockquote", "p", "hr"]
    assert markdown_html("line one  \nline two") == "<p>line one<br>\nline two</p>\n"


def test_fenced_code_keeps_its_text_exactly():
    code = tree("```python\nif a < b and c > d:\n    print('<b>&amp;</b>')\n```").find(lambda e: e.tag == "code")
    assert code.text == "if a < b and c > d:\n    print('<b>&amp;</b>')\n"
    assert code.attrs == {}


def test_a_fenced_block_shows_its_language_and_its_code_highlighted():
    block = tree("```python\nimport os  # here\nprint('hi')\n```").find(lambda e: "code" in e.classes)
    assert [(e.tag, e.text) for e in block.iter() if e.tag == "small"] == [("small", "python")]
    spans = {e.text: e.classes for e in block.iter() if e.tag == "span"}  # Pygments' token classes, kept
    assert (spans["import"], spans["os"], spans["# here"], spans["'hi'"]) == (["kn"], ["nn"], ["c1"], ["s1"])


def test_a_block_without_a_language_or_with_an_unknown_one_is_plain_text_and_says_only_what_it_was_told():
    for markdown, label in (("```\nx = 1\n```", []), ("```klingon extra\nx = 1\n```", ["klingon"])):
        block = tree(markdown).find(lambda e: "code" in e.classes)
        assert [e.text for e in block.iter() if e.tag == "small"] == label
        assert not [e for e in block.iter() if e.tag == "span"] and block.find(lambda e: e.tag == "code").text == "x = 1\n"


@pytest.mark.parametrize("markdown", [
    "```python\nprint('<script>alert(1)</script>')\n```", "```html\n<script>alert(1)</script><img src=x onerror=alert(1)>\n```",
    '```html" onclick="alert(1)\n<b>x</b>\n```', "```<script>alert(1)</script>\nx\n```",
])
def test_script_in_a_code_block_or_its_language_stays_text(markdown):
    rendered = tree(markdown)
    assert {e.tag for e in rendered.iter()} <= {"frame", "div", "small", "pre", "code", "span"}
    assert not [name for e in rendered.iter() for name in e.attrs if name != "class"]
    assert "<" in rendered.text


def test_every_colour_of_the_highlighting_is_readable_on_the_code_background():
    "WCAG contrast of at least 4.5:1 for each token colour, on Pico's light and dark code backgrounds."
    pico = (ROOT / "static" / "vendor" / "pico.min.css").read_text()
    light, dark = re.findall(r"--pico-code-background-color:rgb\(([^)]*)\)", pico)[:2]
    css = (ROOT / "static" / "code.css").read_text()
    light_rules, dark_rules = css.split("@media (prefers-color-scheme: dark)")
    for rules, background in ((light_rules, light), (dark_rules, dark)):
        for rule in re.findall(r"\{([^}]*)\}", rules):
            colour = re.search(r"(?<!-)color: #(\w+)", rule)
            own = re.search(r"background-color: #(\w+)", rule)
            if colour: assert contrast(hex_rgb(colour[1]), hex_rgb(own[1]) if own else rgb(background)) >= 4.5, rule


def hex_rgb(digits: str) -> list[float]:
    digits = "".join(d * 2 for d in digits) if len(digits) == 3 else digits
    return [int(digits[i:i + 2], 16) for i in (0, 2, 4)]


def rgb(text: str) -> list[float]: return [float(part) for part in text.split(",")]


def contrast(a, b) -> float:
    def luminance(colour):
        linear = [c / 12.92 if c <= 0.04045 else ((c + 0.055) / 1.055) ** 2.4 for c in (x / 255 for x in colour)]
        return 0.2126 * linear[0] + 0.7152 * linear[1] + 0.0722 * linear[2]
    high, low = sorted((luminance(a), luminance(b)), reverse=True)
    return (high + 0.05) / (low + 0.05)


def test_tables_keep_their_alignment_and_nothing_else_of_style():
    table = tree("| name | count |\n|:--|--:|\n| milk | 2 |")
    assert [e.tag for e in table.iter()][1:] == ["table", "thead", "tr", "th", "th", "tbody", "tr", "td", "td"]
    cells = [e for e in table.iter() if e.tag in ("th", "td")]
    assert [(e.text, e.get("style")) for e in cells] == [
        ("name", "text-align:left"), ("count", "text-align:right"),
        ("milk", "text-align:left"), ("2", "text-align:right")]


def test_links_open_apart_and_only_to_web_mail_or_relative_addresses():
    assert links("[site](https://example.com/a?b=1 \"a title\") and <mailto:me@example.com> and [app](/todos)") == [
        {"href": "https://example.com/a?b=1", "title": "a title", "target": "_blank", "rel": "noopener noreferrer"},
        {"href": "mailto:me@example.com", "target": "_blank", "rel": "noopener noreferrer"},
        {"href": "/todos", "target": "_blank", "rel": "noopener noreferrer"}]


@pytest.mark.parametrize("markdown", [
    "[x](javascript:alert(1))", "[x](JaVaScRiPt:alert(1))", "[x](javascript&#58;alert(1))",
    "[x](  javascript:alert(1))",
    "[x](vbscript:msgbox(1))", "[x](data:text/html;base64,PHNjcmlwdD5hbGVydCgxKTwvc2NyaXB0Pg==)",
    "[x](file:///etc/passwd)", "<javascript:alert(1)>", "[x][ref]\n\n[ref]: javascript:alert(1)",
    "[x](\njavascript:alert(1))", "[x](java\tscript:alert(1))",
])
def test_a_link_to_script_or_data_is_no_link(markdown):
    "The parser leaves such a link as the text it was written as, or the sanitiser drops its address."
    assert all(urlsplit(a["href"]).scheme in ("", "http", "https", "mailto") for a in links(markdown) if "href" in a)
    hrefs = [a.get("href", "").strip().lower() for a in links(markdown)]
    assert not [href for href in hrefs if href.startswith(("java", "vb", "data", "file"))]


@pytest.mark.parametrize("markdown", [
    "<script>alert(1)</script>", '<img src="x" onerror="alert(1)">', "<iframe src=https://evil.example></iframe>",
    '<a href="javascript:alert(1)">x</a>', "<style>body{display:none}</style>", '<div onclick="alert(1)">x</div>',
    "<svg onload=alert(1)>", "text <b onmouseover=alert(1)>bold</b>", "<!-- comment --><form action=/x>",
    "```\n</code></pre><script>alert(1)</script>\n```", "`<script>alert(1)</script>`",
    "[<img src=x onerror=alert(1)>](https://example.com)", "**<script>**alert(1)**</script>**",
])
def test_raw_html_shows_as_text(markdown):
    rendered = tree(markdown)
    assert [e.tag for e in rendered.iter() if e.tag not in ("p", "div", "pre", "code", "strong", "a")] == ["frame"]
    names = [name for e in rendered.iter() for name in e.attrs]
    assert not [name for name in names if name.startswith("on") or name in ("style", "action", "src")]
    assert "<" in rendered.text  # the markup is there to read, as text


@pytest.mark.parametrize("markdown", [
    "![beacon](https://evil.example/pixel.png?who=you)", "![](http://evil.example/a.gif)",
    "![x][pic]\n\n[pic]: https://evil.example/b.png", "[![badge](https://evil.example/c.svg)](https://example.com)",
    '<img src="https://evil.example/d.png">', "![x](//evil.example/e.png)",
    "![x](data:image/png;base64,iVBORw0KGgo=)",
])
def test_images_never_load_they_become_links(markdown):
    rendered = tree(markdown)
    assert not [e for e in rendered.iter() if e.tag == "img" or "src" in e.attrs]
    for a in links(markdown): assert a["target"] == "_blank"  # a click, not a load, follows them


def test_an_image_link_is_labelled_with_its_alt_text_or_address():
    assert links("![a chart](https://example.com/chart.png)") == [
        {"href": "https://example.com/chart.png", "target": "_blank", "rel": "noopener noreferrer"}]
    assert tree("![a chart](https://example.com/chart.png)").text.strip() == "a chart"
    assert tree("![](https://example.com/chart.png)").text.strip() == "https://example.com/chart.png"


def test_a_finished_reply_carries_its_markdown_for_copying_escaped():
    attack = 'Say "<script>alert(1)</script>" & **go**'
    html = to_xml(finished_reply(attack, stopped=True), indent=False)
    reply = html_tree(html).find(lambda e: "msg" in e.classes)
    assert reply.get("data-markdown") == attack and "<script>" not in html
    assert reply.classes == ["msg", "assistant", "done", "stopped"]
    assert [e.text for e in reply.iter() if e.tag in ("small", "button")] == ["Stopped", "Copy"]


def test_an_empty_reply_is_an_empty_element_and_a_stopped_one_says_so():
    assert to_xml(finished_reply(""), indent=False) == '<div class="msg assistant done"></div>'
    stopped = html_tree(to_xml(finished_reply("", stopped=True), indent=False))
    assert [e.text for e in stopped.iter() if e.tag in ("small", "button")] == ["Stopped"]


def test_a_rendering_while_streaming_keeps_the_trailing_blanks_for_the_text_to_come():
    frame = html_tree(rendered_so_far("reply-x", "A list:\n\n- one \n"))
    md, tail = [e for e in frame.children if not isinstance(e, str)]
    assert md.get("hx-swap-oob") == "innerHTML:#reply-x-md" and [e.tag for e in md.iter()] == ["div", "p", "ul", "li"]
    assert (tail.get("hx-swap-oob"), tail.text) == ("innerHTML:#reply-x-tail", " \n")
