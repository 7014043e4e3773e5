"""The page layout: the head every page shares, the header with the app menu and the profile menu, the message
area, the app's content, the side panels (the chat) and the footer.

Template-owned: `copier update` keeps this file current. server.py gathers what a page shows (the active profile,
its panels) and draws it with `page`. What every page shows alike is drawn once, and the profile menu once per set
of profiles: the page a person lands on is drawn on every visit, and FastHTML's components cost some 20 µs each
(BENCHMARKS.md).
"""

import functools
import json

from fasthtml.common import *

from core import config

# htmx leaves 4xx and 5xx answers unswapped by default; these carry the message to show (503 and 507: faults).
# Shown, they are answers the page expected, not errors of the page: htmx would log each one to the console.
HTMX_CONFIG = {"responseHandling": [{"code": "204", "swap": False}, {"code": "[23]..", "swap": True},
                                    {"code": "4..", "swap": True, "error": False},
                                    {"code": "50[37]", "swap": True, "error": False},
                                    {"code": "...", "swap": False, "error": True}]}


def rendered(*components) -> Safe:
    "Components drawn as HTML (a Safe string, sent as it is): for what is drawn once and shown on every page."
    return to_xml(components, indent=False)


# Every script and style is served from static/: the page asks no other host for anything.
HEAD = rendered(
    Meta(charset="utf-8"), Meta(name="viewport", content="width=device-width, initial-scale=1"),
    Meta(name="htmx-config", content=json.dumps(HTMX_CONFIG)),
    Link(rel="icon", href="/static/favicon.svg", type="image/svg+xml"),
    Link(rel="stylesheet", href="/static/vendor/pico.min.css"),
    Link(rel="stylesheet", href="/static/app.css"),
    Style(f":root {{ --accent: {config.SETTINGS['accent']}; }}"),
    Script(src="/static/vendor/htmx.min.js"), Script(src="/static/vendor/ws.js"),
    Script(src="/static/vendor/Sortable.min.js"), Script(src="/static/app.js"),
)
FOOTER = rendered(Footer(Small(f"{config.SETTINGS['name']} · {config.FLAVOUR} template {config.TEMPLATE_VERSION}"),
                         cls="container"))


@functools.cache
def app_bar(apps: tuple, current: str | None) -> Safe:
    "The brand, then every app (name, label, url) in plugin order, the current one marked."
    return rendered(Ul(Li(A(Span(cls="brand-mark"), config.SETTINGS["name"], href="/", cls="brand"))),
                    Ul(*[Li(A(label, href=url, aria_current="page" if name == current else None))
                         for name, label, url in apps], cls="app-menu"))


@functools.lru_cache(maxsize=64)
def profile_menu(active: int, every: tuple, out_of_band: bool = False) -> Safe:
    "The header's profile switcher: the active profile, the others (id, name) to switch to, and the profiles page."
    others = [Li(A(name, href="#", hx_post=f"/profiles/{other}/switch")) for other, name in every if other != active]
    return rendered(Details(Summary(Small("Profile"), " ", Strong(dict(every)[active])),
                            Ul(*others, Li(A("Manage profiles…", href="/profiles"))),
                            cls="dropdown", id="profile-menu", hx_swap_oob="true" if out_of_band else None))


@functools.lru_cache(maxsize=256)
def header(apps: tuple, current: str | None, menu: Safe) -> Safe:
    # The skip link is the first thing a keyboard reaches: past the menus, straight to the app.
    return rendered(A("Skip to the content", href="#content", cls="skip-link"),
                    Header(Nav(app_bar(apps, current), Ul(Li(menu)), cls="container", aria_label="Apps and profile")))


@functools.cache
def fold_button(folded: bool) -> Safe:
    # app.js folds the panels at once on a click; the request only remembers it for the profile.
    return rendered(Button("Show the chat" if folded else "Hide the chat", hx_post="/side/fold", hx_swap="none",
                           hx_vals=json.dumps({"folded": not folded}), aria_controls="side",
                           aria_expanded="false" if folded else "true", cls="fold-side secondary outline"))


HOLE = Safe("<!-- drawn anew here -->")  # a comment that no escaped name or label can hold


def drawn_around(*components, indent: bool = False) -> list[Safe]:
    """Components with HOLEs in them, drawn once: the HTML before, between and after the holes, for a wrapper that
    stays the same around what is drawn anew on every request (the page around the app, a list around its items)."""
    return [Safe(piece) for piece in to_xml(components, indent=indent).split(HOLE)]


@functools.lru_cache(maxsize=256)
def frame(apps: tuple, current: str | None, menu: Safe, side: bool, folded: bool) -> list[Safe]:
    """The page around the app's section and the side panels, drawn once per app, profile menu and fold: the HTML
    before the section, then between it and the panels if there are any, then after them. Indented as FastHTML
    draws a page, so the page is the one it would draw (fh_cfg.indent)."""
    side_panels = [Aside(fold_button(folded), Div(HOLE, cls="side-panels"), id="side")] if side else []
    return drawn_around(header(apps, current, menu),
                        Main(Div(HOLE, *side_panels, cls="workspace side-folded" if folded else "workspace"),
                             cls="container"), FOOTER, indent=fh_cfg.indent)


@functools.lru_cache(maxsize=256)
def title(text: str) -> FT: return Title(f"{text} · {config.SETTINGS['name']}")


MESSAGE_AREA = Safe(to_xml(Div(id="message", role="status"), indent=fh_cfg.indent))


def page(text: str, content: tuple, *, apps: tuple, current: str | None, menu: Safe, panels: list, folded: bool):
    """A whole page titled text: the header with the apps (name, label, url) and the profile menu, the message area,
    the content, the side panels if there are any (folded away or not). Only the app's section and the panels are
    drawn anew, by FastHTML (a view may give a route function as a URL, which it resolves)."""
    before, *after = frame(apps, current, menu, bool(panels), folded)
    section = Section(MESSAGE_AREA, *content, cls="app", id="content", tabindex="-1")
    return title(text), before, section, after[0], *panels, *after[1:]


def fault_page(text: str) -> str:
    "A page of its own for a fault that stops the app (a full disk, a vanished database): what to do."
    return to_xml(Html(Head(Title(f"Cannot go on · {config.SETTINGS['name']}"), HEAD),
                       Body(Main(H1("The app cannot go on"), P(text, cls="problem"), cls="container")), lang="en"))
