"""Custom extraction: fields the person names, each read from every crawled HTML page with a CSS selector, as
Screaming Frog's custom extraction and Scrapy's selectors do.

    price: span.price                                   the text of every match
    image: meta[property="og:image"]::attr(content)     an attribute of every match

A page's matches are joined with " | " (as its h1s are), up to MAX_CHARS. Each field is a column of the crawl's page
table (x_<name>), so the explorer shows and sorts it, a page's details list it, and the CSV and Excel files carry it.
"""

import re

from selectolax.lexbor import LexborHTMLParser, SelectolaxError

MAX_FIELDS = 10
MAX_CHARS = 1000  # of a page's value: a selector that matches a whole page keeps the table readable
NAME = re.compile(r"[a-z][a-z0-9_]{0,29}")  # a column's name, so never more than these
ATTRIBUTE = re.compile(r"::attr\(\s*([^\s()]+)\s*\)$")


def column(name: str) -> str: return f"x_{name}"  # apart from the crawl's own columns, whatever the name


def columns(fields: dict[str, str]) -> dict[str, str]:
    "The page table's columns for the fields, with their SQL types."
    return {column(name): "TEXT" for name in fields}


def selector_parts(selector: str) -> tuple[str, str | None]:
    "(the CSS selector, the attribute to read or None for the text)."
    attribute = ATTRIBUTE.search(selector)
    return (selector[:attribute.start()].strip(), attribute[1]) if attribute else (selector.strip(), None)


def parse_fields(text: str) -> dict[str, str]:
    """The fields written one `name: selector` a line (blank lines left out); ValueError says in a sentence which line
    is wrong and why."""
    fields = {}
    for line in filter(None, map(str.strip, text.splitlines())):
        name, colon, selector = line.partition(":")
        name, selector = "_".join(name.lower().split()), selector.strip()
        if not colon or not name or not selector:
            raise ValueError(f"“{line}” is not a field: write name: CSS selector.")
        if not NAME.fullmatch(name):
            raise ValueError(f"“{name}” cannot name a field: up to 30 letters, digits and _, from a letter.")
        if name in fields: raise ValueError(f"Two fields are named “{name}”.")
        css, _ = selector_parts(selector)
        try: LexborHTMLParser("").css(css)
        except SelectolaxError: raise ValueError(f"“{css}” is not a CSS selector (for {name}).") from None
        fields[name] = selector
    if len(fields) > MAX_FIELDS:
        raise ValueError(f"That is {len(fields)} fields; a crawl extracts at most {MAX_FIELDS}.")
    return fields


def written(fields: dict[str, str]) -> str:
    "The fields as parse_fields reads them, for the form that shows them again."
    return "\n".join(f"{name}: {selector}" for name, selector in fields.items())


def extract(tree, fields: dict[str, str]) -> dict[str, str | None]:
    "The fields' values on a parsed page, by column (None where nothing matched)."
    found = {}
    for name, selector in fields.items():
        css, attribute = selector_parts(selector)
        values = (node.attributes.get(attribute) if attribute else node.text(separator=" ") for node in tree.css(css))
        found[column(name)] = " | ".join(" ".join(value.split()) for value in values if value and value.strip())[
            :MAX_CHARS] or None
    return found
