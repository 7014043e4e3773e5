"""Notebook apps (notebook_apps.py, notebook_kernel.py, notebook_tables.py, plugins/050_notebook_apps.py): a tagged
notebook dropped in notebooks/apps/ is a workflow whose steps run in Jupyter kernels. The forms its parameters make; a
value that stays data; a DataFrame as a table to sort, search and page; the URL checker notebook giving the plugin's
CSV and its results as such a table; a kill -9 during a step, then Resume; Revert and re-run; Cancel; no kernel left
once the app is gone; the notebook untouched and still running headless."""

import csv
import hashlib
import html
import io
import os
import re
import shutil
import signal
import time
from pathlib import Path

import httpx
import nbformat
import psutil
import pytest
from fasthtml.common import to_xml

from conftest import NOT_COPIED, ROOT, app_process, run_notebook, served, shipped, wait_for
from local_site import LocalSite
from core.notebook_apps import field_value, read_app
from core.notebook_kernel import step_outputs
from core.notebook_tables import MIME, explorer

pytestmark = shipped("plugins/050_notebook_apps.py", "plugins/020_url_checker.py", "notebooks/apps/url_checker.ipynb")
HX = {"HX-Request": "true"}

PARAMETERS = '''\
# What to say: the text each step repeats.
TEXT = """hello
world"""
TIMES = 2  # how many times @param {type:"slider", min:1, max:5}
MOOD = "calm"  # @param ["calm", "loud"]
LOUD = False  # shout it
WAIT = 0.0  # seconds the second step waits
TAGS = ["a", "b"]
'''


def code(source: str, *tags: str):
    return nbformat.v4.new_code_cell(source, metadata={"tags": list(tags)})


def probe_notebook() -> nbformat.NotebookNode:
    "Set-up, parameters, two steps (the second waits WAIT seconds, shows HTML and writes a file) and a skipped cell."
    return nbformat.v4.new_notebook(cells=[
        nbformat.v4.new_markdown_cell("# Probe\n\nA notebook for the *tests*, in `notebooks/apps/`."),
        code("import os, time\nfrom pathlib import Path"),
        code(PARAMETERS, "parameters"),
        code("said = TEXT * TIMES\nprint(repr(said), MOOD, LOUD)", "step: Say it"),
        code("time.sleep(WAIT)\nfrom IPython.display import HTML\n"
             "display(HTML('<strong>bold</strong><script>alert(1)</script><img src=x onerror=alert(2)>'))", "step: Wait"),
        code("print('after', repr(said), TAGS)\ndata = Path(os.environ['DATA_DIR'])\n"
             "data.mkdir(parents=True, exist_ok=True)\n(data / 'probe.txt').write_text(said)"),
        code("print('only in JupyterLab')", "skip"),
    ])


@pytest.fixture(scope="module")
def fork(tmp_path_factory):
    "A copy of this fork with the probe notebook in notebooks/apps/."
    copy = Path(shutil.copytree(ROOT, tmp_path_factory.mktemp("notebook-apps") / "fork", ignore=NOT_COPIED))
    nbformat.write(probe_notebook(), copy / "notebooks" / "apps" / "probe.ipynb")
    return copy


@pytest.fixture(scope="module")
def site():
    with served(LocalSite()) as site:
        yield site


@pytest.fixture
def env(tmp_path):
    return os.environ | {"DATA_DIR": str(tmp_path / "data"), "LOG_DIR": str(tmp_path / "logs")}


def kernels(app: psutil.Process) -> list[psutil.Process]:
    return [child for child in app.children(recursive=True) if "ipykernel_launcher" in " ".join(child.cmdline())]


def ended(process: psutil.Process) -> bool:
    "Whether the process is gone: a zombie has ended too (a container's init may leave it unreaped)."
    try: return process.status() == psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess: return True


def new_run(client, app: str) -> str:
    return re.search(r'id="run-([\w-]+)"', client.get(f"/{app}/new").text)[1]


def done(client, app: str, step: str) -> str:
    "The app's page once the step is done; fails if it failed."
    def ready():
        page = client.get(f"/{app}").text
        problems = re.findall(r'class="problem">([^<]*)<', page)
        assert not problems, html.unescape(problems[0])
        return page if f'<li id="step-{step}" class="step done"' in page else None
    return wait_for(ready, 60)


# --- forms

def test_the_parameters_become_fields_of_the_first_step_that_reads_them(tmp_path):
    path = tmp_path / "probe.ipynb"
    nbformat.write(probe_notebook(), path)
    app = read_app(path)
    assert (app.name, app.title, app.intro) == ("notebook_probe", "Probe",
                                                "A notebook for the *tests*, in `notebooks/apps/`.")
    assert [(step.title, step.cells) for step in app.steps] == [("Say it", [3]), ("Wait", [4, 5])]
    assert app.setup == [1] and app.parameters == 2  # the skipped cell is in no step
    fields = {p.name: p for step in app.steps for p in step.fields}
    assert [p.name for p in app.steps[0].fields] == ["TEXT", "TIMES", "MOOD", "LOUD"]
    assert [p.name for p in app.steps[1].fields] == ["WAIT", "TAGS"]
    assert [(p.kind, p.long, p.default) for p in fields.values()] == [
        ("str", True, "hello\nworld"), ("int", False, 2), ("str", False, "calm"), ("bool", False, False),
        ("float", False, 0.0), ("list", True, ["a", "b"])]
    assert (fields["TEXT"].help, fields["TIMES"].help, fields["LOUD"].help) == (
        "What to say: the text each step repeats.", "how many times", "shout it")
    assert (fields["TIMES"].low, fields["TIMES"].high, fields["MOOD"].choices) == (1, 5, ["calm", "loud"])
    form = {"TEXT": "a\r\nb", "TIMES": "3", "MOOD": "loud", "LOUD": "on", "WAIT": "0.5", "TAGS": "x\n\n y \n"}
    assert {p.name: field_value(p, form) for p in fields.values()} == {
        "TEXT": "a\nb", "TIMES": 3, "MOOD": "loud", "LOUD": True, "WAIT": 0.5, "TAGS": ["x", "y"]}
    for name, bad, sentence in [("TIMES", "7", "Times must be between 1 and 5."),
                                ("TIMES", "2.5", "Times must be a whole number."),
                                ("MOOD", "sad", "Mood must be one of calm, loud."),
                                ("WAIT", "soon", "Wait must be a number.")]:
        with pytest.raises(ValueError, match=re.escape(sentence)): field_value(fields[name], form | {name: bad})


def test_outputs_are_drawn_as_jupyterlab_would_and_html_is_sanitised():
    png = "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNkYPhfDwAChwGA60e6kgAAAABJRU5ErkJggg=="
    outputs = [{"output_type": "display_data", "data": {"image/png": png, "text/plain": "<Figure>"}},
               {"output_type": "execute_result", "data": {
                   "text/html": '<table onclick="x()"><tr><th>a</th></tr><tr><td>1</td></tr></table><script>x()</script>',
                   "text/plain": "   a\n0  1"}},
               {"output_type": "display_data", "data": {"text/markdown": "**done** <img src=x onerror=y()>"}},
               {"output_type": "stream", "name": "stdout", "text": "<b>as text</b>\n"}]
    drawn = to_xml(step_outputs({"outputs": [{"cell": 4, "outputs": outputs}], "files": ["url_checks/a.csv"]},
                                "/app/runs/k", "step2"))
    assert f'src="data:image/png;base64,{png}"' in drawn
    assert "<table><tbody><tr><th>a</th></tr><tr><td>1</td></tr></tbody></table>" in drawn
    assert "<script" not in drawn and "onclick" not in drawn and "<img src=x" not in drawn  # raw HTML: text at most
    assert "<strong>done</strong>" in drawn and "&lt;b&gt;as text&lt;/b&gt;" in drawn
    assert 'href="/app/runs/k/files/step2/0"' in drawn and "Download a.csv" in drawn


def test_a_table_cut_short_says_so():
    output = {"output_type": "execute_result", "metadata": {MIME: {"rows": 5000}}, "data": {MIME: {
        "schema": {"fields": [{"name": "n", "type": "integer"}]}, "data": [{"n": n} for n in range(60)]}}}
    drawn = to_xml(explorer(output, "step1-table0", "/app/runs/k/tables/step1/0"))
    assert "table has 5,000 rows: the run keeps the first 60," in drawn
    assert "1–50 of 60" in drawn


def test_a_failing_cell_is_named_in_the_steps_error(fork, env):
    failing = probe_notebook()
    failing.cells[3].source += "\nif MOOD == 'loud': raise ValueError('too loud')"
    nbformat.write(failing, fork / "notebooks" / "apps" / "failing.ipynb")
    with app_process(env, fork) as app, httpx.Client(base_url=app.url, headers=HX) as client:
        key = new_run(client, "notebook_failing")
        client.post(f"/notebook_failing/runs/{key}/steps/step1", data={"TEXT": "a", "TIMES": "1", "MOOD": "loud"})
        def failed():
            page = html.unescape(client.get("/notebook_failing").text)
            return page if "failed:" in page else None
        page = wait_for(failed, 60)
        assert "Cell 4 (“said = TEXT * TIMES”) failed: ValueError: too loud" in page


# --- the app, in a process of its own

def test_a_step_runs_in_a_kernel_with_its_inputs_as_data_and_revert_reruns_with_new_ones(fork, env):
    notebook = fork / "notebooks" / "apps" / "probe.ipynb"
    before = hashlib.sha256(notebook.read_bytes()).digest()
    injection = '"""); import os; os._exit(1) #'
    with app_process(env, fork) as app, httpx.Client(base_url=app.url, headers=HX) as client:
        page = client.get("/notebook_probe").text
        assert ">Probe</a>" in page  # in the menu, its first paragraph under the title as Markdown
        assert "A notebook for the <em>tests</em>, in <code>notebooks/apps/</code>." in page
        key = new_run(client, "notebook_probe")
        refused = client.post(f"/notebook_probe/runs/{key}/steps/step1", data={"TEXT": "x", "TIMES": "9", "MOOD": "calm"})
        assert refused.status_code == 422 and "Times must be between 1 and 5." in refused.text
        client.post(f"/notebook_probe/runs/{key}/steps/step1", data={"TEXT": injection, "TIMES": "1", "MOOD": "calm"})
        page = done(client, "notebook_probe", "step1")
        assert repr(injection) + " calm False" in html.unescape(page)  # the text as it was typed, a string
        client.post(f"/notebook_probe/runs/{key}/steps/step2", data={"WAIT": "0", "TAGS": "p\nq"})
        page = done(client, "notebook_probe", "step2")
        shown = page[page.index('<li id="step-step2"'):]
        assert "<strong>bold</strong>" in shown and "alert" not in shown  # through the chat's sanitiser
        assert "only in JupyterLab" not in page
        assert f"after {injection!r} ['p', 'q']" in html.unescape(page)
        download = client.get(f"/notebook_probe/runs/{key}/files/step2/0")
        assert download.text == injection and "probe.txt" in download.headers["content-disposition"]

        client.post(f"/notebook_probe/runs/{key}/steps/step1/revert")
        client.post(f"/notebook_probe/runs/{key}/steps/step1", data={"TEXT": "b", "TIMES": "2", "MOOD": "loud"})
        page = done(client, "notebook_probe", "step1")
        assert "'bb' loud False" in html.unescape(page) and "after '" not in html.unescape(page)  # step 2's are gone
        client.post(f"/notebook_probe/runs/{key}/steps/step2", data={"WAIT": "0", "TAGS": ""})
        assert "after 'bb' []" in html.unescape(done(client, "notebook_probe", "step2"))
    assert hashlib.sha256(notebook.read_bytes()).digest() == before
    assert "'hello\\nworldhello\\nworld' calm False" in run_notebook(notebook, PARAMETERS)  # and still runs headless


def test_cancel_frees_the_kernel_within_two_seconds_and_no_kernel_outlives_the_app(fork, env):
    with app_process(env, fork) as app, httpx.Client(base_url=app.url, headers=HX) as client:
        server = psutil.Process(app.pid)
        key = new_run(client, "notebook_probe")
        client.post(f"/notebook_probe/runs/{key}/steps/step1", data={"TEXT": "a", "TIMES": "1", "MOOD": "calm"})
        done(client, "notebook_probe", "step1")
        client.post(f"/notebook_probe/runs/{key}/steps/step2", data={"WAIT": "60", "TAGS": ""})
        wait_for(lambda: "time.sleep(WAIT)" in client.get("/notebook_probe").text)
        [kernel] = kernels(server)
        started = time.monotonic()
        client.post(f"/notebook_probe/runs/{key}/cancel")
        wait_for(lambda: ended(kernel), 5)
        assert time.monotonic() - started < 2
        page = client.get("/notebook_probe").text
        assert 'class="step open"' in page and 'class="problem"' not in page  # its form again, as cancelled

        client.post(f"/notebook_probe/runs/{key}/steps/step2", data={"WAIT": "60", "TAGS": ""})
        wait_for(lambda: "time.sleep(WAIT)" in client.get("/notebook_probe").text)
        left = kernels(server)
    assert len(left) == 1
    wait_for(lambda: all(map(ended, left)), 10)  # the app stopped with the step at work


def test_the_url_checker_notebook_gives_the_plugins_csv_and_resumes_after_a_kill(fork, env, site):
    urls = "\n".join(f"{site.url}{path}" for path in ("/", "/old", "/moved", "/loop-a", "/missing", "/error", "/slow"))
    settings = {"CONCURRENCY": "3", "TIMEOUT": "10"}
    with app_process(env, fork) as app, httpx.Client(base_url=app.url, headers=HX) as client:
        key = new_run(client, "notebook_url_checker")
        client.post(f"/notebook_url_checker/runs/{key}/steps/step1", data={"URLS": urls + f"\n{site.url}/held/1"})
        done(client, "notebook_url_checker", "step1")
        site.release.clear()
        client.post(f"/notebook_url_checker/runs/{key}/steps/step2", data=settings)
        wait_for(lambda: site.held_now == 1, 60)
        [kernel] = kernels(psutil.Process(app.pid))
        os.kill(app.pid, signal.SIGKILL)
        wait_for(lambda: ended(kernel), 10)  # the kernel sees its app gone, and ends
    with app_process(env, fork) as app, httpx.Client(base_url=app.url, headers=HX) as client:
        assert "Interrupted: the app stopped while this step was at work." in client.get("/notebook_url_checker").text
        site.release.set()
        client.post(f"/notebook_url_checker/runs/{key}/resume")
        page = done(client, "notebook_url_checker", "step2")
        assert "Download " in page and "1–8 of 8" in page  # the results: a table to explore
        table = f"/notebook_url_checker/runs/{key}/tables/step2/0"
        assert cells(client.get(table, params={"q": "MISSING"}).text, "url") == [f"{site.url}/missing"]
        assert cells(client.get(table, params={"sort": "c1", "desc": "1"}).text, "status")[:2] == ["500", "404"]
        notebook_csv = client.get(f"/notebook_url_checker/runs/{key}/files/step2/0").text
        plugin = new_run(client, "url_checker")
        client.post(f"/url_checker/runs/{plugin}/steps/urls", data={"text": urls + f"\n{site.url}/held/1"})
        client.post(f"/url_checker/runs/{plugin}/steps/check", data={"concurrency": "3", "timeout": "10"})
        wait_for(lambda: client.get(f"/url_checker/runs/{plugin}/csv").status_code == 200, 60)
        plugin_csv = client.get(f"/url_checker/runs/{plugin}/csv").text
    without_time = lambda text: [{k: v for k, v in row.items() if k != "seconds"} for row in csv.DictReader(io.StringIO(text))]
    assert without_time(notebook_csv) == without_time(plugin_csv) and len(without_time(plugin_csv)) == 8


@shipped("notebooks/apps/site_crawl.ipynb")
def test_the_site_crawl_notebook_is_an_app_too(fork, env, site):
    with app_process(env, fork) as app, httpx.Client(base_url=app.url, headers=HX) as client:
        key = new_run(client, "notebook_site_crawl")
        client.post(f"/notebook_site_crawl/runs/{key}/steps/step1", data={
            "START": f"{site.url}/", "SITEMAPS": "", "MAX_PAGES": "30", "MAX_DEPTH": "2", "DELAY": "0",
            "NAME": "local-site"})
        done(client, "notebook_site_crawl", "step1")
        client.post(f"/notebook_site_crawl/runs/{key}/steps/step2")
        page = done(client, "notebook_site_crawl", "step2")
        assert "Duplicate titles: 2" in page and "Redirect chains and loops: 5" in page  # as the notebook finds
        assert "Download local-site.csv" in page and "Download local-site.xlsx" in page


TABLE = """import pandas as pd
frame = pd.DataFrame({"name": [f"page {i:03}" for i in range(120)], "words": [i * 37 % 120 for i in range(120)],
                      "note": ["<script>alert(1)</script>" if i == 7 else "" for i in range(120)]})
frame"""


def cells(page: str, column: str) -> list[str]:
    "The values of a column in the rows drawn, as shown."
    return [html.unescape(value) for value in re.findall(rf'<td[^>]*data-label="{column}">([^<]*)</td>', page)]


def test_a_dataframe_is_a_table_to_sort_search_and_page_that_survives_a_restart(fork, env):
    nbformat.write(nbformat.v4.new_notebook(cells=[code(TABLE, "step: Show it")]), fork / "notebooks" / "apps" / "tables.ipynb")
    words = {f"page {i:03}": i * 37 % 120 for i in range(120)}
    with app_process(env, fork) as app, httpx.Client(base_url=app.url, headers=HX) as client:
        key = new_run(client, "notebook_tables")
        client.post(f"/notebook_tables/runs/{key}/steps/step1")
        page = done(client, "notebook_tables", "step1")
        assert "1–50 of 120" in page and cells(page, "name") == [f"page {i:03}" for i in range(50)]  # a page, not all
        assert "<script>alert(1)</script>" in cells(page, "note") and "<script>alert" not in page  # data, escaped
        table = f"/notebook_tables/runs/{key}/tables/step1/0"
        by_words = client.get(table, params={"sort": "c1", "desc": "1"}).text
        assert cells(by_words, "words")[:3] == ["119", "118", "117"]
        assert cells(client.get(table, params={"page": "3"}).text, "name") == [f"page {i:03}" for i in range(100, 120)]
        found = client.get(table, params={"q": "SCRIPT"}).text
        assert "1–1 of 1" in found and cells(found, "name") == ["page 007"]
    with app_process(env, fork) as app, httpx.Client(base_url=app.url, headers=HX) as client:
        download = client.get(f"{table}/csv", params={"q": "page 11", "sort": "c1", "desc": "0"})
        assert "table1.csv" in download.headers["content-disposition"]
        rows = list(csv.reader(io.StringIO(download.text)))
        in_order = sorted((name for name in words if name.startswith("page 11")), key=words.get)
        assert rows == [["name", "words", "note"]] + [[name, str(words[name]), ""] for name in in_order]
