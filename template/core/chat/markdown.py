"""Markdown, safely: the parser never passes raw HTML through, and the sanitiser keeps only what it draws."""

from functools import lru_cache
from html import escape

import nh3
from markdown_it import MarkdownIt
from markdown_it.common.utils import unescapeAll
from pygments import highlight
from pygments.formatters import HtmlFormatter
from pygments.lexers import get_lexer_by_name
from pygments.token import STANDARD_TYPES
from pygments.util import ClassNotFound


def image_as_link(renderer, tokens, idx, options, env):
    "An image would be loaded from wherever the LLM pointed it (a beacon, say): it shows as a link to it instead."
    image = tokens[idx]
    label = renderer.renderInlineAsText(image.children, options, env) or image.attrGet("src")
    return f'<a href="{escape(image.attrGet("src"))}">{escape(label)}</a>'


def fenced_code(renderer, tokens, idx, options, env):
    """A fenced block under its language's name, highlighted by Pygments when it knows the language (static/code.css
    colours its token classes); chat.js gives each block a Copy button."""
    fence = tokens[idx]
    language = unescapeAll(fence.info).split(maxsplit=1)[0] if fence.info.strip() else ""
    label = f'<small class="code-lang">{escape(language)}</small>' if language else ""
    return f'<div class="code">{label}<pre><code>{highlighted(fence.content, language)}</code></pre></div>\n'


def highlighted(code: str, language: str) -> str:
    "The code as HTML: Pygments' token spans for a language it knows, else the text escaped."
    try:
        return highlight(code, get_lexer_by_name(language), CODE_FORMAT) if language else escape(code)
    except ClassNotFound:
        return escape(code)


CODE_FORMAT = HtmlFormatter(nowrap=True)
MARKDOWN = MarkdownIt("commonmark", {"html": False}).enable(["table", "strikethrough"])
MARKDOWN.add_render_rule("image", image_as_link)
MARKDOWN.add_render_rule("fence", fenced_code)
SANITISER = nh3.Cleaner(
    tags={"p", "br", "hr", "h1", "h2", "h3", "h4", "h5", "h6", "strong", "em", "s", "code", "pre", "blockquote",
          "ul", "ol", "li", "a", "table", "thead", "tbody", "tr", "th", "td", "div", "small", "span"},
    attributes={"a": {"href", "title"}, "ol": {"start"}, "th": {"style"}, "td": {"style"}},
    allowed_classes={"div": {"code"}, "small": {"code-lang"}, "span": set(STANDARD_TYPES.values()) - {""}},
    url_schemes={"http", "https", "mailto"}, filter_style_properties={"text-align"},
    set_tag_attribute_values={"a": {"target": "_blank"}}, link_rel="noopener noreferrer")


def markdown_html(text: str) -> str:
    "Markdown from the LLM as HTML that is safe to put in the page."
    return SANITISER.clean(MARKDOWN.render(text))


def inline_html(text: str) -> str:
    "A line of Markdown (`code`, *emphasis*, links) as HTML safe to put inside a paragraph of the page."
    return SANITISER.clean(MARKDOWN.renderInline(text))


finished_html = lru_cache(maxsize=128)(markdown_html)  # every page shows the finished replies again
