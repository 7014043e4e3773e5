"""A small async client for the Botify API: check a token, list projects and analyses, export a crawl as CSV.

Plain Python over httpx, so the app's workflows and a notebook use the same code:

    async with Botify(load_token()) as api:
        user = await api.username()
        csv_path = await api.export_csv(owner, project, analysis, on_progress=show)

Faults become exceptions with a message fit to show: BotifyAuthError for a refused token (401/403), BotifyJobFailed
for an export Botify could not make, BotifyError for everything else (after bounded retries of what may succeed on a
second try). The API token lives in botify_token.txt (mode 0600, gitignored) and is never logged.
"""

import asyncio
import csv
import gzip
import logging
import os
import tempfile
import time
from pathlib import Path
from urllib.parse import urlsplit

import httpx

from core import config
# The client's errors, with Botify: the plugins and notebooks import them from here.
from core.botify_http import BotifyAuthError, BotifyError, Client
from core.exports import write_csv

log = logging.getLogger(__name__)

# BOTIFY_TOKEN_FILE moves the token elsewhere (the tests use throwaway ones).
TOKEN_FILE = Path(os.environ.get("BOTIFY_TOKEN_FILE", config.ROOT / "botify_token.txt"))
DOWNLOADS = config.DATA_DIR / "downloads"

# URL-level fields of a crawl, the columns of an export unless the user picks others.
DEFAULT_FIELDS = (
    "url",
    "http_code",
    "depth",
    "metadata.title.content",
    "metadata.description.content",
    "metadata.h1.contents",
    "compliant.is_compliant",
    "inlinks_internal.nb.total",
)


class BotifyJobFailed(BotifyError):
    "Botify reported the export job FAILED; .job is its last state."

    def __init__(self, message: str, job: dict):
        super().__init__(message)
        self.job = job


# --- The token file ---

def save_token(token: str) -> None:
    "Keeps the token in TOKEN_FILE, readable by this user only (the file is made 0600, never widened)."
    TOKEN_FILE.unlink(missing_ok=True)
    with os.fdopen(os.open(TOKEN_FILE, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600), "w") as file:
        file.write(token.strip() + "\n")


def load_token() -> str | None:
    "The saved token, or None."
    if not TOKEN_FILE.exists(): return None
    return TOKEN_FILE.read_text().strip() or None


def delete_token() -> bool:
    "Forgets the token; False when there was none."
    if not TOKEN_FILE.exists(): return False
    TOKEN_FILE.unlink()
    return True


def masked(token: str) -> str:
    "The token as the page may show it: its last four characters, and only when it is long enough to spare them."
    return "…" + token[-4:] if len(token) >= 12 else "…"


# --- The export request ---

def export_job(username: str, project: str, analysis: str, fields=DEFAULT_FIELDS, size: int = 10_000,
               filters: dict | None = None) -> dict:
    """The body of POST /v1/jobs for a CSV export of one analysis: a BQL query over its crawl collection, the
    fields as dimensions (BQL wants `metrics` present even when empty), delivered as a download link."""
    collection = f"crawl.{analysis}"
    query = {"dimensions": [f"{collection}.{field}" for field in fields], "metrics": []}
    if filters: query["filters"] = filters
    return {"job_type": "export",
            "payload": {"username": username, "project": project, "connector": "direct_download",
                        "formatter": "csv", "export_size": size,
                        "query": {"collections": [collection], "query": query}}}


def job_error(job: dict) -> str:
    "Why an export job failed: Botify puts the reason in results.error or error, as text or as {message}."
    error = (job.get("results") or {}).get("error") or job.get("error") or "no reason given"
    return error.get("message", str(error)) if isinstance(error, dict) else str(error)


class Botify(Client):
    """The Botify API with one token: `async with Botify(token) as api: ...`. Its requests, and how they are tried
    again: Client (botify_http.py)."""

    async def username(self) -> str:
        "The token's user: the way to check a token."
        return (await self.call("GET", "/v1/authentication/profile"))["data"]["username"]

    async def projects(self, username: str) -> list[dict]:
        "The projects the user can see: each has name, slug and user.login (the owner, often an organisation)."
        return await self.pages(f"/v1/projects/{username}")

    async def analyses(self, owner: str, project: str, only_success: bool = True) -> list[dict]:
        "A project's analyses (crawls), newest first; each has slug (YYYYMMDD[-n]), name and status."
        return await self.pages(f"/v1/analyses/{owner}/{project}",
                                {"only_success": "true"} if only_success else None)

    async def start_export(self, owner: str, project: str, analysis: str, fields=DEFAULT_FIELDS,
                           size: int = 10_000, filters: dict | None = None) -> dict:
        """Asks Botify for a CSV export; returns the job (job_id, job_url, job_status CREATED). Keep job_url:
        wait_for_job picks the job up from there, even after a restart."""
        job = await self.call("POST", "/v1/jobs", json=export_job(owner, project, analysis, fields, size, filters))
        log.info("Botify export job %s started: %s/%s, analysis %s", job["job_id"], owner, project, analysis)
        return job

    async def wait_for_job(self, job_url: str, on_progress=None, max_wait: float = 3600) -> dict:
        """Polls the job until it is DONE and returns it (the CSV link is in results.download_url).

        on_progress, an async function, gets {"stage": "job", "job_id", "status", "elapsed", "message"} after each
        poll. Raises BotifyJobFailed when the job FAILED, BotifyError when it is not done within max_wait seconds.
        """
        started = time.monotonic()
        while True:
            job = await self.call("GET", job_url)
            status, elapsed = job["job_status"], time.monotonic() - started
            if on_progress:
                await on_progress({"stage": "job", "job_id": job["job_id"], "status": status, "elapsed": elapsed,
                                   "message": f"Export job {job['job_id']}: {status} ({elapsed:.0f} s)"})
            if status == "DONE":
                log.info("Botify export job %s is done", job["job_id"])
                return job
            if status == "FAILED":
                raise BotifyJobFailed(f"Botify export job {job['job_id']} failed: {job_error(job)}", job)
            if elapsed > max_wait:
                raise BotifyError(f"Botify export job {job['job_id']} is still {status} after {elapsed:.0f} s; "
                                  "it may yet finish, so try again later rather than starting a new export.")
            await asyncio.sleep(self.poll_interval)

    async def download_csv(self, download_url: str, name: str | None = None, on_progress=None) -> Path:
        """Downloads a finished export (a gzipped CSV) into data/downloads/ and unpacks it; returns the CSV's path.

        name is the CSV's file name (by default the link's, without .gz). on_progress, an async function, gets
        {"stage": "download", "received", "total" (None when unknown), "message"} per megabyte. A transfer cut short
        is tried again; if it keeps failing, BotifyError, and nothing is left behind: the file appears only whole.
        """
        name = name or Path(urlsplit(download_url).path).name.removesuffix(".gz") or "botify-export.csv"
        target = DOWNLOADS / Path(name).name
        target.parent.mkdir(parents=True, exist_ok=True)
        for attempt in range(self.retries + 1):
            try:
                await self.fetch_csv(download_url, target, on_progress)
                log.info("Botify export saved to %s (%d bytes)", target, target.stat().st_size)
                return target
            except (httpx.TransportError, EOFError, gzip.BadGzipFile) as error:
                why = f"the download broke off ({type(error).__name__})"
            except httpx.HTTPStatusError as error:
                if error.response.status_code < 500:
                    raise BotifyError(f"The export's download link answered HTTP {error.response.status_code}; "
                                      "it may have expired: export again.") from error
                why = f"the download answered HTTP {error.response.status_code}"
            if attempt == self.retries:
                raise BotifyError(f"Could not download the export: {why}, {attempt + 1} times.")
            await self.wait(attempt, why)

    async def fetch_csv(self, url: str, target: Path, on_progress=None):
        # Download and unpack inside a scratch folder next to the target, then move the CSV in with one rename:
        # whatever breaks on the way, the folder goes and the target is never half written.
        with tempfile.TemporaryDirectory(dir=target.parent, prefix=".partial-") as scratch:
            packed, unpacked = Path(scratch) / "export.csv.gz", Path(scratch) / target.name
            async with self.files.stream("GET", url) as response:
                response.raise_for_status()
                total = int(response.headers["content-length"]) if "content-length" in response.headers else None
                with packed.open("wb") as file:
                    async for chunk in response.aiter_raw(1 << 20):  # raw: the .gz as stored, whatever the headers
                        file.write(chunk)
                        if on_progress:
                            received = response.num_bytes_downloaded
                            await on_progress({"stage": "download", "received": received, "total": total,
                                               "message": f"Downloaded {received / 1e6:.1f}"
                                                          f"{f' of {total / 1e6:.1f}' if total else ''} MB"})
            await asyncio.to_thread(gunzip, packed, unpacked)
            unpacked.replace(target)

    async def export_csv(self, owner: str, project: str, analysis: str, fields=DEFAULT_FIELDS, size: int = 10_000,
                         filters: dict | None = None, on_progress=None) -> Path:
        "start_export, wait_for_job and download_csv in one: the path of the CSV in data/downloads/."
        job = await self.start_export(owner, project, analysis, fields, size, filters)
        done = await self.wait_for_job(job["job_url"], on_progress)
        return await self.download_csv(done["results"]["download_url"],
                                       f"{owner}_{project}_{analysis}_{job['job_id']}.csv", on_progress)


def gunzip(source: Path, target: Path):
    "Unpacks an export row by row, every cell made safe to open in a spreadsheet (see exports.py)."
    with gzip.open(source, "rt", encoding="utf-8", errors="replace", newline="") as packed:
        rows = csv.reader(packed)
        write_csv(target, next(rows, []), rows)
