"""Workflows (workflows.py), through the URL checker app against a local site: steps kept as JSON under a run key,
per profile; revert; background steps with progress in every tab, cancel, and resume after a restart; a fork's
own workflow from the example in plugins/README.md."""

import asyncio
import csv
import html
import io
import json
import re
import sqlite3
import time
from pathlib import Path

import httpx
import pytest
import websockets

from conftest import app_server, free_port, served, shipped, wait_for
from local_site import LocalSite

pytestmark = shipped("plugins/020_url_checker.py")

HX = {"HX-Request": "true"}


@pytest.fixture(scope="module")
def site_server():
    with served(LocalSite()) as site:
        yield site


@pytest.fixture
def site(site_server):
    site_server.release.clear()
    site_server.dropped = 0
    yield site_server
    site_server.release.set()  # nothing stays held for the next test


def new_run(client, app: str = "url_checker") -> str:
    "The key of a new run (not saved until its first step is)."
    return re.search(r'id="run-([\w-]+)"', client.get(f"/{app}/new", headers=HX).text)[1]


def submit(client, key: str, step: str, **form) -> httpx.Response:
    return client.post(f"/url_checker/runs/{key}/steps/{step}", data=form, headers=HX)


def step_state(page: str, step: str) -> str:
    "done, open or later."
    return re.search(rf'<li id="step-{step}" class="step (\w+)"', page)[1]


def page_when(client, path: str, condition) -> str:
    "The page at path once condition(page) holds."
    def ready():
        page = client.get(path).text
        return page if condition(page) else None
    return wait_for(ready)


def finished(client, step: str = "check") -> str:
    return page_when(client, "/url_checker", lambda page: step_state(page, step) == "done")


def results(page: str) -> list[tuple[str, str]]:
    "(every answer of the chain, url) of each row of the results table."
    table = page[page.index('id="urls-rows"'):]
    table = table[table.index("<tbody>"):table.index("</tbody>")]
    return [(" → ".join(re.findall(r"<mark[^>]*>(\w+)</mark>", row)),
             html.unescape(re.sub(r"<[^>]+>|\s", "", re.search(r'<span class="address">(.*?)</span>', row, re.S)[1])))
            for row in table.split("<tr>")[1:]]


def rows(db) -> list[dict]:
    return [dict(row) | {"state": json.loads(row["state"])} for row in db.q("SELECT * FROM pipeline ORDER BY created")]


def notes(server) -> list[str]:
    return [m["content"] for m in server.chat.history(server.active_profile().id) if m["role"] == "note"]


# --- steps and their state

def test_each_step_is_kept_as_json_under_the_run_key_of_the_profile(server, client, site):
    key = new_run(client)
    assert rows(server.db) == []  # a new run is saved with its first step
    answer = submit(client, key, "urls", text=f"{site.url}/page/1\nnot a url\n{site.url}/missing\n")
    assert answer.status_code == 200
    assert (step_state(answer.text, "urls"), step_state(answer.text, "check")) == ("done", "open")
    assert "<strong>2 URLs</strong> to check." in answer.text
    assert "Not a URL, skipped: “not a url” (it has spaces in it)" in html.unescape(answer.text)
    assert "Check 2 URLs" in answer.text  # the next step's form, chained into the answer
    [row] = rows(server.db)
    assert (row["key"], row["app"], row["profile_id"], row["step"], row["job"]) == (
        key, "url_checker", server.active_profile().id, "check", None)
    assert row["state"] == {"urls": {"text": f"{site.url}/page/1\nnot a url\n{site.url}/missing\n",
                                     "urls": [f"{site.url}/page/1", f"{site.url}/missing"],
                                     "invalid": [["not a url", "it has spaces in it"]], "credentials": False,
                                     "expected": {}}}


def test_bad_input_is_refused_in_the_page_and_nothing_is_saved(server, client, site):
    key = new_run(client)
    answer = submit(client, key, "urls", text="no urls here\nnope\n")
    assert answer.status_code == 422 and "No URLs there" in answer.text
    assert "“nope”: there is no dot in the host" in html.unescape(answer.text)
    assert answer.headers["HX-Retarget"] == "#message" and rows(server.db) == []
    assert submit(client, key, "check", concurrency="1", timeout="1").status_code == 404  # no such run yet
    submit(client, key, "urls", text=f"{site.url}/page/1")
    for settings in ({"concurrency": "0", "timeout": "5"}, {"concurrency": "many", "timeout": "5"}):
        assert submit(client, key, "check", **settings).status_code == 422
    assert rows(server.db)[0]["job"] is None
    again = submit(client, key, "urls", text=f"{site.url}/page/2")  # a tab that did not see the run move on
    assert again.status_code == 409 and "reload the page" in again.text
    assert submit(client, key, "nonsense").status_code == 404


def test_checking_gives_a_results_table_and_a_csv_under_data(server, live, site):
    urls = [f"{site.url}/page/1", f"{site.url}/old", f"{site.url}/missing", f"http://127.0.0.1:{free_port()}/"]
    key = new_run(live)
    submit(live, key, "urls", text="\n".join(urls))
    working = submit(live, key, "check", concurrency="2", timeout="5")
    assert f'id="job-{key}"' in working.text and ">Cancel</button>" in working.text
    page = finished(live)
    assert results(page) == [("200", urls[0]), ("301 → 200", urls[1]), ("404", urls[2]), ("failed", urls[3])]
    assert "Page 1" in page and "Connection refused: nothing answers at 127.0.0.1:" in page
    assert "Checked 4 URLs: 1 answered 2xx, 1 redirected, 1 ended in 4xx or 5xx, 1 failed." in page

    download = live.get(f"/url_checker/runs/{key}/csv")
    assert download.status_code == 200 and download.headers["content-type"].startswith("text/csv")
    assert download.headers["content-disposition"] == f'attachment; filename="{key}.csv"'
    table = list(csv.DictReader(io.StringIO(download.text)))
    assert [(r["url"], r["status"], r["redirects"], r["final_url"], r["final_status"], r["title"])
            for r in table[:3]] == [
        (urls[0], "200", "0", urls[0], "200", "Page 1"), (urls[1], "301", "1", f"{site.url}/page/1", "200", "Page 1"),
        (urls[2], "404", "0", urls[2], "404", "Not found")]
    assert (server.config.DATA_DIR / "url_checks" / f"{key}.csv").read_bytes() == download.content
    assert notes(server)[-2:] == ["URL checker: “Check them” started.",
                                  "URL checker: “Check them” done. Checked 4 URLs: 1 answered 2xx, 1 redirected, "
                                  "1 ended in 4xx or 5xx, 1 failed."]


def test_the_csv_route_serves_only_a_run_csv(live, site):
    key = new_run(live)
    submit(live, key, "urls", text=f"{site.url}/page/1")
    assert live.get(f"/url_checker/runs/{key}/csv").status_code == 404  # not checked yet
    for other in ("..%2F..%2Fconfig.py", "20250101-000000-abcd", "../server.py"):
        assert live.get(f"/url_checker/runs/{other}/csv").status_code == 404


def test_revert_opens_a_step_again_and_clears_the_steps_after_it(server, live, site):
    key = new_run(live)
    pasted = f"{site.url}/page/1\n{site.url}/page/2"
    submit(live, key, "urls", text=pasted)
    submit(live, key, "check", concurrency="3", timeout="7")
    finished(live)

    reverted = live.post(f"/url_checker/runs/{key}/steps/check/revert", headers=HX)
    assert step_state(reverted.text, "check") == "open" and 'value="3"' in reverted.text  # its last settings
    reverted = live.post(f"/url_checker/runs/{key}/steps/urls/revert", headers=HX)
    assert (step_state(reverted.text, "urls"), step_state(reverted.text, "check")) == ("open", "later")
    assert f"{site.url}/page/1\n{site.url}/page/2</textarea>" in html.unescape(reverted.text)  # the form, filled
    [row] = rows(server.db)
    assert (row["step"], list(row["state"])) == ("urls", ["urls"])
    assert live.get(f"/url_checker/runs/{key}/csv").status_code == 404
    assert live.post(f"/url_checker/runs/{key}/steps/check/revert", headers=HX).status_code == 404  # not done

    submit(live, key, "urls", text=f"{site.url}/page/3")
    submit(live, key, "check", concurrency="1", timeout="5")
    assert results(finished(live)) == [("200", f"{site.url}/page/3")]


def test_passwords_in_pasted_urls_are_removed_and_the_page_says_so(server, client, site):
    key = new_run(client)
    pasted = f"http://user:secret@{site.url.split('://')[1]}/page/1\nuser:secret@bad host"
    shown = html.unescape(submit(client, key, "urls", text=pasted).text)
    assert "(user:password@) were removed" in shown and "“bad host” (it has spaces in it)" in shown
    reverted = client.post(f"/url_checker/runs/{key}/steps/urls/revert", headers=HX)
    assert f"{site.url}/page/1\nbad host</textarea>" in html.unescape(reverted.text)
    assert "secret" not in shown + reverted.text + json.dumps(rows(server.db))


def test_cancel_stops_the_work_and_opens_the_step_again(server, live, site):
    key = new_run(live)
    submit(live, key, "urls", text=f"{site.url}/held/1\n{site.url}/held/2")
    submit(live, key, "check", concurrency="1", timeout="60")
    wait_for(lambda: site.held_now == 1)
    assert step_state(live.get("/url_checker").text, "urls") == "done"
    assert 'Revert' not in live.get("/url_checker").text  # nothing is reverted under a running step
    assert live.post(f"/url_checker/runs/{key}/steps/urls/revert", headers=HX).status_code == 409

    cancelled = live.post(f"/url_checker/runs/{key}/cancel", headers=HX)
    assert step_state(cancelled.text, "check") == "open" and "Check 2 URLs" in cancelled.text
    assert f'id="job-{key}"' not in cancelled.text
    wait_for(lambda: site.dropped == 1)  # the check's request was given up, and the next one never made
    time.sleep(0.3)
    assert site.held_now == 0 and site.dropped == 1
    assert rows(server.db)[0]["job"] is None and rows(server.db)[0]["step"] == "check"
    assert notes(server)[-1] == "URL checker: “Check them” cancelled."


def test_a_page_drawn_as_its_step_ends_shows_it_at_work_not_interrupted(server, live, site, monkeypatch):
    "The page is drawn in a thread from the run as it was read: the job ending meanwhile does not make it interrupted."
    from core.workflows import jobs
    key = new_run(live)
    submit(live, key, "urls", text=f"{site.url}/held/1")
    submit(live, key, "check", concurrency="1", timeout="60")
    wait_for(lambda: site.held_now == 1)
    urls = jobs.RUNNING[key].flow.steps["urls"]
    show = urls.show
    def shown_as_the_job_ends(run):  # the done step is drawn before the open one: the job ends in between
        site.release.set()
        wait_for(lambda: key not in jobs.RUNNING)
        return show(run)
    monkeypatch.setattr(urls, "show", shown_as_the_job_ends)
    page = live.get("/url_checker").text
    assert "Interrupted" not in page and f'id="job-{key}"' in page  # at work, as it was when read
    monkeypatch.undo()
    assert step_state(live.get("/url_checker").text, "check") == "done"


def test_runs_are_listed_opened_and_deleted(server, client, site):
    first = new_run(client)
    submit(client, first, "urls", text=f"{site.url}/page/1")
    second = new_run(client)
    assert second != first and [row["key"] for row in rows(server.db)] == [first]
    submit(client, second, "urls", text=f"{site.url}/page/2")
    page = client.get("/url_checker").text
    assert f'id="run-{second}"' in page  # the run used last
    assert re.findall(r'<option value="([\w-]+)"', page) == [second, first]
    assert "· step 2 of 2</option>" in page

    opened = client.get("/url_checker/runs", params={"run": first}, headers=HX)
    assert f'id="run-{first}"' in opened.text
    assert f'id="run-{first}"' in client.get("/url_checker").text  # now the one used last

    left = client.delete(f"/url_checker/runs/{first}", headers=HX)
    assert f'id="run-{second}"' in left.text
    assert [row["key"] for row in rows(server.db)] == [second]


def test_a_run_belongs_to_its_profile_and_goes_with_it(server, client, site):
    key = new_run(client)
    submit(client, key, "urls", text=f"{site.url}/page/1")
    mine = server.active_profile().id
    other = server.profiles.insert(name="Other").id
    client.post(f"/profiles/{other}/switch", headers=HX)
    assert f'id="run-{key}"' not in client.get("/url_checker").text
    for response in (client.get("/url_checker/runs", params={"run": key}, headers=HX),
                     submit(client, key, "check", concurrency="1", timeout="1"),
                     client.post(f"/url_checker/runs/{key}/steps/urls/revert", headers=HX),
                     client.post(f"/url_checker/runs/{key}/cancel", headers=HX),
                     client.delete(f"/url_checker/runs/{key}", headers=HX),
                     client.get(f"/url_checker/runs/{key}/csv")):
        assert response.status_code == 404, response.request.url
    client.delete(f"/profiles/{mine}", headers=HX)
    assert rows(server.db) == []


# --- real processes: progress over the WebSocket, a restart

@pytest.mark.asyncio
async def test_progress_reaches_every_open_tab_of_the_profile(data_env, site):
    with app_server(data_env) as url:
        ws_url = url.replace("http://", "ws://") + "/ws"
        async with httpx.AsyncClient(base_url=url, headers=HX) as client:
            other = re.findall(r'id="profile-(\d+)"', (await client.post("/profiles", data={"name": "B"})).text)[-1]
            await client.post(f"/profiles/{other}/switch")
            async with websockets.connect(ws_url) as other_tab:
                await client.post("/profiles/1/switch")
                async with websockets.connect(ws_url) as first_tab, websockets.connect(ws_url) as second_tab:
                    key = re.search(r'id="run-([\w-]+)"', (await client.get("/url_checker/new")).text)[1]
                    urls = [f"{site.url}/page/{n}" for n in range(3)] + [f"{site.url}/held/1"]
                    await client.post(f"/url_checker/runs/{key}/steps/urls", data={"text": "\n".join(urls)})
                    await client.post(f"/url_checker/runs/{key}/steps/check", data={"concurrency": "1",
                                                                                   "timeout": "30"})
                    tabs = [first_tab, second_tab]
                    seen = [await frames_until(tab, lambda f: 'value="3" max="4"' in f) for tab in tabs]
                    site.release.set()
                    seen = [before + await frames_until(tab, lambda f: "done. Checked 4 URLs" in f)
                            for before, tab in zip(seen, tabs)]
                    with pytest.raises(TimeoutError):
                        await asyncio.wait_for(other_tab.recv(), 0.5)

    for frames in seen:
        assert "URL checker: “Check them” started." in frames[0]
        bars = [f for f in frames if f'id="job-{key}"' in f]
        assert all('hx-swap-oob="true"' in f and "<progress" in f for f in bars)
        done_counts = [int(re.search(r'value="(\d)"', f)[1]) for f in bars]
        assert done_counts == sorted(done_counts) and done_counts[-1] >= 3
        [done] = [f for f in frames if f'id="run-{key}"' in f]
        assert 'hx-swap-oob="true"' in done and 'id="step-check" class="step done"' in done and "Held 1" in done


async def frames_until(tab, wanted, timeout: float = 10) -> list[str]:
    frames = []
    async with asyncio.timeout(timeout):
        while not frames or not wanted(frames[-1]): frames.append(await tab.recv())
    return frames


def test_a_run_is_where_it_was_after_a_restart_and_an_interrupted_step_resumes(data_env, site):
    with app_server(data_env) as url, httpx.Client(base_url=url, headers=HX) as client:
        key = re.search(r'id="run-([\w-]+)"', client.get("/url_checker/new").text)[1]
        client.post(f"/url_checker/runs/{key}/steps/urls", data={"text": f"{site.url}/page/1\n{site.url}/held/1"})
        client.post(f"/url_checker/runs/{key}/steps/check", data={"concurrency": "1", "timeout": "60"})
        wait_for(lambda: site.held_now == 1)
        assert 'value="1" max="2"' in client.get("/url_checker").text  # the progress so far, drawn in a new page

    with app_server(data_env) as url, httpx.Client(base_url=url, headers=HX) as client:
        page = client.get("/url_checker").text
        assert f'id="run-{key}"' in page and "<strong>2 URLs</strong> to check." in page
        assert "Interrupted: the app stopped while this step was at work." in page and "· interrupted</option>" in page
        site.release.set()
        resumed = client.post(f"/url_checker/runs/{key}/resume")
        assert f'id="job-{key}"' in resumed.text
        assert client.post(f"/url_checker/runs/{key}/resume").status_code == 409
        page = finished(client)
        assert results(page) == [("200", f"{site.url}/page/1"), ("200", f"{site.url}/held/1")]

    (database,) = Path(data_env["DATA_DIR"]).glob("*.db")
    with sqlite3.connect(database) as db:
        step, job = db.execute("SELECT step, job FROM pipeline WHERE key = ?", [key]).fetchone()
        history = [row[0] for row in db.execute("SELECT content FROM chat_message WHERE role = 'note'")]
    db.close()
    assert (step, job) == ("", None)
    assert history == ["URL checker: “Check them” started.",
                       "URL checker: “Check them” resumed after a restart.",
                       "URL checker: “Check them” done. Checked 2 URLs: 2 answered 2xx, 0 redirected, "
                       "0 ended in 4xx or 5xx, 0 failed."]


def test_a_fork_adds_a_workflow_with_a_plugin_file_alone(fork_copy, data_env, site):
    "The example in the Workflows section of plugins/README.md, saved as plugins/500_robots.py."
    guide = (fork_copy / "plugins" / "README.md").read_text()
    example = re.search(r"```python\n(.*?)```", guide.split("\n## Workflows\n")[1], re.S)[1]
    (fork_copy / "plugins" / "500_robots.py").write_text(example)
    with app_server(data_env, cwd=fork_copy) as url, httpx.Client(base_url=url, headers=HX) as client:
        page = client.get("/robots").text
        assert '<a href="/robots" aria-current="page">Robots.txt</a>' in page
        key = re.search(r'id="run-([\w-]+)"', page)[1]
        assert client.post(f"/robots/runs/{key}/steps/site", data={"site": " "}).status_code == 422
        client.post(f"/robots/runs/{key}/steps/site", data={"site": f"{site.url}/"})
        client.post(f"/robots/runs/{key}/steps/fetch")
        page = page_when(client, "/robots", lambda page: "It answered 200" in page)
        assert "Disallow: /private/" in page


def test_a_redirect_map_is_checked_as_a_migration_in_the_table_the_filter_and_the_csv(live, site):
    mapped = {f"{site.url}/old": f"{site.url}/page/1", f"{site.url}/moved-final": f"{site.url}/about",
              f"{site.url}/moved": f"{site.url}/about", f"{site.url}/page/2": f"{site.url}/page/3"}
    key = new_run(live)
    pasted = submit(live, key, "urls", text="\n".join(f"{old}\t{new}" for old, new in mapped.items()))
    assert "4 of them with the URL each should redirect to" in pasted.text
    submit(live, key, "check", concurrency="2", timeout="5")
    page = html.unescape(finished(live))
    assert "2 of 4 redirected as the map says." in page and "Redirect map" in page
    assert f"it redirects to {site.url}/moved-again, and reaches the expected URL after 4 redirects" in page
    shown = live.get(f"/url_checker/runs/{key}/rows", params={"flag": "unmapped"}, headers=HX).text
    assert [url for _, url in results(shown)] == [f"{site.url}/moved", f"{site.url}/page/2"]
    table = list(csv.DictReader(io.StringIO(live.get(f"/url_checker/runs/{key}/csv").text)))
    assert [(row["url"], row["expected"], row["migration"]) for row in table] == [
        (f"{site.url}/old", f"{site.url}/page/1", ""), (f"{site.url}/moved-final", f"{site.url}/about", ""),
        (f"{site.url}/moved", f"{site.url}/about",
         f"it redirects to {site.url}/moved-again, and reaches the expected URL after 4 redirects"),
        (f"{site.url}/page/2", f"{site.url}/page/3", "no redirect: it answers 200")]


def test_the_results_table_sorts_filters_and_pages_on_the_server(live, site):
    urls = [f"{site.url}/page/{n}" for n in range(60)] + [f"{site.url}/old", f"{site.url}/missing"]
    key = new_run(live)
    submit(live, key, "urls", text="\n".join(urls))
    submit(live, key, "check", concurrency="10", timeout="5")
    first = finished(live)
    assert [url for _, url in results(first)] == urls[:50]  # the first page, in the order pasted
    assert "1–50 of 62" in first

    def rows(**query) -> list[tuple[str, str]]:
        answer = live.get(f"/url_checker/runs/{key}/rows", params=query, headers=HX)
        assert answer.status_code == 200
        return results(answer.text)

    assert [url for _, url in rows(page=2)] == urls[50:]
    assert rows(sort="status", desc="1")[:2] == [("404", urls[-1]), ("301 → 200", urls[-2])]
    assert rows(outcome="3xx") == [("301 → 200", urls[-2])]
    assert rows(q="page/5") == [("200", urls[5])] + [("200", urls[n]) for n in range(50, 60)]
    assert rows(q="nothing like it") == [] and "No rows match." in live.get(
        f"/url_checker/runs/{key}/rows", params={"q": "nothing like it"}).text
    assert [url for _, url in rows(page=99)] == urls[50:]  # past the end: the last page
    assert live.get(f"/url_checker/runs/{key}/rows", params={"sort": "nonsense"}).status_code == 200
