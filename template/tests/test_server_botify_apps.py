"""The Botify apps against the fake Botify API: Connect Botify (the token checked, kept 0600, shown masked, removable)
and the Botify export workflow (projects and analyses across pages, fields, the export job with its progress, the
CSV and its preview), their faults, a resume after a restart, and the token in no log line and no page."""

import html
import json
import re
import shutil
import stat
import sys
import time
from functools import partial
from pathlib import Path

import httpx
import pytest

from core import botify
from conftest import ROOT, app_server, free_port, running, served, shipped
from fake_botify import TOKEN, FakeBotify

pytestmark = shipped("plugins/030_botify_connect.py", "plugins/040_botify_export.py")

HX = {"HX-Request": "true"}
PROJECT = {"owner": "acme-org", "slug": "example-shop", "name": "Example Shop"}


@pytest.fixture
def fake():
    "The fake Botify API, in place of conftest's fake LLM."
    with served(FakeBotify(step_delay=0.1)) as fake:
        yield fake


@pytest.fixture
def token_file(server, fake, tmp_path, monkeypatch):
    "The apps talk to the fake, keep the token in a throwaway file, poll quickly and retry at once."
    monkeypatch.setattr(server.config, "BOTIFY_API_URL", fake.url)
    monkeypatch.setattr(botify, "TOKEN_FILE", tmp_path / "botify_token.txt")
    export = sys.modules["plugins.040_botify_export"]
    monkeypatch.setattr(export, "POLL_SECONDS", 0.05)
    monkeypatch.setattr(export, "Botify", partial(botify.Botify, backoff=0.01))
    shutil.rmtree(botify.DOWNLOADS, ignore_errors=True)
    return tmp_path / "botify_token.txt"


@pytest.fixture
def connected(client, token_file):
    assert client.post("/botify_connect", data={"token": TOKEN}, headers=HX).status_code == 200
    return client


@pytest.fixture
def live(connected):
    "The TestClient with its event loop kept running between requests, so the export goes on in the background."
    with connected: yield connected


def options(fragment: str) -> list[dict]:
    return [json.loads(html.unescape(value)) for value in re.findall(r"<option value='([^']*)'", fragment)]


def new_run(client) -> str:
    return re.search(r'id="run-([\w-]+)"', client.get("/botify_export/new", headers=HX).text)[1]


def submit(client, key: str, step: str, **form) -> httpx.Response:
    return client.post(f"/botify_export/runs/{key}/steps/{step}", data=form, headers=HX)


def ready_to_export(client, fields=("url", "http_code"), extra="segments.pagetype.value", size="12") -> str:
    "A run with project, analysis and fields chosen: its key."
    key = new_run(client)
    assert submit(client, key, "project", project=json.dumps(PROJECT)).status_code == 200
    assert submit(client, key, "analysis", analysis=json.dumps({"slug": "20250301", "name": "2025-03-01"})
                  ).status_code == 200
    assert submit(client, key, "fields", field=list(fields), extra=extra, size=size).status_code == 200
    return key


def export_step(client) -> str:
    "The export step of the page, once it is no longer at work."
    deadline = time.monotonic() + 15
    while True:
        page = client.get("/botify_export").text
        step = page[page.index('id="step-export"'):]
        if "job-" not in step: return step
        assert time.monotonic() < deadline, "the export did not end"
        time.sleep(0.05)


def notes(server) -> list[str]:
    return [m["content"] for m in server.chat.history(server.active_profile().id) if m["role"] == "note"]


# --- Connect Botify

def test_a_good_token_is_checked_kept_0600_and_shown_masked(client, token_file, fake):
    assert 'type="password" name="token"' in client.get("/botify_connect").text
    answer = client.post("/botify_connect", data={"token": f"  {TOKEN}\n"}, headers=HX)
    assert answer.status_code == 200
    assert "<strong>jane.doe</strong>" in answer.text and "<code>…cdef</code>" in answer.text
    assert token_file.read_text() == f"{TOKEN}\n" and stat.S_IMODE(token_file.stat().st_mode) == 0o600
    assert fake.requests == [("GET", "/v1/authentication/profile")]
    page = client.get("/botify_connect").text
    assert "<code>…cdef</code>" in page and "jane.doe" in page and TOKEN not in page

    answer = client.delete("/botify_connect", headers=HX)
    assert 'name="token"' in answer.text and not token_file.exists()
    assert 'name="token"' in client.get("/botify_connect").text


@pytest.mark.parametrize("token, faults, message", [
    ("wrong-token-0000", [], "Botify refused the API token: Invalid token."),
    (TOKEN, [403], "Botify denied this token access to /v1/authentication/profile"),
    (TOKEN, [503, 503], "Botify answered GET /v1/authentication/profile with HTTP 503 after 2 tries"),
    ("two words", [], "That is not a Botify API token"),
    ("", [], "Paste your Botify API token first."),
])
def test_a_token_botify_does_not_take_is_not_saved(client, token_file, fake, token, faults, message):
    fake.faults = faults
    answer = client.post("/botify_connect", data={"token": token}, headers=HX)
    assert answer.status_code == 422 and answer.headers["HX-Retarget"] == "#message"
    assert message in html.unescape(answer.text)
    assert not token_file.exists() and 'name="token"' in client.get("/botify_connect").text


def test_botify_out_of_reach_is_a_clear_message(server, client, token_file, monkeypatch):
    monkeypatch.setattr(server.config, "BOTIFY_API_URL", f"http://127.0.0.1:{free_port()}")
    answer = client.post("/botify_connect", data={"token": TOKEN}, headers=HX)
    assert answer.status_code == 422 and "Could not reach the Botify API" in answer.text
    assert "The token was not saved" in answer.text and not token_file.exists()


def test_a_rate_limit_is_waited_out_as_botify_asks(client, token_file, fake):
    fake.faults = [429]  # with Retry-After: 1
    started = time.monotonic()
    assert client.post("/botify_connect", data={"token": TOKEN}, headers=HX).status_code == 200
    assert time.monotonic() - started >= 1 and token_file.exists()


# --- Botify export: the choices

def test_without_a_token_the_export_asks_to_connect_first(client, token_file):
    page = client.get("/botify_export").text
    assert 'Connect Botify first: <a href="/botify_connect">' in page
    assert "Connect Botify first" in client.get("/botify_export/projects").text


def test_projects_and_analyses_are_listed_across_pages(connected, fake):
    page = connected.get("/botify_export").text
    assert 'hx-get="/botify_export/projects"' in page and 'hx-trigger="load"' in page  # filled once on the page
    projects = options(connected.get("/botify_export/projects").text)
    assert [p["slug"] for p in projects] == ["example-shop", "example-blog", "docs", "help-center", "personal-site"]
    assert projects[0] == PROJECT
    analyses = options(connected.get("/botify_export/analyses", params={"owner": "acme-org",
                                                                         "project": "example-shop"}).text)
    assert [a["slug"] for a in analyses] == ["20250301", "20250201-2", "20250201", "20250101"]  # finished ones
    assert sum(path.startswith("/v1/projects/") for _, path in fake.requests) == 3  # five projects, two a page
    assert sum(path.startswith("/v1/analyses/") for _, path in fake.requests) == 2
    gone = connected.get("/botify_export/analyses", params={"owner": "acme-org", "project": "no-such-project"})
    assert "Project not found" in gone.text


def test_the_fields_have_a_sensible_default_and_bad_choices_are_refused(connected):
    key = new_run(connected)
    for project in ("", "not json", json.dumps(PROJECT | {"slug": "../../v1/jobs"})):
        answer = submit(connected, key, "project", project=project)
        assert answer.status_code == 422 and "Choose a project in the list." in answer.text
    submit(connected, key, "project", project=json.dumps(PROJECT))
    fields_form = submit(connected, key, "analysis", analysis=json.dumps({"slug": "20250301", "name": "x"})).text
    checked = re.findall(r'<input type="checkbox" name="field" value="([\w.]+)" checked>', fields_form)
    assert checked == list(botify.DEFAULT_FIELDS) and 'value="10000"' in fields_form
    for form, message in [({"size": "10"}, "Choose at least one field."),
                          ({"field": "url", "extra": "title; drop table", "size": "10"}, "Not a field name"),
                          ({"field": "url", "size": "0"}, "Export 1 to 1,000,000 URLs.")]:
        answer = submit(connected, key, "fields", **form)
        assert answer.status_code == 422 and message in answer.text


# --- Botify export: the job

def test_an_export_ends_in_a_csv_with_a_link_and_a_preview(server, live, fake):
    key = ready_to_export(live)
    working = submit(live, key, "export")
    assert f'id="job-{key}"' in working.text and "<progress>" in working.text
    step = export_step(live)
    name = "acme-org_example-shop_20250301_1000.csv"
    assert "12 URLs exported by Botify job 1000." in step
    assert re.search(rf'<a href="/botify_export/runs/{key}/csv" download[^>]*>{name}</a>', step)
    assert re.findall(r'<th title="([\w.]+)">([^<]+)</th>', step) == [  # the names chosen in step 3
        ("url", "URL"), ("http_code", "HTTP status code"), ("segments.pagetype.value", "segments.pagetype.value")]
    assert step.count("<tr>") == 1 + 10 and "https://www.example.com/page-9" in step and "page-10" not in step

    download = live.get(f"/botify_export/runs/{key}/csv")
    assert download.status_code == 200 and download.content == (botify.DOWNLOADS / name).read_bytes()
    assert download.text.splitlines()[:2] == ["url,http_code,segments.pagetype.value",
                                              "https://www.example.com/page-0,301,"]
    assert len(download.text.splitlines()) == 13
    [(job_id, job)] = fake.jobs.items()
    query = job["payload"]["query"]
    assert (job["payload"]["export_size"], query["collections"]) == (12, ["crawl.20250301"])
    assert query["query"]["dimensions"] == ["crawl.20250301.url", "crawl.20250301.http_code",
                                            "crawl.20250301.segments.pagetype.value"]
    assert notes(server)[-2:] == ["Botify export: “Export” started.",
                                  f"Botify export: “Export” done. Exported 12 URLs to {name}."]
    assert [p.name for p in botify.DOWNLOADS.iterdir()] == [name]


def test_a_failed_job_shows_its_error_and_can_be_tried_again(live, fake):
    key = ready_to_export(live)
    fake.fail_jobs = "Not enough export credits"
    submit(live, key, "export")
    step = export_step(live)
    assert '<p class="problem">Botify export job 1000 failed: Not enough export credits</p>' in step
    assert ">Start the export</button>" in step
    fake.fail_jobs = None
    submit(live, key, "export")
    assert "12 URLs exported" in export_step(live)


def test_an_expired_token_fails_the_export_clearly(live, fake):
    key = ready_to_export(live)
    fake.token = "a-newer-token-0000000000"
    submit(live, key, "export")
    assert "Botify refused the API token: Invalid token." in export_step(live)


def test_a_download_that_breaks_is_tried_again_and_leaves_no_partial_file(live, fake):
    key = ready_to_export(live)
    fake.break_downloads = 10
    submit(live, key, "export")
    assert "Could not download the export: the download broke off" in export_step(live)
    assert list(botify.DOWNLOADS.iterdir()) == []
    fake.break_downloads = 1
    submit(live, key, "export")
    assert "12 URLs exported" in export_step(live)
    assert [p.name for p in botify.DOWNLOADS.iterdir()] == ["acme-org_example-shop_20250301_1001.csv"]


def test_an_export_can_be_cancelled(live, fake):
    fake.step_delay = 30
    key = ready_to_export(live)
    submit(live, key, "export")
    cancelled = live.post(f"/botify_export/runs/{key}/cancel", headers=HX)
    assert ">Start the export</button>" in cancelled.text and f'id="job-{key}"' not in cancelled.text


# --- real processes

def fork_env(data_env, fake, tmp_path) -> dict:
    return data_env | {"BOTIFY_API_URL": fake.url, "BOTIFY_TOKEN_FILE": str(tmp_path / "botify_token.txt")}


def test_an_export_resumes_the_same_job_after_a_restart(data_env, fake, tmp_path):
    fake.step_delay = 2  # the job is done 4 s after it starts
    env = fork_env(data_env, fake, tmp_path)
    with app_server(env) as url, httpx.Client(base_url=url, headers=HX, timeout=30) as client:
        client.post("/botify_connect", data={"token": TOKEN}).raise_for_status()
        key = ready_to_export(client)
        submit(client, key, "export")
        deadline = time.monotonic() + 10
        while ("GET", "/v1/jobs/1000") not in fake.requests:
            assert time.monotonic() < deadline
            time.sleep(0.05)

    with app_server(env) as url, httpx.Client(base_url=url, headers=HX, timeout=30) as client:
        assert "Interrupted: the app stopped" in client.get("/botify_export").text
        client.post(f"/botify_export/runs/{key}/resume").raise_for_status()
        assert "12 URLs exported" in export_step(client)
    assert list(fake.jobs) == [1000] and fake.requests.count(("POST", "/v1/jobs")) == 1


def test_the_token_is_in_no_log_line_and_no_page(data_env, fake, tmp_path):
    wrong = "wrong-secret-token-9876543210"
    env, out = fork_env(data_env, fake, tmp_path), tmp_path / "server-output.txt"
    port = free_port()
    env = {key: value for key, value in env.items() if key != "HOST"} | {"PORT": str(port)}
    command = ["sh", "-c", f"exec '{sys.executable}' server.py > '{out}' 2>&1"]  # everything the server prints
    pages = []
    with running(command, ROOT, env, port) as url, httpx.Client(base_url=url, timeout=30) as client:
        pages.append(client.post("/botify_connect", data={"token": wrong}, headers=HX))
        fake.faults = [503, 503]
        pages.append(client.post("/botify_connect", data={"token": TOKEN}, headers=HX))
        pages.append(client.post("/botify_connect", data={"token": TOKEN}, headers=HX))
        key = ready_to_export(client)
        pages.append(submit(client, key, "export"))
        export_step(client)
        for path in ("/botify_connect", "/botify_export", "/url_checker", "/todos", "/profiles",
                     "/botify_export/projects", f"/botify_export/runs/{key}/csv"):
            pages.append(client.get(path))
    assert [p.status_code for p in pages[:3]] == [422, 422, 200]
    assert "…cdef" in pages[2].text and "…cdef" in pages[-7].text
    logs = [path.read_text() for path in Path(data_env["LOG_DIR"]).rglob("*") if path.is_file()] + [out.read_text()]
    assert any("POST /botify_connect 200" in log for log in logs)  # the logs did record the requests
    for secret in (TOKEN, wrong):
        assert not [p.url for p in pages if secret in p.text], secret
        assert not [log for log in logs if secret in log], secret
        for db in Path(data_env["DATA_DIR"]).glob("*.db*"):
            assert secret.encode() not in db.read_bytes(), db
