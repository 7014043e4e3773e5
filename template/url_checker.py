"""Checks a list of URLs at once: the status, where redirects lead, the page title and the response time.

Plain Python over httpx, shared by the URL checker workflow and notebooks/url_checker.ipynb:

    urls, invalid = parse_url_list(pasted_text)
    results = await check_urls(urls, concurrency=10, timeout=10, on_result=show)
    path = write_csv(results, "my-run")

A URL that fails (timeout, unknown host, refused connection, too many redirects) gets its error in its result; it
never stops the others.
"""

import asyncio
import csv
import html
import ipaddress
import re
import time
from dataclasses import asdict, dataclass, fields
from datetime import datetime
from pathlib import Path

import httpx

import config

CHECKS_DIR = config.DATA_DIR / "url_checks"
USER_AGENT = f"{config.SLUG}-url-checker (httpx)"
TITLE_SCAN_LIMIT = 512 * 1024  # bytes of a page read in search of its <title>
TITLE = re.compile(rb"<title[^>]*>(.*?)</title\s*>", re.IGNORECASE | re.DOTALL)
HOSTNAME = re.compile(r"(?!-)[a-z0-9-]{1,63}(?<!-)(\.(?!-)[a-z0-9-]{1,63}(?<!-))*\.?")


@dataclass
class UrlCheck:
    url: str
    status: int | None = None  # of the last response, after redirects
    final_url: str | None = None  # where the redirects ended (the URL itself when there were none)
    title: str | None = None
    seconds: float | None = None  # until the last response's headers arrived, redirects included
    error: str | None = None

    @property
    def redirected(self) -> bool:
        return self.final_url not in (None, self.url)


def normal_url(line: str) -> str | None:
    "The URL a pasted line means (https:// when it has no scheme), or None when it is not an http(s) URL."
    try:
        url = httpx.URL(line if "://" in line else f"https://{line}")
    except httpx.InvalidURL:
        return None
    host = url.raw_host.decode("ascii").strip("[]")  # IDNA-encoded; IPv6 literals come in brackets
    if url.scheme not in ("http", "https") or not host: return None
    try:
        ipaddress.ip_address(host)
    except ValueError:
        if not HOSTNAME.fullmatch(host): return None
    return str(url)


def parse_url_list(text: str) -> tuple[list[str], list[str]]:
    "A pasted list, one URL a line: (the URLs in order, without blanks or repeats; the lines that are not URLs)."
    urls, invalid = {}, []
    for line in filter(None, map(str.strip, text.splitlines())):
        url = normal_url(line)
        if url: urls.setdefault(url)
        else: invalid.append(line)
    return list(urls), invalid


def page_title(body: bytes, encoding: str) -> str | None:
    match = TITLE.search(body)
    if not match: return None
    return " ".join(html.unescape(match.group(1).decode(encoding, errors="replace")).split()) or None


async def check_url(client: httpx.AsyncClient, url: str, timeout: float) -> UrlCheck:
    "One URL's check, within timeout seconds in all; a failure is recorded in .error, never raised."
    started = time.perf_counter()
    try:
        async with asyncio.timeout(timeout), client.stream("GET", url) as response:
            seconds = time.perf_counter() - started
            body = b""
            if "html" in response.headers.get("content-type", ""):
                async for chunk in response.aiter_bytes():
                    body += chunk
                    if len(body) > TITLE_SCAN_LIMIT or TITLE.search(body): break
        return UrlCheck(url, response.status_code, str(response.url), page_title(body, response.encoding or "utf-8"),
                        round(seconds, 3))
    except TimeoutError:
        return UrlCheck(url, seconds=round(time.perf_counter() - started, 3), error=f"Timed out after {timeout:g} s")
    except (httpx.HTTPError, httpx.InvalidURL) as error:
        return UrlCheck(url, seconds=round(time.perf_counter() - started, 3),
                        error=f"{type(error).__name__}: {error}" if str(error) else type(error).__name__)


async def check_urls(urls, concurrency: int = 10, timeout: float = 10, on_result=None) -> list[UrlCheck]:
    """Checks the URLs, at most `concurrency` at a time; returns their results in the order of `urls`.

    on_result, an async function, gets each UrlCheck as soon as it is ready (so in the order they finish).
    """
    limit = asyncio.Semaphore(concurrency)
    # No httpx timeouts: check_url's own covers the whole check, redirects and the read of the title included.
    async with httpx.AsyncClient(follow_redirects=True, timeout=None, headers={"User-Agent": USER_AGENT}) as client:

        async def check(url):
            async with limit:
                result = await check_url(client, url, timeout)
            if on_result: await on_result(result)
            return result

        return await asyncio.gather(*map(check, urls))


def write_csv(results: list[UrlCheck], run: str | None = None) -> Path:
    "Saves the results as data/url_checks/<run>.csv (run defaults to the time now); returns its path."
    name = re.sub(r"[^A-Za-z0-9._-]+", "_", run or f"{datetime.now():%Y%m%d-%H%M%S}").strip("._") or "run"
    path = CHECKS_DIR / f"{name}.csv"
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", newline="", encoding="utf-8") as file:
        writer = csv.DictWriter(file, [field.name for field in fields(UrlCheck)])
        writer.writeheader()
        writer.writerows(map(asdict, results))
    return path
