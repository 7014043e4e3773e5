"""Only the person's own pages can drive the app: the checks every request passes before any route sees it.

Template-owned: `copier update` keeps this file current. README.md's Security section says what it allows.

A local app has no login, so every web page the person visits can send it requests (cross-site request forgery),
and a page whose name is made to resolve to 127.0.0.1 can even read the answers (DNS rebinding). Jupyter and
Ollama guard against both; so does this ASGI middleware, in this order:

- Host: the request names the app by an address of its own: 127.0.0.1, localhost or [::1] with the port it came
  in on, the HOST it is bound to, or one of ALLOWED_HOSTS (config.py). Else 400. Starlette's TrustedHostMiddleware
  checks names only, but the port matters: http://127.0.0.1:8888 (JupyterLab, any other local server) is another
  origin, and the Origin check below uses the same host:port list.
- Origin: a browser names the page that sent a request; when it does, that must be one of those addresses.
  A foreign or `null` Origin is refused (403), on the WebSocket too.
- Fetch Metadata: a browser says where a request comes from (Sec-Fetch-Site); `same-origin` passes, and `none`
  (typed, bookmarked); from another site only a link followed to a page (a GET navigation). Else 403.
  A write with neither header is checked by its Referer, as OWASP's CSRF cheat sheet says; a request with none of
  the three does not come from a browser (a script, a notebook, curl) and passes, as with Go's
  CrossOriginProtection.
- Body: form fields, as the app's own pages send them (urlencoded or multipart; 415 for JSON or anything else),
  text only (422 for a file part), in UTF-8 (400; the query string too), at most MAX_BODY bytes (413, from
  Content-Length before anything is read, or as soon as a chunked body grows past it). So every route that
  expects text gets text, and heavy input never reaches a parser.
Every answer also tells the browser never to show the app inside another site's page (clickjacking).
"""

import asyncio
import re
from functools import partial
from urllib.parse import quote_from_bytes, unquote_to_bytes, urlsplit

from fasthtml.common import P, to_xml
from python_multipart.exceptions import FormParserError
from python_multipart.multipart import MultipartParser, parse_options_header
from starlette.datastructures import Headers
from starlette.responses import HTMLResponse

from core import config

MAX_BODY = 2 * 1024 * 1024  # a pasted list of 5,000 long URLs fits
MAX_FIELDS = 1000  # as Starlette's form parsers
CHECKED_AT_ONCE = 16 * 1024  # a body this small is checked on the event loop at once (a few ms at worst)
LOOPBACK = ("127.0.0.1", "localhost", "[::1]")
WRITES = ("POST", "PUT", "PATCH", "DELETE")
EVERY_ADDRESS = ("", "0.0.0.0", "::", "[::]")  # a HOST that binds every interface names none of them
FORM, MULTIPART = "application/x-www-form-urlencoded", "multipart/form-data"  # FastHTML's Form sends the second
ASCII = bytes(range(128))
BEYOND_ASCII = re.compile(rb"%[89a-fA-F]")  # an escaped byte that is part of a UTF-8 character, or no UTF-8 at all
TOO_BIG = f"That is too much to send at once: the limit is {MAX_BODY // 1024 // 1024} MB. Nothing was saved."
NO_FRAMING = [(b"x-frame-options", b"DENY"), (b"content-security-policy", b"frame-ancestors 'none'"),
              (b"x-content-type-options", b"nosniff")]


def refusal(status: int, text: str) -> HTMLResponse:
    "An answer with its status and a sentence that htmx shows in the page's message area, whichever element asked."
    return HTMLResponse(to_xml(P(text, cls="problem")), status,
                        headers={"HX-Retarget": "#message", "HX-Reswap": "innerHTML"})


def bracketed(host: str) -> str:
    "An IPv6 address the way a Host header writes it."
    return f"[{host}]" if ":" in host and not host.startswith("[") else host


def own_hosts(scope) -> set[str]:
    "The Host values that name this app: its loopback names and HOST on the port the request came in on, ALLOWED_HOSTS."
    port = (scope.get("server") or (None, None))[1] or config.PORT
    names = {*LOOPBACK, bracketed(config.HOST.lower())} - set(EVERY_ADDRESS)
    hosts = {f"{name}:{port}" for name in names}
    if port in (80, 443): hosts |= names  # browsers leave the default port out
    return hosts | set(config.ALLOWED_HOSTS)


class Refused(Exception):
    "A request that does not reach the app: the status and the sentence it is answered with."

    def __init__(self, status: int, text: str): self.status, self.text = status, text


def refuse_strangers(scope, headers: Headers):
    "Refuses a request that does not come from the app's own pages (each of these headers must be sent once at most)."
    hosts = own_hosts(scope)
    host = headers.getlist("host")
    if len(host) != 1 or host[0].lower() not in hosts:
        raise Refused(400, f"This app answers to {', '.join(sorted(hosts))}, not to {', '.join(host) or 'no Host'}. "
                           "To serve it under another name, add that name to ALLOWED_HOSTS.")
    origins = {f"{scheme}://{host}" for scheme in ("http", "https") for host in hosts}
    if foreign := [origin for origin in headers.getlist("origin") if origin.lower() not in origins]:
        raise Refused(403, f"Refused: only this app's own pages may use it, and this request came from {foreign[0]}.")
    followed_link = (scope.get("method") in ("GET", "HEAD") and headers.get("sec-fetch-mode") == "navigate"
                     and headers.get("sec-fetch-dest") == "document")
    if (sites := set(headers.getlist("sec-fetch-site")) - {"same-origin", "none"}) and not followed_link:
        raise Refused(403, f"Refused: only this app's own pages may use it, and this request came from a "
                           f"{sites.pop()} page.")
    referer = urlsplit(headers.get("referer", ""))
    if (scope.get("method") in WRITES and referer.netloc and "origin" not in headers
            and "sec-fetch-site" not in headers and f"{referer.scheme}://{referer.netloc}".lower() not in origins):
        raise Refused(403, f"Refused: only this app's own pages may use it, and this request came from "
                           f"{referer.scheme}://{referer.netloc}.")


def as_utf8(encoded: bytes) -> bytes:
    """Form fields or a query string with raw non-ASCII bytes percent-encoded (Starlette would read them as
    Latin-1); refused unless they are UTF-8 text."""
    if not encoded.isascii(): encoded = quote_from_bytes(encoded, safe=ASCII).encode()
    if BEYOND_ASCII.search(encoded):  # else plain ASCII: valid UTF-8 without a look at every byte
        try: unquote_to_bytes(encoded).decode("utf-8")  # "&", "=" and "+" never split a character
        except UnicodeDecodeError: raise Refused(400, "That is not UTF-8 text, so nothing was done.") from None
    return encoded


async def read_body(receive) -> bytes:
    "The request's body, refused as soon as it grows past MAX_BODY, or if the client leaves before its end."
    body = bytearray()
    while True:
        message = await receive()
        if message["type"] == "http.disconnect": raise Refused(400, "The request ended before its body did.")
        body += message.get("body", b"")
        if len(body) > MAX_BODY: raise Refused(413, TOO_BIG)
        if not message.get("more_body"): return bytes(body)


def form_type(headers: Headers) -> str | None:
    "The media type of the request's body, None without one; refused unless it is form fields within MAX_BODY."
    length, chunked = headers.get("content-length"), "chunked" in headers.get("transfer-encoding", "").lower()
    if not chunked and length in (None, "0"): return None
    if not chunked and not length.isdigit(): raise Refused(400, "Bad Content-Length.")
    if not chunked and int(length) > MAX_BODY: raise Refused(413, TOO_BIG)  # before a byte of it is read
    media_type = headers.get("content-type", "").split(";")[0].strip().lower()
    if media_type not in (FORM, MULTIPART):
        raise Refused(415, f"This app takes form fields ({FORM} or {MULTIPART}), as its own pages send them, not "
                           f"{media_type or 'a body without a Content-Type'}. Nothing was saved.")
    return media_type


class TextFields:
    """Reads multipart form data with the parser Starlette uses (python-multipart), and refuses it if a part is a
    file or its name or text is not UTF-8: the app's routes take text."""

    def __init__(self, content_type: str):
        self.boundary = parse_options_header(content_type)[1].get(b"boundary")
        self.header, self.value, self.disposition, self.data, self.fields = b"", b"", b"", bytearray(), 0

    def check(self, body: bytes):
        if not self.boundary: raise Refused(400, "The form data has no boundary.")
        parser = MultipartParser(self.boundary, {
            "on_part_begin": self.begin, "on_header_field": self.header_field, "on_header_value": self.header_value,
            "on_header_end": self.header_end, "on_part_data": self.part_data, "on_part_end": self.part_end})
        try:
            parser.write(body)
            parser.finalize()
        except FormParserError: raise Refused(400, "The form data is malformed, so nothing was saved.") from None

    def begin(self):
        self.fields += 1
        if self.fields > MAX_FIELDS: raise Refused(400, f"Too many fields: the limit is {MAX_FIELDS:,}.")
        self.disposition, self.data = b"", bytearray()

    def header_field(self, data, start, end): self.header += data[start:end]

    def header_value(self, data, start, end): self.value += data[start:end]

    def header_end(self):
        if self.header.lower() == b"content-disposition": self.disposition = self.value
        self.header, self.value = b"", b""

    def part_data(self, data, start, end): self.data += data[start:end]

    def part_end(self):
        options = parse_options_header(self.disposition)[1]
        if b"filename" in options: raise Refused(422, "This app takes text, not files: nothing was saved.")
        try: (options.get(b"name", b"") + self.data).decode("utf-8")
        except UnicodeDecodeError: raise Refused(400, "That is not UTF-8 text, so nothing was done.") from None


def checked(media_type: str, content_type: str, body: bytes) -> bytes:
    "The body to pass on, once it has passed the checks for its media type."
    if media_type == FORM: return as_utf8(body)
    TextFields(content_type).check(body)
    return body


def replaying(body: bytes, receive):
    "An ASGI receive that gives the body read already, then what the client does next (leave, say)."
    waiting = [{"type": "http.request", "body": body, "more_body": False}]

    async def replay(): return waiting.pop() if waiting else await receive()
    return replay


class Guard:
    "ASGI middleware: every HTTP request and WebSocket passes the checks in this module's docstring first."

    def __init__(self, app): self.app = app

    async def __call__(self, scope, receive, send):
        if scope["type"] not in ("http", "websocket"): return await self.app(scope, receive, send)
        headers = Headers(scope=scope)
        if scope["type"] == "websocket":
            try: refuse_strangers(scope, headers)
            except Refused:
                await receive()  # websocket.connect; closing before accepting answers the handshake with 403
                return await send({"type": "websocket.close", "code": 1008})
            return await self.app(scope, receive, send)

        async def send_unframable(message):
            if message["type"] == "http.response.start":
                message = message | {"headers": [*message.get("headers", []), *NO_FRAMING]}
            await send(message)

        try:
            refuse_strangers(scope, headers)
            scope = scope | {"query_string": as_utf8(scope.get("query_string", b""))}
            if media_type := form_type(headers):
                body = await read_body(receive)
                check = partial(checked, media_type, headers["content-type"], body)
                # a big one in a thread: checking 2 MB on the event loop would hold every other request up
                receive = replaying(check() if len(body) <= CHECKED_AT_ONCE else await asyncio.to_thread(check),
                                    receive)
        except Refused as refused:
            return await refusal(refused.status, refused.text)(scope, receive, send_unframable)
        await self.app(scope, receive, send_unframable)
