"""The Botify API's requests: one token, bounded retries of what may succeed on a second try, and faults in
words fit for the user. botify.py builds the API on it."""

import asyncio
import logging
from datetime import datetime, timezone
from email.utils import parsedate_to_datetime
from urllib.parse import urlsplit

import httpx

from core import config

log = logging.getLogger("core.botify")  # one logger for the whole client: botify.py's


class BotifyError(Exception):
    "A Botify request that failed; the message says why, in words fit for the user."


class BotifyAuthError(BotifyError):
    "Botify refused the API token (HTTP 401 or 403)."


def retry_after(response: httpx.Response) -> float | None:
    "Seconds the server asked us to wait (Retry-After is a number of seconds or an HTTP date)."
    value = response.headers.get("retry-after", "").strip()
    if value.isdigit(): return float(value)
    try:
        return max(0.0, (parsedate_to_datetime(value) - datetime.now(timezone.utc)).total_seconds())
    except (TypeError, ValueError):
        return None


def api_message(response: httpx.Response) -> str:
    "What Botify said went wrong: its {error: {message}} envelope, a {detail} or the start of the body."
    try:
        body = response.json()
    except ValueError:
        return response.text[:200] or response.reason_phrase
    error = body.get("error") if isinstance(body, dict) else None
    if isinstance(error, dict) and error.get("message"): return error["message"]
    return str(error or (body.get("detail") if isinstance(body, dict) else None) or body)[:200]


class Client:
    """The Botify API's requests with one token, under the API itself (Botify, botify.py).

    retries bounds the second tries after a 429 (waiting as long as Retry-After says), a 5xx or a network error,
    with backoff * 2**n seconds between them otherwise. A POST is tried again only when it cannot have reached
    Botify (a 429 or a refused connection): POST /v1/jobs has no idempotency key, and a repeat would start a second
    export and spend its credits twice.
    """

    def __init__(self, token: str, base_url: str | None = None, *, retries: int = 4, backoff: float = 1.0,
                 poll_interval: float = 5.0, timeout: float = 30.0):
        self.base_url = (base_url or config.BOTIFY_API_URL).rstrip("/")
        self.retries, self.backoff, self.poll_interval = retries, backoff, poll_interval
        self.api = httpx.AsyncClient(base_url=self.base_url, timeout=timeout,
                                     headers={"Authorization": f"Token {token.strip()}", "Accept": "application/json"})
        # Download links point to file storage elsewhere: they carry their own signature and never get the token.
        self.files = httpx.AsyncClient(timeout=timeout, follow_redirects=True)

    async def __aenter__(self):
        return self

    async def __aexit__(self, *exc_info):
        await self.aclose()

    async def aclose(self):
        await self.api.aclose()
        await self.files.aclose()

    async def wait(self, attempt: int, why: str, seconds: float | None = None):
        seconds = self.backoff * 2 ** attempt if seconds is None else seconds
        log.warning("Botify: %s; trying again in %.1f s (%d of %d)", why, seconds, attempt + 1, self.retries)
        await asyncio.sleep(seconds)

    async def call(self, method: str, url: str, **kwargs) -> dict:
        "One API request with the fault handling every request shares; the JSON reply."
        path = urlsplit(url).path
        for attempt in range(self.retries + 1):
            last = attempt == self.retries
            try:
                response = await self.api.request(method, url, **kwargs)
            except httpx.TransportError as error:
                what = f"{type(error).__name__}{f': {error}' if str(error) else ''}"
                if not (method == "GET" or isinstance(error, (httpx.ConnectError, httpx.ConnectTimeout))):
                    raise BotifyError(f"The connection to the Botify API broke during {method} {path} ({what}). "
                                      "Botify may have got the request: check before sending it again.") from error
                if last:
                    raise BotifyError(f"Could not reach the Botify API at {self.base_url} ({what}).") from error
                await self.wait(attempt, f"{method} {path} failed ({type(error).__name__})")
                continue
            status = response.status_code
            if status == 401:
                raise BotifyAuthError(f"Botify refused the API token: {api_message(response).rstrip('.')}. Check it, "
                                      "or copy a new one from your Botify account page.")
            if status == 403:
                raise BotifyAuthError(f"Botify denied this token access to {path}: {api_message(response)}")
            if status == 429 and not last:
                await self.wait(attempt, f"{method} {path} was rate-limited (HTTP 429)", retry_after(response))
                continue
            if status >= 500 and method == "GET" and not last:
                await self.wait(attempt, f"{method} {path} answered HTTP {status}")
                continue
            if status == 429:
                raise BotifyError(f"Botify is still rate-limiting requests after {attempt + 1} tries; "
                                  "wait a minute and try again.")
            if status >= 400:
                tries = f" after {attempt + 1} tries" if attempt else ""
                raise BotifyError(f"Botify answered {method} {path} with HTTP {status}{tries}: {api_message(response)}")
            return response.json()

    async def pages(self, url: str, params: dict | None = None) -> list[dict]:
        "Every item of a paginated list: Botify pages carry `results` and the URL of the `next` page."
        items = []
        while url:
            page = await self.call("GET", url, params=params)
            items += page["results"]
            url, params = page.get("next"), None  # the next URL carries the query already
        return items
