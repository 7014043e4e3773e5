"""URL checker: paste a list of URLs, check them all at once, get a results table and a CSV.

A workflow (see workflows.py) made from the starter notebook notebooks/url_checker.ipynb: both check through
url_checker.py, and the CSV goes to data/url_checks/ like the notebook's.
"""

from dataclasses import asdict

from fasthtml.common import *

from url_checker import CHECKS_DIR, UrlCheck, check_urls, parse_url_list, write_csv
from workflows import Step, Workflow

NAME = "url_checker"
DISPLAY_NAME = "URL checker"
MAX_URLS = 5000
SHOWN = 500  # rows of the results table; the CSV has them all
CSS = """
.url-results td { vertical-align: top; overflow-wrap: anywhere; }
.url-results mark { padding: .1rem .45rem; border-radius: 1rem; font-size: .8rem; font-weight: 600; }
.url-results .s2 { background: #d7f5dd; color: #14532d; }
.url-results .s3 { background: #dbeafe; color: #1e3a8a; }
.url-results .s4, .url-results .s5, .url-results .failed { background: #fde2e1; color: #7f1d1d; }
.url-results small { display: block; color: var(--pico-muted-color); }
"""


def plural(n: int, word: str) -> str: return f"{n:,} {word}{'' if n == 1 else 's'}"


def summary(results: list[UrlCheck]) -> str:
    ok = sum(1 for r in results if r.status and r.status < 300)
    moved = sum(1 for r in results if r.redirected)
    failed = sum(1 for r in results if r.error)
    return (f"Checked {plural(len(results), 'URL')}: {ok:,} answered 2xx, {moved:,} redirected, "
            f"{sum(1 for r in results if r.status and r.status >= 400):,} answered 4xx or 5xx, {failed:,} failed.")


# --- Step 1: the URLs
def url_form(run):
    return (Textarea(run.get("urls", {}).get("text", ""), name="text", rows=8, required=True,
                     aria_label="URLs, one per line", placeholder="https://example.com/\nexample.com/about\n…"),
            Button("Next"))


def url_list(run):
    urls, invalid = run["urls"]["urls"], run["urls"]["invalid"]
    count = Strong(plural(len(urls), "URL")), " to check."
    if not invalid: return P(*count)
    return P(*count, Br(), Small("Not a URL, skipped: ", ", ".join(invalid[:5]), " …" if len(invalid) > 5 else ""))


# --- Step 2: the check, in the background
def check_form(run):
    settings = run.get("check") or {"concurrency": 10, "timeout": 10}
    return (Div(Label("URLs at a time", Input(type="number", name="concurrency", value=settings["concurrency"],
                                              min=1, max=50, required=True)),
                Label("Timeout per URL (seconds)", Input(type="number", name="timeout", value=settings["timeout"],
                                                         min=1, max=120, required=True)),
                cls="grid"),
            Button(f"Check {plural(len(run['urls']['urls']), 'URL')}"))


def result_row(result: UrlCheck):
    status = (Mark(result.status, cls=f"s{result.status // 100}") if result.status
              else Mark("failed", cls="failed"))
    return Tr(Td(status),
              Td(result.url, Small("→ ", result.final_url) if result.redirected else None),
              Td(result.title or "", Small(result.error) if result.error else None),
              Td(f"{result.seconds:.2f} s" if result.seconds is not None else ""))


def results(run):
    checked = [UrlCheck(**result) for result in run["check"]["results"]]
    more = P(Small(f"The first {SHOWN:,} of {len(checked):,}; the CSV has them all.")) if len(checked) > SHOWN else None
    return (Style(CSS),
            P(summary(checked)),
            P(A("Download the CSV", href=f"/{NAME}/runs/{run.key}/csv", download=True, role="button", cls="outline"),
              " ", Small(f"data/url_checks/{run['check']['csv']}")),
            Div(Table(Thead(Tr(Th("Status"), Th("URL"), Th("Title"), Th("Time"))),
                      Tbody(*map(result_row, checked[:SHOWN])), cls="striped url-results"),
                cls="overflow-auto"),
            more)


def setup(plugin):
    def read_urls(run, form):
        text = form.get("text", "")
        urls, invalid = parse_url_list(text)
        if not urls: raise plugin.Refused(422, "No URLs there: paste one URL a line, like https://example.com/.")
        if len(urls) > MAX_URLS:
            raise plugin.Refused(422, f"That is {len(urls):,} URLs; one run checks at most {MAX_URLS:,}.")
        return {"text": text, "urls": urls, "invalid": invalid}

    def read_settings(run, form):
        try:
            concurrency, timeout = int(form.get("concurrency", "")), float(form.get("timeout", ""))
        except ValueError:
            raise plugin.Refused(422, "URLs at a time and the timeout must be numbers.") from None
        if not (1 <= concurrency <= 50 and 1 <= timeout <= 120):
            raise plugin.Refused(422, "Check 1 to 50 URLs at a time, with a timeout of 1 to 120 seconds.")
        return {"concurrency": concurrency, "timeout": timeout}

    async def check_all(run, job):
        urls, checked = run["urls"]["urls"], []

        async def tick(result: UrlCheck):
            checked.append(result)
            await job.progress(len(checked), len(urls), f"Checked {len(checked):,} of {len(urls):,}: {result.url}")

        found = await check_urls(urls, job.input["concurrency"], job.input["timeout"], on_result=tick)
        csv = write_csv(found, run.key)
        await job.progress(len(urls), len(urls), summary(found))
        return job.input | {"csv": csv.name, "results": [asdict(result) for result in found]}

    flow = Workflow(plugin, [
        Step("urls", "Paste the URLs", form=url_form, submit=read_urls, show=url_list),
        Step("check", "Check them", form=check_form, submit=read_settings, work=check_all, show=results),
    ], intro=P("Status, redirect target, title and response time of every URL in a list, checked at once."))

    flow.serve_csv("check", CHECKS_DIR, "This run has no CSV in data/url_checks: check its URLs first.")
