"""Site crawl: crawl a site and audit it, then explore its pages, findings and charts; CSV and Excel downloads.

A workflow (see core/workflows/) over core/seo/crawler.py, made from the starter notebook notebooks/site_crawl.ipynb: both
crawl through the same code into data/crawls/<run>.db, a SQLite file per crawl that the notebook can read too. The
crawl runs in the background with its progress and its pages so far on the page; Stop keeps what is crawled, Cancel
drops it; a crawl cut short by a restart resumes from its frontier in that file.
"""

import asyncio
import secrets
from typing import Annotated, Literal
from urllib.parse import urlencode

from annotated_types import Interval

from fasthtml.common import *

from core import explore
from core.explore import View
from core.seo import crawl_compare, extraction, rendering
from core.seo.crawl_file import CRAWLS_DIR, FINDING, USER_AGENT, Settings
from core.seo.crawl_report import charts, findings_list, page_detail
from core.seo.crawl_table import FILTERS, SHOW, condition, order, pages, table_columns
from core.seo.crawler import Crawl
from core.seo.url_checker import normal_url
from core.workflows import Step, Workflow, drawn

NAME = "site_crawl"
DISPLAY_NAME = "Site crawl"
AT_WORK: dict[str, Crawl] = {}  # run key -> its crawl at work in this process, for Stop
LIMITS = {"max_pages": (1, 1_000_000), "max_depth": (0, 100), "concurrency": (1, 20), "delay": (0, 60),
          "timeout": (1, 120), "max_size_mb": (0.1, 50), "near_duplicates": (0, 1)}
DEFAULTS = {"max_pages": 500, "max_depth": 10, "concurrency": 4, "delay": 0.25, "timeout": 10, "max_size_mb": 5,
            "near_duplicates": 0.9, "check_external": True, "render_js": False, "user_agent": USER_AGENT}  # for fields a form leaves out
CSS = """
.crawl mark { padding: .1rem .45rem; border-radius: 1rem; font-size: .8rem; font-weight: 600; white-space: nowrap; }
.crawl .s2 { background: #d7f5dd; color: #14532d; } .crawl .s3 { background: #dbeafe; color: #1e3a8a; }
.crawl .s4, .crawl .s5, .crawl .failed { background: #fde2e1; color: #7f1d1d; }
.crawl .blocked, .crawl .pending { background: #eceff4; color: #374151; }
.crawl td small { display: block; color: var(--pico-muted-color); }
.findings { display: grid; grid-template-columns: repeat(auto-fill, minmax(15rem, 1fr)); gap: .35rem .75rem;
            padding: 0; margin-bottom: 1rem; }
.findings li { list-style: none; display: flex; justify-content: space-between; align-items: center; gap: .5rem;
               font-size: .875rem; border-bottom: 1px solid var(--pico-muted-border-color); padding: .2rem 0; }
.findings button { width: auto; margin: 0; padding: .05rem .6rem; font-size: .8rem; border-radius: 1rem; }
.findings .error button { background: #b42318; border-color: #b42318; }
.findings .warning button { background: #b54708; border-color: #b54708; }
.findings .notice button { background: #475467; border-color: #475467; }
.findings .none { color: var(--pico-muted-color); }
.charts { display: grid; grid-template-columns: repeat(auto-fit, minmax(13rem, 1fr)); gap: 1rem; margin-bottom: 1rem; }
.charts figure { margin: 0; } .charts figcaption { font-size: .8rem; font-weight: 600; margin-bottom: .25rem; }
.charts svg { width: 100%; height: auto; font: 11px system-ui, sans-serif; }
.charts svg text { fill: var(--pico-color); } .charts svg rect { fill: var(--accent); }
.page-detail th { width: 11rem; font-weight: 600; } .page-detail td { overflow-wrap: anywhere; }
.downloads { display: flex; flex-wrap: wrap; gap: .5rem; align-items: center; margin-top: .75rem; }
"""


def crawl_file(key: str): return CRAWLS_DIR / f"{key}.db"


def open_crawl(key: str) -> Crawl:
    path = crawl_file(key)
    if not path.exists(): raise FileNotFoundError(path)
    return Crawl(path)


def downloads(key: str, view: View):
    query = urlencode({k: v for k, v in view.params().items() if k not in ("page",)})
    return Div(A("CSV of these pages", href=f"/{NAME}/runs/{key}/pages.csv?{query}", download=True,
                 role="button", cls="outline"),
               A("Excel workbook", href=f"/{NAME}/runs/{key}/crawl.xlsx", download=True, role="button",
                 cls="outline"),
               Small("The workbook has every page, the findings, the broken links (external ones too) and the "
                     "redirect chains."),
               cls="downloads")


def page_rows(key: str, view: View, live: bool = False, answer: bool = False):
    "The rows fragment (answer: to a request of its own); while the crawl is at work it asks again every 2 seconds."
    url = f"/{NAME}/runs/{key}/pages"
    poll = dict(hx_get=url, hx_include="#pages-view", hx_trigger="every 2s", hx_swap="outerHTML") if live else {}
    try: crawl = open_crawl(key)
    except FileNotFoundError: return Div(P("No pages yet."), id="pages-rows", **poll)
    try: found, total, view = pages(crawl, url, view)
    finally: crawl.close()
    return explore.rows("pages", url, view, table_columns(crawl.settings.extract), FILTERS, found, total,
                        extra=None if live else downloads(key, view), answer=answer, cls="crawl", **poll)


def explorer(key: str, view: View, live: bool = False):
    return (explore.controls("pages", f"/{NAME}/runs/{key}/pages", view, FILTERS, "Search the URLs and titles"),
            page_rows(key, view, live))


def extracted(run) -> dict[str, str]:
    "The fields a run's crawl extracts, from its settings as submitted (while it works) or kept (once done)."
    return (run.get("crawl") or (run.job or {}).get("input") or {}).get("extract") or {}


# --- Step 1: what to crawl
def site_form(run):
    chosen = run.get("site") or {"start": "", "sitemaps": [], "robots_sitemaps": True}
    return (Label("Start URL", Input(name="start", value=chosen["start"], placeholder="https://example.com/")),
            Label("Sitemaps (optional, one a line: a sitemap index or .xml.gz works too)",
                  Textarea("\n".join(chosen["sitemaps"]), name="sitemaps", rows=2,
                           placeholder="https://example.com/sitemap.xml")),
            Label(Input(type="checkbox", name="robots_sitemaps", value="1", checked=chosen["robots_sitemaps"]),
                  "Also the sitemaps robots.txt lists (or /sitemap.xml), to find the pages nothing links to"),
            Button("Next"))


def site_shown(run):
    site = run["site"]
    return P(Strong(site["start"] or site["sitemaps"][0]), Br(),
             Small(", ".join(filter(None, [f"sitemaps: {', '.join(site['sitemaps'])}" if site["sitemaps"] else "",
                                          "with the sitemaps in robots.txt" if site["robots_sitemaps"] else ""]))))


# --- Step 2: the crawl, in the background
def crawl_form(run):
    chosen = DEFAULTS | (run.get("crawl") or {})
    def number_field(name, label, step="1"):
        low, high = LIMITS[name]
        return Label(label, Input(type="number", name=name, value=chosen[name], min=low, max=high, step=step,
                                  required=True))
    return (Div(number_field("max_pages", "Pages at most"), number_field("max_depth", "Depth at most (clicks)"),
                number_field("concurrency", "Requests at once"), cls="grid"),
            Div(number_field("delay", "Seconds between requests", "any"),
                number_field("timeout", "Timeout per page (s)", "any"),
                number_field("max_size_mb", "Page size cap (MB)", "any"), cls="grid"),
            number_field("near_duplicates", "Near-duplicates from this similarity (0 to 1; 0: not looked for)", "any"),
            Label(Input(type="checkbox", name="check_external", value="1", checked=chosen["check_external"]),
                  "Check the external links once the crawl ends (HEAD, else GET; a site's requests the delay apart)"),
            Label(Input(type="checkbox", name="render_js", value="1", checked=chosen.get("render_js", False)),
                  "Render JavaScript: read each page as Chromium has it once its scripts ran (slower), and find the "
                  "links and titles only scripts make"),
            Label("User agent (sent, and the one robots.txt is read for)",
                  Input(name="user_agent", value=chosen["user_agent"], required=True)),
            Label("Custom extraction (optional): a field a line, its name and a CSS selector; ::attr(name) reads an "
                  "attribute",
                  Textarea(extraction.written(chosen.get("extract") or {}), name="extract", rows=2,
                           placeholder='price: span.price\nimage: meta[property="og:image"]::attr(content)')),
            Button("Start the crawl"))


def watch(run):
    "While the crawl is at work: Stop (keeping what is crawled) and the pages so far."
    return (Style(explore.CSS + CSS),
            Button("Stop and keep the pages so far", hx_post=f"/{NAME}/runs/{run.key}/stop", hx_swap="none",
                   cls="outline"),
            *explorer(run.key, View("id"), live=True))


def results(run):
    done = run["crawl"]
    try: crawl = open_crawl(run.key)
    except FileNotFoundError: return P("The crawl's file is gone from data/crawls/: crawl again.", cls="problem")
    try:
        return (Style(explore.CSS + CSS),
                P(done["summary"], Br(), Small(crawl.note or "")),
                findings_list(f"/{NAME}/runs/{run.key}/pages", crawl), charts(crawl),
                Div(hx_get=f"/{NAME}/runs/{run.key}/compare", hx_trigger="load", hx_swap="outerHTML"),
                *explorer(run.key, View("id")))
    finally:
        crawl.close()


def setup(plugin):
    def read_site(run, form):
        def url(text):
            try: return normal_url(text)
            except ValueError as why: raise plugin.Refused(422, f"“{text}” is not a URL: {why}.") from None
        start = (form.get("start") or "").strip()
        sitemaps = [url(line) for line in (form.get("sitemaps") or "").split() if line.strip()][:20]
        if not start and not sitemaps: raise plugin.Refused(422, "Give a start URL, a sitemap, or both.")
        return {"start": url(start) if start else "", "sitemaps": sitemaps,
                "robots_sitemaps": form.get("robots_sitemaps") == "1"}

    def read_settings(run, form):
        chosen = {}
        for name, (low, high) in LIMITS.items():
            try: value = float(form.get(name, DEFAULTS[name]))
            except ValueError: raise plugin.Refused(422, f"{name.replace('_', ' ')} must be a number.") from None
            if not low <= value <= high:
                raise plugin.Refused(422, f"{name.replace('_', ' ').capitalize()} goes from {low:g} to {high:g}.")
            chosen[name] = value if name in ("delay", "timeout", "max_size_mb", "near_duplicates") else int(value)
        agent = " ".join((form.get("user_agent") or "").split())
        if not 1 <= len(agent) <= 300: raise plugin.Refused(422, "Give a user agent of up to 300 characters.")
        try: fields = extraction.parse_fields(form.get("extract") or "")
        except ValueError as why: raise plugin.Refused(422, str(why)) from None
        render_js = form.get("render_js") == "1"
        if render_js and (why := rendering.unavailable()): raise plugin.Refused(422, why)
        return chosen | {"user_agent": agent, "check_external": form.get("check_external") == "1", "extract": fields,
                         "render_js": render_js}

    async def crawl_site(run, job):
        site, chosen = run["site"], job.input
        if not job.saved.get("file"):  # a first start: a fresh file (a resume carries on with the one there)
            for old in CRAWLS_DIR.glob(f"{run.key}.db*"): old.unlink()
            Crawl(crawl_file(run.key), Settings.of_run(site, chosen)).close()
            await job.keep(file=crawl_file(run.key).name)
        crawl = AT_WORK[run.key] = open_crawl(run.key)

        async def show(progress):
            await job.progress(progress.done, progress.done + progress.queued, str(progress))

        try:
            await show(crawl.progress())
            final = await crawl.run(show)
            status, summary = crawl.status, crawl.summary(final)
        finally:
            del AT_WORK[run.key]
            crawl.close()
        await job.progress(final.done, final.done, summary)
        return chosen | {"summary": summary, "status": status}

    flow = Workflow(plugin, [
        Step("site", "What to crawl", form=site_form, submit=read_site, show=site_shown),
        Step("crawl", "Crawl and audit it", form=crawl_form, submit=read_settings, work=crawl_site, show=results,
             watch=watch),
    ], intro=P("Crawls a site as a search engine would, within its robots.txt, and audits every page: status and "
               "redirect chains, titles, descriptions, canonicals, indexability, h1, hreflang, words, links."))

    def sweep():
        "Deletes the crawl files of runs that are gone (deleted, or with their profile)."
        kept = flow.runs.keys()
        for path in CRAWLS_DIR.glob("*.db"):
            if path.stem not in kept and path.stem not in AT_WORK:
                for part in CRAWLS_DIR.glob(f"{path.stem}.db*"): part.unlink(missing_ok=True)

    sweep()

    async def export(key: str, suffix: str, write, media_type: str):
        """A run's crawl as a file to download: write(crawl, path) in a worker thread, on a connection of its own, to
        a file of this download's own (two at once never mix), deleted once sent."""
        flow.run(key)  # a 404 for another profile's run
        if not crawl_file(key).exists(): raise plugin.Refused(404, "This run has no crawl yet: start it first.")
        path = CRAWLS_DIR / f".{key}-{secrets.token_hex(4)}{suffix}"

        def written():
            crawl = open_crawl(key)
            try: return write(crawl, path)
            finally: crawl.close()
        await asyncio.to_thread(written)
        return FileResponse(path, filename=f"crawl-{key}{suffix}", media_type=media_type,
                            background=BackgroundTask(path.unlink, missing_ok=True))

    # The assistant's tools: it reads a crawl at once, and starts one once the person clicks Run on its card.
    def csv_link(key: str, **filters) -> str:
        return f"/{NAME}/runs/{key}/pages.csv?{urlencode({k: v for k, v in filters.items() if v})}"

    def crawl_of(run: str) -> str:
        "The key of the run (the one used last if empty) once it has a crawl; else a Refused."
        key = flow.run(flow.last_key(run)).key
        if not crawl_file(key).exists(): raise plugin.Refused(404, f"Run {key} has no crawl yet.")
        return key

    def summary_of(key: str, summary: str | None) -> dict:
        crawl = open_crawl(key)
        try:
            return {"run": key, "summary": summary or f"At work: {crawl.progress()}",
                    "status_codes": dict(crawl.counts("status", "state = 'done' AND status IS NOT NULL")),
                    "findings": [{"finding": finding.id, "label": finding.label, "pages": count,
                                  "csv": csv_link(key, finding=finding.id)}
                                 for finding, count in crawl.findings() if count]}
        finally:
            crawl.close()

    @plugin.tool
    async def crawl_summary(run: str = "") -> dict:
        """A site crawl's summary, its status codes, and its findings with the count of their pages and a link to
        the CSV of those pages. Cite the counts and the links.

        Args:
            run: the run's key (from site_crawl_runs); empty for the run used last
        """
        key = crawl_of(run)
        return await asyncio.to_thread(summary_of, key, flow.run(key).get("crawl", {}).get("summary"))

    def pages_of(key: str, view: View, limit: int) -> dict:
        crawl = open_crawl(key)
        try: found, total, _ = pages(crawl, f"/{NAME}/runs/{key}/pages", view)
        finally: crawl.close()
        return {"run": key, "matching": total, "csv": csv_link(key, q=view.search, **view.filters),
                "pages": [{"url": row["url"], "status": row["status"], "title": row["title"]} for row in found[:limit]]}

    @plugin.tool
    async def crawl_pages(run: str = "", show: Literal[tuple(SHOW)] | None = None,
                          finding: Literal[tuple(FINDING)] | None = None, search: str = "",
                          limit: Annotated[int, Interval(ge=1, le=50)] = 20) -> dict:
        """The pages of a site crawl that match: how many, a link to their CSV, and the first of them (URL,
        status, title). Cite the count and the CSV link.

        Args:
            run: the run's key (from site_crawl_runs); empty for the run used last
            show: only the pages with this status class or state
            finding: only the pages with this finding (from crawl_summary)
            search: only the pages whose URL or title has this text
            limit: how many pages to list
        """
        chosen = {"show": show, "finding": finding}
        view = View("id", search=search[:200], filters={name: value for name, value in chosen.items() if value})
        return await asyncio.to_thread(pages_of, crawl_of(run), view, limit)

    @plugin.tool(card="start a crawl of {start}, at most {max_pages} pages")
    async def start_crawl(start: str, max_pages: Annotated[int, Interval(ge=1, le=5000)] = 500) -> str:
        """Starts crawling a site in a new run, in the background, and audits its pages.

        Args:
            start: the URL to start from, with its https://
            max_pages: how many pages to crawl at most
        """
        # The fields as the form sends them at first: a checked box as "1"
        run = await flow.launch(site={"start": start, "robots_sitemaps": "1"},
                                crawl={**DEFAULTS, "max_pages": max_pages,
                                       "check_external": "1" if DEFAULTS["check_external"] else ""})
        return f"Started crawling {start} in run {run.key}; the chat hears when it is done."

    @plugin.route("/runs/{key}/pages", methods="get")
    async def rows(request, key: str):
        view = View.read(request.query_params, table_columns(extracted(flow.run(key))), FILTERS, default_sort="id")
        return await drawn(page_rows, key, view, live=key in AT_WORK, answer=True)  # a query of the whole crawl

    @plugin.route("/runs/{key}/pages/{page_id}", methods="get")
    async def detail(key: str, page_id: int):
        flow.run(key)
        if not crawl_file(key).exists(): raise plugin.Refused(404, "This run has no crawl yet: start it first.")
        crawl = open_crawl(key)
        try:
            row = crawl.db.execute("SELECT * FROM page WHERE id = ?", [page_id]).fetchone()
            if row is None: raise plugin.Refused(404, "No such page in this crawl.")
            return page_detail(crawl, row, len(table_columns(crawl.settings.extract)))
        finally:
            crawl.close()

    @plugin.route("/runs/{key}/pages.csv", methods="get")
    async def csv_download(request, key: str):
        view = View.read(request.query_params, table_columns(extracted(flow.run(key))), FILTERS, default_sort="id")
        return await export(key, ".csv", lambda crawl, path: crawl.write_csv(path, *condition(crawl, view),
                                                                          order(view)), "text/csv")

    @plugin.route("/runs/{key}/crawl.xlsx", methods="get")
    async def xlsx_download(key: str):
        return await export(key, ".xlsx", lambda crawl, path: crawl.write_xlsx(path),
                            "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet")

    def crawls_before(key: str) -> dict[str, str]:
        "The profile's other runs with a crawl, {key: label}, to compare this one with."
        def started(key: str) -> str:
            crawl = open_crawl(key)
            try: return crawl.settings.start or "its sitemaps"
            finally: crawl.close()
        return {run.key: f"{run.key}: {started(run.key)}" for run in flow.runs.listed() if run.key != key and crawl_file(run.key).exists()}

    def earlier_of(key: str, earlier: str) -> str:
        "The earlier crawl to compare with (a 404 unless it is a run of this profile with a crawl)."
        if earlier == key or not crawl_file(flow.run(earlier).key).exists():
            raise plugin.Refused(404, "Choose another crawl of yours to compare with.")
        return earlier

    @plugin.route("/runs/{key}/compare", methods="get")
    async def comparison(request, key: str):
        flow.run(key)
        url, earlier = f"/{NAME}/runs/{key}/compare", request.query_params.get("earlier", "")
        if not earlier: return crawl_compare.section(url, crawls_before(key))
        earlier_file = crawl_file(earlier_of(key, earlier))
        changes = await asyncio.to_thread(crawl_compare.compare, earlier_file, crawl_file(key))
        return crawl_compare.section(url, crawls_before(key), earlier, changes)

    @plugin.route("/runs/{key}/compare.csv", methods="get")
    async def comparison_download(request, key: str):
        earlier = earlier_of(key, request.query_params.get("earlier", ""))
        return await export(key, "-compare.csv", lambda crawl, path: crawl_compare.write_csv(
            path, crawl_compare.compare(crawl_file(earlier), crawl.path)), "text/csv")

    @plugin.route("/runs/{key}/stop", methods="post")
    async def stop(key: str):
        flow.run(key)
        if crawl := AT_WORK.get(key): crawl.stop()
        else: raise plugin.Refused(409, "This crawl is not at work.")
        return ""
