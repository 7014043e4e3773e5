"""On-page checks: what each HTML page says beyond its title and links, and the findings about it.

parsing.parse_page calls facts() on the page's tree (in the crawl's parsing process) and keeps the result in the page
table's columns below. Measured: the title's and the meta description's length in characters and in pixels, the
images and those without an alt attribute (alt="" is a decorative image, not a missing alt), structured data
(JSON-LD parsed, its @types listed and the blocks that are no JSON counted; microdata's itemtypes), rel=next/prev,
links marked nofollow, and on an https page the resources it loads over plain http (mixed content, which browsers
block or flag).

Pixel widths are approximate, as every SEO tool's are: the advance widths of Helvetica (the PDF core font metrics;
Arial has the same widths), at the sizes Google's desktop results use, Arial 20 px for titles and 14 px for
descriptions. An accented letter counts as its base letter, a wide (CJK) character as 1 em, any other character as
the average lower-case width.
"""

import json
import unicodedata

import httpx

from core.seo.fetching import Refused, web_url
from core.seo.findings import HTML_200, Finding

# Helvetica's advance widths, in thousandths of an em, for printable ASCII from the space (32) to the tilde (126).
WIDTHS = dict(zip(map(chr, range(32, 127)), [
    278, 278, 355, 556, 556, 889, 667, 191, 333, 333, 389, 584, 278, 333, 278, 278,  # space to /
    556, 556, 556, 556, 556, 556, 556, 556, 556, 556, 278, 278, 584, 584, 584, 556,  # 0 to ?
    1015, 667, 667, 722, 722, 667, 611, 778, 722, 278, 500, 667, 556, 833, 722, 778,  # @ to O
    667, 778, 722, 667, 611, 722, 667, 944, 667, 667, 611, 278, 278, 278, 469, 556,  # P to _
    333, 556, 556, 500, 556, 556, 278, 556, 556, 222, 222, 500, 222, 833, 556, 556,  # ` to o
    556, 556, 333, 500, 278, 556, 500, 722, 500, 500, 500, 334, 260, 334, 584]))  # p to ~
AVERAGE, WIDE = 500, 1000
TITLE_PX, DESCRIPTION_PX = 20, 14  # font sizes
TITLE_MAX, DESCRIPTION_MAX = 600, 920  # pixels Google shows before it cuts the text short
TITLE_CHARS, DESCRIPTION_CHARS = (30, 60), (70, 160)  # the usual advice: at least, at most
RESOURCES = "img[src], script[src], iframe[src], audio[src], video[src], source[src], embed[src], " \
            "link[rel~=stylesheet i][href], object[data]"

COLUMNS = {"title_chars": "INTEGER", "title_px": "INTEGER", "description_chars": "INTEGER",
           "description_px": "INTEGER", "images": "INTEGER", "images_no_alt": "INTEGER", "jsonld_types": "TEXT",
           "jsonld_errors": "INTEGER", "microdata_types": "TEXT", "rel_next": "TEXT", "rel_prev": "TEXT",
           "nofollow_links": "INTEGER", "mixed_content": "INTEGER"}


def pixels(text: str | None, size: int) -> int | None:
    "The width of text in Arial at this size, in pixels (rounded)."
    if text is None: return None
    total = 0
    for char in text:
        if char not in WIDTHS:
            char = unicodedata.normalize("NFD", char)[0]
        total += WIDTHS.get(char) or (WIDE if unicodedata.east_asian_width(char) in "WF" else AVERAGE)
    return round(total * size / 1000)


def jsonld_types(data) -> set[str]:
    "Every @type in a JSON-LD document, however deep (an @graph, nested items)."
    found = set()
    if isinstance(data, dict):
        kinds = data.get("@type")
        found.update(kind for kind in (kinds if isinstance(kinds, list) else [kinds]) if isinstance(kind, str))
        for value in data.values(): found |= jsonld_types(value)
    elif isinstance(data, list):
        for value in data: found |= jsonld_types(value)
    return found


def structured_data(tree) -> tuple[list[str], int, list[str]]:
    "(JSON-LD types, JSON-LD blocks that are no JSON, microdata itemtypes) of a page."
    types, errors = set(), 0
    for script in tree.css("script[type='application/ld+json' i]"):
        try: types |= jsonld_types(json.loads(script.text() or ""))
        except ValueError: errors += 1
    itemtypes = {kind.rstrip("/").rsplit("/", 1)[-1] for node in tree.css("[itemscope][itemtype]")
                 for kind in (node.attributes.get("itemtype") or "").split()}
    return sorted(types), errors, sorted(itemtypes - {""})


def linked(tree, rel: str, base: httpx.URL) -> str | None:
    "The page's <link rel=...> as fetching.web_url makes it (absolute, without #fragment or user:password@), if any."
    node = tree.css_first(f"link[rel~={rel} i][href]")
    try: url = web_url(node.attributes["href"] or "", base) if node is not None else None
    except Refused: return None
    return str(url) if url else None


def facts(tree, base: httpx.URL, title: str | None, description: str | None) -> dict:
    "The on-page facts of a parsed page (before its scripts are removed), by column."
    images = tree.css("img")
    jsonld, errors, microdata = structured_data(tree)
    mixed = 0
    if base.scheme == "https":
        mixed = sum(1 for node in tree.css(RESOURCES)
                    if (node.attributes.get("src") or node.attributes.get("href") or node.attributes.get("data")
                        or "").strip().lower().startswith("http://"))
    return {"title_chars": len(title) if title is not None else None, "title_px": pixels(title, TITLE_PX),
            "description_chars": len(description) if description is not None else None,
            "description_px": pixels(description, DESCRIPTION_PX),
            "images": len(images), "images_no_alt": sum(1 for image in images if "alt" not in image.attributes),
            "jsonld_types": ", ".join(jsonld) or None, "jsonld_errors": errors,
            "microdata_types": ", ".join(microdata) or None,
            "rel_next": linked(tree, "next", base), "rel_prev": linked(tree, "prev", base),
            "nofollow_links": sum(1 for anchor in tree.css("a[href], area[href]")
                                  if "nofollow" in (anchor.attributes.get("rel") or "").lower().split()),
            "mixed_content": mixed}


# A robots directive, whether in the meta tag or in the header, for every user agent or for one ("googlebot: none").
DIRECTIVES = ("(',' || replace(replace(lower(coalesce(meta_robots, '') || ',' || coalesce(x_robots_tag, '')), "
              "' ', ''), ':', ',') || ',')")
NOT_FOLLOWED = f"({DIRECTIVES} LIKE '%,nofollow,%' OR {DIRECTIVES} LIKE '%,none,%')"
BROKEN_TARGET = "(SELECT url FROM page WHERE state = 'done' AND (status >= 300 OR status IS NULL))"
FINDINGS = [
    Finding("title_long", f"Titles too long (over {TITLE_CHARS[1]} characters or {TITLE_MAX} px)",
            f"{HTML_200} AND (title_chars > {TITLE_CHARS[1]} OR title_px > {TITLE_MAX})", "warning",
            "Search results cut them short."),
    Finding("title_short", f"Titles too short (under {TITLE_CHARS[0]} characters)",
            f"{HTML_200} AND title_chars BETWEEN 1 AND {TITLE_CHARS[0] - 1}", "notice",
            "A title says what the page is about, to people and search engines: say more."),
    Finding("description_long", f"Meta descriptions too long (over {DESCRIPTION_CHARS[1]} characters or "
            f"{DESCRIPTION_MAX} px)", f"{HTML_200} AND (description_chars > {DESCRIPTION_CHARS[1]} OR "
            f"description_px > {DESCRIPTION_MAX})", "notice", "Search results cut them short."),
    Finding("description_short", f"Meta descriptions too short (under {DESCRIPTION_CHARS[0]} characters)",
            f"{HTML_200} AND description_chars BETWEEN 1 AND {DESCRIPTION_CHARS[0] - 1}", "notice"),
    Finding("images_no_alt", "Images without alt text", "images_no_alt > 0", "warning",
            "Screen readers and image search need an alt attribute (alt=\"\" for a decorative image)."),
    Finding("jsonld_invalid", "Structured data that is no JSON", "jsonld_errors > 0", "error",
            "Search engines ignore a JSON-LD block they cannot parse."),
    Finding("structured_data", "With structured data (JSON-LD or microdata)",
            "jsonld_types IS NOT NULL OR microdata_types IS NOT NULL", "notice"),
    Finding("nofollow", "Links not followed (robots nofollow)", f"state = 'done' AND {NOT_FOLLOWED}", "warning",
            "nofollow in the meta robots tag or the X-Robots-Tag header: search engines follow none of the links."),
    Finding("x_robots_tag", "With an X-Robots-Tag header", "x_robots_tag IS NOT NULL", "notice"),
    Finding("nofollow_links", "With rel=nofollow links", "nofollow_links > 0", "notice"),
    Finding("pagination", "Paginated (rel=next/prev)", "rel_next IS NOT NULL OR rel_prev IS NOT NULL", "notice"),
    Finding("pagination_broken", "rel=next/prev to a redirect or a broken page",
            f"rel_next IN {BROKEN_TARGET} OR rel_prev IN {BROKEN_TARGET}", "warning"),
    Finding("mixed_content", "Mixed content (http resources on an https page)", "mixed_content > 0", "error",
            "Browsers block or flag them."),
]
