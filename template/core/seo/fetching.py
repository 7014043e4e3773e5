"""Fetching from sites we do not trust, for the crawler and the URL checker: every fetch bounded, every failure worded
for the person.

    client = httpx.AsyncClient(event_hooks={"response": [set_location_aside]})  # then location(response)
    url = web_url(href, base)              # absolute, no #fragment, no user:password@; Refused says why not
    body, more = await read_body(response, limit)   # at most limit bytes, unpacked a step at a time
    why_failed(error)                      # "Connection refused: nothing answers at example.com:8080"
    await turns.wait(host, delay)          # turns = Turns(): each host's requests delay seconds apart

A site can send a gzip bomb (a few KB that unpack to gigabytes), a body that never ends, or one that trickles a
byte a second. So bodies are read raw and unpacked here, STEP bytes at a time with the event loop free between two
steps, up to a limit; the callers hold the whole fetch to a total time (asyncio.timeout), not a per-read one.
"""

import asyncio
import re
import socket
import ssl
import time
import zlib
from collections import defaultdict
from urllib.parse import urljoin

import httpx

STEP = 256 * 1024  # bytes unpacked at once: a bomb grows by no more than this before the next check
ACCEPT_ENCODING = "gzip, deflate"  # what read_body unpacks; a site that sends anything else is refused
IGNORED_SCHEMES = ("mailto", "tel", "sms")  # links for people, not pages: nothing to follow and nothing wrong
MAX_URL = 2048  # characters: longer links are refused
GZIP_MAGIC = b"\x1f\x8b"
CREDENTIALS = re.compile(r"(^|//)[^\s/?#@]*@", re.MULTILINE)  # user:password@ after // or at a line's start
ROBOTS_LIMIT = 500 * 1024  # bytes of a robots.txt read, as Google does; the rest is left


class Refused(Exception):
    "A URL or a body the crawler will not follow or read; str() says why, for the person."


def without_credentials(url: httpx.URL) -> httpx.URL:
    "The URL without its user:password@, so it is never stored, shown or sent anywhere."
    return url.copy_with(username=None, password=None) if url.userinfo else url


def without_passwords(text: str) -> str:
    "Text with the user:password@ of every address in it dropped (each line may be one, with or without http://)."
    return CREDENTIALS.sub(r"\1", text)


def web_url(href: str, base: httpx.URL) -> httpx.URL | None:
    """A link's absolute http(s) URL, without #fragment or credentials; None for a link there is nothing to follow
    (empty, a #fragment, mailto:, tel:). Refused for one that cannot be followed (javascript:, data:, a bad port)."""
    href = href.strip()
    if not href or href.startswith("#"): return None
    shown = without_passwords(href)  # the address as the person sees it
    shown = shown if len(shown) <= 60 else f"{shown[:57]}…"
    if len(href) > MAX_URL: raise Refused(f"{shown} is longer than {MAX_URL:,} characters")
    scheme = href.split(":", 1)[0].lower() if ":" in href.split("/", 1)[0] else ""
    if scheme in IGNORED_SCHEMES: return None
    if scheme and scheme not in ("http", "https"): raise Refused(f"{shown} is not a web address ({scheme[:20]}:)")
    try:
        url = httpx.URL(urljoin(str(base), href))  # as base.join(href) does, without parsing href alone first
    except (httpx.InvalidURL, ValueError) as error:
        raise Refused(f"{shown} is not a valid address ({error})") from None
    if url.scheme not in ("http", "https"): raise Refused(f"{shown} is not a web address ({url.scheme}:)")
    if not url.host: raise Refused(f"{shown} has no host")
    if url.port is not None and not 0 < url.port < 65536: raise Refused(f"{shown} has no valid port")
    return without_credentials(url.copy_with(fragment=None) if url.fragment else url)  # a copy parses it again


async def set_location_aside(response: httpx.Response):
    """A response hook for every client here. httpx makes the request a redirect leads to even when it is told not to
    follow it, and fails on a Location such as javascript: (taking the answer with it); so the Location is set aside
    here, before that, for location() to read."""
    if "location" in response.headers:
        response.extensions["location"] = response.headers["location"]
        del response.headers["location"]


class Turns:
    """Politeness: each host's requests start one at a time, `delay` seconds apart, so a turn that woke late delays
    the next. Made in the event loop that waits on it."""

    def __init__(self):
        self.queues, self.next_start = defaultdict(asyncio.Lock), {}  # host -> its queue, when its next may start

    async def wait(self, host: str, delay: float):
        "Waits until a request to the host may start: `delay` seconds after the one before started."
        async with self.queues[host]:
            if (wait := self.next_start.get(host, 0) - time.monotonic()) > 0: await asyncio.sleep(wait)
            self.next_start[host] = time.monotonic() + delay


def location(response: httpx.Response) -> str | None:
    "The Location an answer sent (set aside by set_location_aside)."
    return response.extensions.get("location")


def unpacker(response: httpx.Response):
    "The decompressor for the answer's Content-Encoding (None: as it is); Refused for an encoding we did not ask for."
    encoding = response.headers.get("content-encoding", "identity").strip().lower()
    if encoding in ("", "identity"): return None
    if encoding in ("gzip", "x-gzip"): return zlib.decompressobj(16 + zlib.MAX_WBITS)
    if encoding == "deflate": return zlib.decompressobj()
    raise Refused(f"it is compressed as {encoding[:40]}, which was not asked for")


async def read_body(response: httpx.Response, limit: int, gzip_file: bool = False) -> tuple[bytes, bool]:
    """The answer's body, unpacked, up to limit bytes: (body, True) when there was more, left unread. gzip_file also
    unpacks a body that is a .gz file (a sitemap.xml.gz). Unpacking goes STEP bytes at a time, the event loop free
    in between, so a bomb neither fills the memory nor holds the app's pages."""
    unpack, body = unpacker(response), bytearray()
    async for raw in response.aiter_raw():
        if unpack is None and gzip_file and not body and raw[:2] == GZIP_MAGIC:
            unpack = zlib.decompressobj(16 + zlib.MAX_WBITS)
        if unpack is None:
            body += raw
        else:
            data = raw
            while True:
                try: piece = unpack.decompress(data, STEP)
                except zlib.error as error: raise Refused(f"its compressed body is broken ({error})") from None
                body += piece
                data = unpack.unconsumed_tail
                if len(body) > limit or not data and len(piece) < STEP: break
                await asyncio.sleep(0)
        if len(body) > limit: return bytes(body[:limit]), True
    return bytes(body), False


async def get_robots(client: httpx.AsyncClient, url: str, seconds: float) -> tuple[str | None, str | None]:
    """The robots.txt at url, its first ROBOTS_LIMIT bytes within `seconds`: (its text, None when there is none or it
    could not be read; a note for the person when it was not read whole)."""
    try:
        async with asyncio.timeout(seconds), client.stream("GET", url) as response:
            if response.status_code >= 500: raise Refused(f"it answered HTTP {response.status_code}")
            if response.status_code != 200: return None, None
            body, more = await read_body(response, ROBOTS_LIMIT)
    except TimeoutError:
        return None, f"robots.txt did not arrive within {seconds:g} s"
    except (httpx.HTTPError, Refused) as error:
        return None, f"robots.txt could not be read ({why_failed(error)})"
    note = f"robots.txt is larger than {size(ROBOTS_LIMIT)}: only its first {size(ROBOTS_LIMIT)} were read, as " \
           "Google does" if more else None
    return body.decode("utf-8", "replace"), note


def size(n: int) -> str:
    "A number of bytes for a person: 500 KB, 50 MB."
    return f"{n / 1024 / 1024:g} MB" if n >= 1024 * 1024 else f"{n / 1024:g} KB"


def causes(error: BaseException, seen=None):
    "The error, what caused it, and so on, through exception groups too (anyio groups its connection attempts)."
    seen = set() if seen is None else seen
    while error is not None and id(error) not in seen:
        seen.add(id(error))
        yield error
        for inner in getattr(error, "exceptions", ()): yield from causes(inner, seen)
        error = error.__cause__ or error.__context__


def why_failed(error: Exception) -> str:
    "A failed request, as a sentence for the person: what went wrong, in words, with the technical detail after."
    detail = str(error) or type(error).__name__
    try: where = f"{error.request.url.host}:{error.request.url.port or error.request.url.scheme}"
    except (AttributeError, RuntimeError): where = "the server"
    lowered = detail.lower()
    if isinstance(error, Refused): return detail
    if isinstance(error, httpx.UnsupportedProtocol): return "Not a web address: only http:// and https:// are fetched"
    if isinstance(error, httpx.InvalidURL): return f"Not a valid address ({detail})"
    if isinstance(error, httpx.TooManyRedirects): return "Too many redirects"
    if isinstance(error, httpx.TimeoutException): return f"No answer in time from {where}"
    if isinstance(error, httpx.ConnectError):
        found = list(causes(error))
        if any(isinstance(cause, ssl.SSLError) for cause in found):
            if "wrong_version_number" in lowered or "record layer" in lowered or "packet length" in lowered:
                return (f"{where} does not speak HTTPS (the secure connection failed): try http:// instead "
                        f"({detail})")
            if "certificate" in lowered: return f"The HTTPS certificate of {where} is not valid ({detail})"
            return f"The secure (HTTPS) connection to {where} failed ({detail})"
        if any(isinstance(cause, ConnectionRefusedError) for cause in found):
            return f"Connection refused: nothing answers at {where}"
        if any(isinstance(cause, socket.gaierror) for cause in found):
            return f"Host not found: {where.rsplit(':', 1)[0]} has no address (DNS)"
        return f"Could not connect to {where} ({detail})"
    if isinstance(error, httpx.RemoteProtocolError): return f"{where} broke the HTTP protocol ({detail})"
    if isinstance(error, (httpx.ReadError, httpx.WriteError)): return f"The connection to {where} broke ({detail})"
    return f"{type(error).__name__}: {detail}"
