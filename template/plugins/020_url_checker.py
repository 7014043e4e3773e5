"""URL checker: paste a list of URLs, check them all at once, get a results table and a CSV.

A workflow (see core/workflows/) made from the starter notebook notebooks/apps/url_checker.ipynb: both check through
url_checker.py, and the CSV goes to data/url_checks/ like the notebook's. The table sorts, filters and pages on the
server (explore.py); each row shows every hop of its redirect chain with its code.
"""

import asyncio
from dataclasses import asdict
from typing import Annotated, Literal

from annotated_types import Interval, Len

from fasthtml.common import *

from core import explore
from core.explore import Column, Filter, View, address
from core.seo.fetching import without_passwords
from core.seo.url_checker import CHECKS_DIR, MAX_REDIRECTS, UrlCheck, check_urls_apart, from_dict, parse_redirect_map, write_csv
from core.workflows import Step, Workflow, drawn

NAME = "url_checker"
DISPLAY_NAME = "URL checker"
MAX_URLS = 5000
CSS = """
.url-results mark { padding: .1rem .45rem; border-radius: 1rem; font-size: .8rem; font-weight: 600;
                    white-space: nowrap; }
.url-results .s2 { background: #d7f5dd; color: #14532d; }
.url-results .s3 { background: #dbeafe; color: #1e3a8a; }
.url-results .s4, .url-results .s5, .url-results .failed { background: #fde2e1; color: #7f1d1d; }
.url-results .hop { white-space: nowrap; }
.url-results small { display: block; color: var(--pico-muted-color); }
.url-results small.flag { color: #9a3412; font-weight: 600; }
"""


def plural(n: int, word: str) -> str: return f"{n:,} {word}{'' if n == 1 else 's'}"


def outcome(result: UrlCheck) -> str:
    "How a check ended, for the filter: the class of what the URL itself answered, or failed."
    return f"{result.status // 100}xx" if result.status and not result.error else "failed"


def summary(results: list[UrlCheck]) -> str:
    count = lambda test: sum(1 for r in results if test(r))
    flagged = count(lambda r: r.flag)
    return (f"Checked {plural(len(results), 'URL')}: {count(lambda r: outcome(r) == '2xx'):,} answered 2xx, "
            f"{count(lambda r: r.redirects):,} redirected, "
            f"{count(lambda r: outcome(r) in ('4xx', '5xx') or (r.final_status or 0) >= 400):,} ended in 4xx or "
            f"5xx, {count(lambda r: r.error and not r.hops):,} failed"
            + (f"; {plural(flagged, 'redirect problem')} flagged" if flagged else "")
            + (f"; {count(lambda r: r.expected and not r.migration):,} of {mapped:,} redirected as the map says"
               if (mapped := count(lambda r: r.expected)) else "") + ".")


# --- The results table: what each column shows and sorts by
def status_marks(result: UrlCheck):
    "Every answer of the chain, 301 → 308 → 200, and failed where it broke off."
    marks = [Mark(hop["status"], cls=f"s{hop['status'] // 100}", title=hop["url"]) for hop in result.hops]
    if result.error: marks.append(Mark("failed", cls="failed", title=result.error))
    return Span(*[piece for n, mark in enumerate(marks) for piece in ((" → " if n else None), mark)], cls="hop")


def url_cell(result: UrlCheck):
    moved = result.final_url not in (None, result.url)
    return address(result.url), Small("→ ", address(result.final_url)) if moved else None


COLUMNS = [
    Column("status", "Status", status_marks),
    Column("url", "URL", url_cell, cls="url"),
    Column("redirects", "Hops", numeric=True),
    Column("title", "Title", lambda r: (r.title or "", Small(r.flag, cls="flag") if r.flag else None,
                                        Small(r.error) if r.error else None)),
    Column("seconds", "Time", lambda r: f"{r.seconds:.2f} s" if r.seconds is not None else "", numeric=True),
]
# With a redirect map: where each URL should lead, and what keeps it from leading there as a migration should.
MAP_COLUMN = Column("migration", "Redirect map", lambda r: (
    address(r.expected), Small(r.migration, cls="flag") if r.migration else Small("✓ as mapped")) if r.expected else "",
    cls="url")
MAP_FLAG = ("unmapped", "not redirected as the map says")
SORT_KEYS = {"migration": lambda r: (not r.migration, r.migration, r.expected is None), "checked": lambda r: r.n, "status": lambda r: (r.status is None, r.status or 0, r.final_status or 0),
             "url": lambda r: r.url, "redirects": lambda r: r.redirects,
             "title": lambda r: (r.title is None, (r.title or "").casefold()),
             "seconds": lambda r: (r.seconds is None, r.seconds or 0)}
FILTERS = [Filter("outcome", "Every answer", {"2xx": "2xx", "3xx": "3xx, redirected", "4xx": "4xx", "5xx": "5xx",
                                              "failed": "failed"}),
           Filter("flag", "Flagged or not", {"flagged": "redirect problems", "chain": "chains of redirects",
                                             "loop": "loops and too many redirects"})]
FLAGS = {"unmapped": lambda r: bool(r.migration), "flagged": lambda r: bool(r.flag), "chain": lambda r: r.flag.startswith("chain"),
         "loop": lambda r: r.flag in ("redirect loop", "too many redirects")}


def has_map(run) -> bool: return bool(run["urls"].get("expected"))


def columns(run) -> list[Column]: return COLUMNS + [MAP_COLUMN] if has_map(run) else COLUMNS


def filters(run) -> list[Filter]:
    "A run with a redirect map can show the URLs that are not redirected as it says."
    if not has_map(run): return FILTERS
    return [FILTERS[0], Filter("flag", FILTERS[1].label, dict([MAP_FLAG]) | FILTERS[1].choices)]


def checked(run) -> list[UrlCheck]:
    "The run's results, each with .n, its place in the list as pasted (the default order)."
    found = [from_dict(saved) for saved in run["check"]["results"]]
    for n, result in enumerate(found): result.n = n
    return found


def matching(results: list[UrlCheck], view: View) -> list[UrlCheck]:
    "The results the view asks for, in its order."
    search = view.search.casefold()
    found = [r for r in results
             if (not search or search in r.url.casefold() or search in (r.title or "").casefold()
                 or search in (r.final_url or "").casefold())
             and view.filters.get("outcome") in (None, outcome(r))
             and (view.filters.get("flag") is None or FLAGS[view.filters["flag"]](r))]
    return sorted(found, key=SORT_KEYS[view.sort], reverse=view.descending)


def results_rows(run, view: View, answer: bool = False):
    found = matching(checked(run), view)
    view = view.fit(len(found))
    return explore.rows("urls", f"/{NAME}/runs/{run.key}/rows", view, columns(run), filters(run),
                        found[view.offset:view.offset + explore.PAGE_SIZE], len(found), answer=answer,
                        cls="url-results")


# --- Step 1: the URLs
def url_form(run):
    return (Textarea(run.get("urls", {}).get("text", ""), name="text", rows=8, required=True,
                     aria_label="URLs, one per line", placeholder="https://example.com/\nexample.com/about\n…",
                     aria_describedby="redirect-map-hint"),
            Small("A redirect map checks a migration: each line an old URL and the new one it should redirect to, "
                  "as two columns pasted from a spreadsheet or written old -> new.", id="redirect-map-hint"),
            Button("Next"))


def invalid_lines(invalid):
    shown = "; ".join(f"“{line}” ({why})" for line, why in invalid[:5])
    return Small("Not URLs, skipped: " if len(invalid) > 1 else "Not a URL, skipped: ", shown,
                 f"; and {len(invalid) - 5:,} more" if len(invalid) > 5 else "")


def url_list(run):
    urls, invalid = run["urls"]["urls"], run["urls"]["invalid"]
    count = Strong(plural(len(urls), "URL")), " to check."
    if has_map(run): count += (f" {len(run['urls']['expected']):,} of them with the URL each should redirect to: each "
                              "is checked for one permanent redirect (301 or 308) to it, answering 200.",)
    if run["urls"].get("credentials"): count += (" The user names and passwords in them (user:password@) were "
                                                 "removed: they are never kept, shown or sent.",)
    return P(*count, Br(), invalid_lines(invalid)) if invalid else P(*count)


# --- Step 2: the check, in the background
def check_form(run):
    settings = run.get("check") or {"concurrency": 10, "timeout": 10}
    return (Div(Label("URLs at a time", Input(type="number", name="concurrency", value=settings["concurrency"],
                                              min=1, max=50, required=True)),
                Label("Timeout per URL (seconds)", Input(type="number", name="timeout", value=settings["timeout"],
                                                         min=1, max=120, required=True)),
                cls="grid"),
            Button(f"Check {plural(len(run['urls']['urls']), 'URL')}"))


def results(run):
    view, url = View("checked"), f"/{NAME}/runs/{run.key}/rows"
    return (Style(explore.CSS + CSS),
            P(summary(checked(run))),
            P(A("Download the CSV", href=f"/{NAME}/runs/{run.key}/csv", download=True, role="button", cls="outline"),
              " ", Small(f"data/url_checks/{run['check']['csv']}")),
            explore.controls("urls", url, view, filters(run), "Search the URLs and titles"),
            results_rows(run, view))


def kept(found: list[UrlCheck], key: str):
    "The results as the run keeps them, a CSV and dicts: 5,000 of each take a while, so a worker thread makes them."
    return write_csv(found, key), [asdict(result) for result in found]


def setup(plugin):
    def read_urls(run, form):
        text = form.get("text", "")
        found, invalid = parse_redirect_map(text)
        urls = list(found)
        if not urls:
            reasons = "; ".join(f"“{line}”: {why}" for line, why in invalid[:3])
            raise plugin.Refused(422, "No URLs there: paste one URL a line, like https://example.com/."
                                      + (f" Not URLs: {reasons}." if reasons else ""))
        if len(urls) > MAX_URLS:
            raise plugin.Refused(422, f"That is {len(urls):,} URLs; one run checks at most {MAX_URLS:,}.")
        kept = without_passwords(text)  # the form shows it again: never with a password
        return {"text": kept, "urls": urls, "invalid": invalid, "credentials": kept != text,
                "expected": {url: target for url, target in found.items() if target}}

    def read_settings(run, form):
        try:
            concurrency, timeout = int(form.get("concurrency", "")), float(form.get("timeout", ""))
        except ValueError:
            raise plugin.Refused(422, "URLs at a time and the timeout must be numbers.") from None
        if not (1 <= concurrency <= 50 and 1 <= timeout <= 120):
            raise plugin.Refused(422, "Check 1 to 50 URLs at a time, with a timeout of 1 to 120 seconds.")
        return {"concurrency": concurrency, "timeout": timeout}

    async def check_all(run, job):
        urls, done = run["urls"]["urls"], []

        async def tick(result: UrlCheck):
            done.append(result)
            await job.progress(len(done), len(urls), f"Checked {len(done):,} of {len(urls):,}: {result.url}")

        found = await check_urls_apart(urls, job.input["concurrency"], job.input["timeout"], on_result=tick)
        for result in found: result.expected = run["urls"].get("expected", {}).get(result.url)
        csv, results = await asyncio.to_thread(kept, found, run.key)
        await job.progress(len(urls), len(urls), summary(found))
        return job.input | {"csv": csv.name, "results": results}

    flow = Workflow(plugin, [
        Step("urls", "Paste the URLs", form=url_form, submit=read_urls, show=url_list),
        Step("check", "Check them", form=check_form, submit=read_settings, work=check_all, show=results),
    ], intro=P("Status, every redirect hop with its code, final URL, title and response time of every URL in a "
               f"list, checked at once. Loops and chains of redirects are flagged; after {MAX_REDIRECTS} hops the "
               "check gives up."))

    flow.serve_csv("check", CHECKS_DIR, "This run has no CSV in data/url_checks: check its URLs first.")

    # The assistant's tools: the results of a check at once; a check of a list once the person clicks Run.
    @plugin.tool
    async def url_check_results(run: str = "", outcome: Literal[tuple(FILTERS[0].choices)] | None = None,
                                flagged: bool = False, search: str = "",
                                limit: Annotated[int, Interval(ge=1, le=50)] = 20) -> dict:
        """The results of a URL check: its summary, how many results match, a link to their CSV, and the first
        of them. Cite the counts, and the CSV link.

        Args:
            run: the run's key (from url_checker_runs); empty for the run used last
            outcome: only the URLs that answered so, or failed
            flagged: only the URLs with redirect problems
            search: only the URLs or titles with this text
            limit: how many results to list
        """
        found = flow.run(flow.last_key(run))
        if "check" not in found.state: return f"Run {found.key} has no results yet: its URLs were not checked."
        chosen = {"outcome": outcome, "flag": "flagged" if flagged else None}
        view = View("checked", search=search, filters={name: value for name, value in chosen.items() if value})
        every = await asyncio.to_thread(checked, found)  # 5,000 results take a while to read
        matched = matching(every, view)
        return {"run": found.key, "summary": summary(every), "matching": len(matched),
                "csv": f"/{NAME}/runs/{found.key}/csv",
                "results": [{"url": r.url, "status": r.status, "final_url": r.final_url, "hops": r.redirects,
                             "flag": r.flag, "error": r.error, "title": r.title}
                            | ({"expected": r.expected, "migration": r.migration or "as mapped"} if r.expected else {})
                            for r in matched[:limit]]}

    @plugin.tool(card=lambda urls: f"check {plural(len(urls), 'URL')}: {', '.join(urls[:3])}"
                                   f"{'…' if len(urls) > 3 else ''}")
    async def check_urls(urls: Annotated[list[str], Len(1, MAX_URLS)]) -> str:
        """Checks a list of URLs in a new run of the URL checker, in the background: status, redirects, title.

        Args:
            urls: the URLs, each with its https://
        """
        started = await flow.launch(urls={"text": "\n".join(urls)}, check={"concurrency": "10", "timeout": "10"})
        return (f"Started checking {plural(len(urls), 'URL')} in run {started.key}; the chat hears when it is "
                "done, and url_check_results reads it then.")

    @plugin.route("/runs/{key}/rows", methods="get")
    async def rows(request, key: str):
        run = flow.run(key)
        if "check" not in run.state: raise plugin.Refused(404, "This run has no results yet: check its URLs first.")
        view = View.read(request.query_params, columns(run), filters(run), default_sort="checked")
        return await drawn(results_rows, run, view, answer=True)  # 5,000 results sorted and filtered: in a thread
