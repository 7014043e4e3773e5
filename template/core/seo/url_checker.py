"""Checks a list of URLs at once: every hop of the redirect chain with its status, the final URL and status, the
page title and the response time.

Plain Python over httpx, shared by the URL checker workflow and notebooks/apps/url_checker.ipynb:

    urls, invalid = parse_url_list(pasted_text)  # invalid: (line, why it is not a URL)
    results = await check_urls(urls, concurrency=10, timeout=10, on_result=show)
    path = write_csv(results, "my-run")

The app checks through check_urls_apart, the same checks in a process of their own (`python -m core.seo.url_checker`).

Redirects are followed one hop at a time, so each hop keeps its own code (301, 302, 303, 307 and 308 told apart);
a loop, or more than MAX_REDIRECTS hops, ends the chain with an error. A URL that fails (timeout, unknown host,
refused connection) gets its error in its result, in words for the person (fetching.why_failed); it never stops the
others.
"""

import asyncio
import html
import ipaddress
import json
import os
import re
import sys
import threading
import time
from dataclasses import asdict, dataclass, field, fields
from datetime import datetime
from pathlib import Path

import httpx

from core import config
from core.exports import write_csv as write_safe_csv
from core.seo.fetching import (ACCEPT_ENCODING, Refused, location, read_body, set_location_aside, web_url, why_failed,
                      without_credentials, without_passwords)

CHECKS_DIR = config.DATA_DIR / "url_checks"
USER_AGENT = f"{config.SLUG}-url-checker (httpx)"
TITLE_SCAN_LIMIT = 512 * 1024  # bytes of a page read in search of its <title>
TITLE = re.compile(rb"<title[^>]*>(.*?)</title\s*>", re.IGNORECASE | re.DOTALL)
HOSTNAME = re.compile(r"(?!-)[a-z0-9-]{1,63}(?<!-)(\.(?!-)[a-z0-9-]{1,63}(?<!-))*\.?")
REDIRECT_CODES = {301, 302, 303, 307, 308}
MAX_REDIRECTS = 10  # browsers and search engines give up around here
CHAIN = 2  # redirects from which a chain is flagged: each extra hop costs the visitor a round trip
COLUMNS_APART = re.compile(r"\s*\t\s*|\s+(?:->|→|=>)\s+")  # a redirect map's line: a URL with a space stays a bad URL
PERMANENT = {301, 308}  # what search engines take as "moved": the new URL inherits the old one's standing


def normal_url(line: str) -> str:
    """The URL a pasted line means (https:// when it has no scheme), without user:password@ (never stored, shown or
    sent); ValueError says why it is not an http(s) URL."""
    if not line or any(character.isspace() for character in line): raise ValueError("it has spaces in it")
    try:
        url = httpx.URL(line if "://" in line else f"https://{line}")
    except httpx.InvalidURL:
        raise ValueError("it is not a well-formed URL") from None
    if url.scheme not in ("http", "https"): raise ValueError(f"{url.scheme}: is not http or https")
    host = url.raw_host.decode("ascii").strip("[]")  # IDNA-encoded; IPv6 literals come in brackets
    if not host: raise ValueError("it has no host")
    try:
        ipaddress.ip_address(host)
    except ValueError:
        if not HOSTNAME.fullmatch(host): raise ValueError(f"{host} is not a host name") from None
        if "." not in host.strip(".") and host != "localhost": raise ValueError("there is no dot in the host") from None
    return str(without_credentials(url))


def parse_url_list(text: str) -> tuple[list[str], list[tuple[str, str]]]:
    """A pasted list, one URL a line: (the URLs in order, without blanks, repeats or user:password@; each line that
    is not a URL with the reason). A line may also name the URL it should redirect to: see parse_redirect_map."""
    urls, invalid = parse_redirect_map(text)
    return list(urls), invalid


def parse_redirect_map(text: str) -> tuple[dict[str, str | None], list[tuple[str, str]]]:
    """A pasted list whose lines may each hold an old URL and the new one it should redirect to, as a spreadsheet's
    two columns paste (a tab between them) or written `old -> new`: ({URL: its expected target or None}, the lines
    that are not URLs with the reason). The first line that names a URL wins."""
    urls, invalid = {}, []
    for line in filter(None, map(str.strip, text.splitlines())):
        old, *rest = COLUMNS_APART.split(line)
        rest = rest if any(rest) else []  # an empty second column: a URL alone
        try:
            if len(rest) > 1: raise ValueError("it has more than two URLs in it")
            url = normal_url(old)
            try: target = normal_url(rest[0]) if rest else None
            except ValueError as why: raise ValueError(f"the URL it should redirect to: {why}") from None
        except ValueError as why:
            invalid.append((without_passwords(line), str(why)))
            continue
        urls.setdefault(url, target)
    return urls, invalid


def redirect_target(response: httpx.Response) -> str | None:
    """Where a redirect answer sends the client (its Location, made absolute), else None; Refused for a Location that
    is no web address (javascript:, a bad port)."""
    if response.status_code not in REDIRECT_CODES or not location(response): return None
    target = web_url(location(response), response.url)
    return str(target) if target else None


def page_title(body: bytes, encoding: str) -> str | None:
    match = TITLE.search(body)
    if not match: return None
    return " ".join(html.unescape(match.group(1).decode(encoding, errors="replace")).split()) or None


def same_address(a: str, b: str) -> bool:
    "Whether two URLs ask a server the same: https://a.example is https://a.example/, :443 is no port."
    return all(getattr(httpx.URL(a), part) == getattr(httpx.URL(b), part) for part in ("scheme", "host", "port",
                                                                                        "raw_path"))


@dataclass
class UrlCheck:
    url: str
    hops: list[dict] = field(default_factory=list)  # every answer in order: {"url", "status"}
    final_url: str | None = None  # the URL that answered last (the URL itself when it did not redirect)
    final_status: int | None = None  # None when the chain ended in an error
    title: str | None = None
    seconds: float | None = None  # until the last answer's headers arrived, every hop included
    error: str | None = None
    flag: str = ""  # redirect loop, too many redirects, or a chain of CHAIN or more redirects
    expected: str | None = None  # in a redirect map, the new URL this one should redirect to

    @property
    def status(self) -> int | None:
        "What the URL itself answered: 301 for a URL that moved, even if the chain ends on a 200."
        return self.hops[0]["status"] if self.hops else None

    @property
    def redirects(self) -> int:
        "The redirects followed: every hop but the last answer."
        return len(self.hops) - (self.final_status is not None)

    @property
    def chain(self) -> str:
        "The hops as one line: 301 https://a/ → 308 https://b/ → 200 https://c/."
        return " → ".join(f"{hop['status']} {hop['url']}" for hop in self.hops)

    @property
    def migration(self) -> str:
        """In a redirect map, what keeps this URL from being moved as a migration should: one permanent redirect
        (301 or 308) straight to the expected URL, which answers 200. "" when it is, or when nothing was expected."""
        if not self.expected: return ""
        if not self.hops: return "not checked: it failed"
        status, problems = self.status, []
        if status not in REDIRECT_CODES: return f"no redirect: it answers {status}"
        if status not in PERMANENT: problems.append(f"a temporary redirect ({status}), not 301 or 308")
        target = self.hops[1]["url"] if len(self.hops) > 1 else None
        if target is None: problems.append("its redirect's target failed")
        elif not same_address(target, self.expected):
            reached = any(same_address(hop["url"], self.expected) for hop in self.hops[2:])
            problems.append(f"it redirects to {target}" + (f", and reaches the expected URL after {self.redirects} "
                                                            "redirects" if reached else ", not to the expected URL"))
        elif len(self.hops) > 2: problems.append(f"the expected URL redirects again ({self.hops[1]['status']})")
        elif self.final_status != 200: problems.append(f"the expected URL answers {self.final_status}")
        return "; ".join(problems)


CSV_COLUMNS = ["url", "status", "redirects", "chain", "final_url", "final_status", "title", "seconds", "flag",
               "error", "expected", "migration"]


async def check_url(client: httpx.AsyncClient, url: str, timeout: float) -> UrlCheck:
    "One URL's check, within timeout seconds in all; a failure is recorded in .error, never raised."
    result, started = UrlCheck(url), time.perf_counter()
    try:
        async with asyncio.timeout(timeout):
            await follow(client, result)
    except TimeoutError:
        result.error = f"Timed out after {timeout:g} s"
    except Refused as why:
        result.error = f"Its redirect is not followed: {why}"
    except (httpx.HTTPError, httpx.InvalidURL) as error:
        result.error = why_failed(error)
    result.seconds = round(time.perf_counter() - started, 3)
    if result.redirects >= CHAIN and not result.flag: result.flag = f"chain of {result.redirects} redirects"
    return result


async def follow(client: httpx.AsyncClient, result: UrlCheck):
    "Asks for result.url and each redirect's target in turn, noting every hop, until an answer that is no redirect."
    url = result.url
    while True:
        async with client.stream("GET", url) as response:
            result.hops.append({"url": url, "status": response.status_code})
            target = redirect_target(response)
            if target is None:
                result.final_url, result.final_status = url, response.status_code
                result.title = await read_title(response)
                return
        if target in (hop["url"] for hop in result.hops):
            result.flag, result.error = "redirect loop", f"Redirect loop: {target} redirects back to itself"
            return
        if len(result.hops) > MAX_REDIRECTS:
            result.flag, result.error = "too many redirects", f"More than {MAX_REDIRECTS} redirects"
            return
        url = target


async def read_title(response: httpx.Response) -> str | None:
    """The <title> in the first TITLE_SCAN_LIMIT bytes of an HTML page, read by fetching.read_body (a gzip bomb is
    unpacked a step at a time, never whole); None for a body it refuses: the page answered, only its title is unread."""
    if "html" not in response.headers.get("content-type", ""): return None
    try: body, _ = await read_body(response, TITLE_SCAN_LIMIT)
    except Refused: return None
    return page_title(body, response.encoding or "utf-8")


async def check_urls(urls, concurrency: int = 10, timeout: float = 10, on_result=None) -> list[UrlCheck]:
    """Checks the URLs, at most `concurrency` at a time; returns their results in the order of `urls`.

    on_result, an async function, gets each UrlCheck as soon as it is ready (so in the order they finish).
    """
    limit = asyncio.Semaphore(concurrency)
    # No httpx timeouts: check_url's own covers the whole check, every hop and the read of the title included.
    headers = {"User-Agent": USER_AGENT, "Accept-Encoding": ACCEPT_ENCODING}  # the encodings read_body unpacks
    async with httpx.AsyncClient(follow_redirects=False, timeout=None, headers=headers,
                                 event_hooks={"response": [set_location_aside]}) as client:

        async def check(url):
            async with limit:
                result = await check_url(client, url, timeout)
            if on_result: await on_result(result)
            return result

        return await asyncio.gather(*map(check, urls))


async def check_urls_apart(urls, concurrency: int = 10, timeout: float = 10, on_result=None) -> list[UrlCheck]:
    """check_urls in a process of its own, as the app checks: the HTTP work of a long list (parsing, TLS, reading
    titles) then takes a core of its own, not the event loop that serves every page, and not the loop's GIL either.
    Cancelling it stops the process, and so does the app's end, however it ends (the process's stdin closes)."""
    checker = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "core.seo.url_checker", str(concurrency), str(timeout), cwd=Path(__file__).parents[2],
        stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE, limit=4 * TITLE_SCAN_LIMIT,
        start_new_session=True)  # a Ctrl-C stops the app, and the app this process: the run stays at work, to resume
    checked = {}
    try:
        checker.stdin.write(json.dumps(list(urls)).encode() + b"\n")  # and stdin stays open while the app is here
        async for line in checker.stdout:
            result = from_dict(json.loads(line))
            checked[result.url] = result
            if on_result: await on_result(result)
        if await checker.wait(): raise RuntimeError(f"the URL checks' process failed (exit {checker.returncode})")
    finally:
        if checker.returncode is None:
            checker.kill()
            await checker.wait()
    return [checked[url] for url in urls]


def check_stdin(concurrency: str, timeout: str):
    """python -m core.seo.url_checker CONCURRENCY TIMEOUT: checks the URLs of the JSON list on stdin's first line, printing
    each result as a JSON line, until the end of stdin: the app that asked is gone, and the checks stop with it."""
    async def report(result: UrlCheck): print(json.dumps(asdict(result)), flush=True)

    urls = json.loads(sys.stdin.readline())
    threading.Thread(target=lambda: (sys.stdin.read(), os._exit(0)), daemon=True).start()
    asyncio.run(check_urls(urls, int(concurrency), float(timeout), on_result=report))


def csv_row(result: UrlCheck) -> list:
    return [getattr(result, column) for column in CSV_COLUMNS]


def from_dict(saved: dict) -> UrlCheck:
    "A UrlCheck kept as a dict (dataclasses.asdict), back."
    return UrlCheck(**{f.name: saved[f.name] for f in fields(UrlCheck) if f.name in saved})


def write_csv(results: list[UrlCheck], run: str | None = None) -> Path:
    "Saves the results as data/url_checks/<run>.csv (run defaults to the time now); returns its path."
    name = re.sub(r"[^A-Za-z0-9._-]+", "_", run or f"{datetime.now():%Y%m%d-%H%M%S}").strip("._") or "run"
    return write_safe_csv(CHECKS_DIR / f"{name}.csv", CSV_COLUMNS, map(csv_row, results))


if __name__ == "__main__":
    check_stdin(*sys.argv[1:])
