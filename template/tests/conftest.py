"""Fixtures for the server tests (tests/test_server_*.py).

Every test runs on a throwaway database and log folder (DATA_DIR and LOG_DIR, which config.py reads), never on the
fork's own data/ and logs/. Servers started here listen on 127.0.0.1 on a free port and are stopped after the test.
The helpers the test modules share live here too; they import them with `from conftest import ...`.
"""

import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from contextlib import contextmanager
from pathlib import Path
from urllib.parse import urlsplit

import pytest

from fake_ollama import FakeLLM
from fake_ollama import running as running_in_thread

ROOT = Path(__file__).resolve().parent.parent
NOT_COPIED = shutil.ignore_patterns(".git", ".venv", "data", "logs", ".sesskey", ".jupyter-token", "botify_token.txt",
                                    "__pycache__", ".pytest_cache")
CHROMIUM = os.environ.get("CHROMIUM") or shutil.which("chromium") or "/usr/bin/chromium"
needs_chromium = pytest.mark.skipif(not Path(CHROMIUM).exists(), reason=f"no Chromium at {CHROMIUM} (set CHROMIUM)")


def not_shipped(*paths: str) -> str:
    "Why a test of these shipped plugins or notebooks is skipped in this fork, or '' when it has them all."
    gone = [path for path in paths if not (ROOT / path).exists()]
    return f"{' and '.join(gone)} is not in this fork, so the template's tests of it are skipped" if gone else ""


def shipped(*paths: str):
    "Marks the template's tests of plugins or notebooks it ships, which a fork may delete: then they are skipped."
    return pytest.mark.skipif(bool(not_shipped(*paths)), reason=not_shipped(*paths))


def pytest_configure(config):
    # Before any test module imports config.py, which reads them once.
    scratch = Path(tempfile.mkdtemp(prefix="fork-tests-"))
    config.add_cleanup(lambda: shutil.rmtree(scratch, ignore_errors=True))
    os.environ["DATA_DIR"], os.environ["LOG_DIR"] = str(scratch / "data"), str(scratch / "logs")


@pytest.fixture(scope="session")
def server():
    "The server module, imported once (it opens the database and loads the plugins)."
    sys.path.insert(0, str(ROOT))
    import server
    return server


@pytest.fixture
def client(server):
    "A TestClient on an empty database: the first request makes the Default profile, as on a first run."
    from starlette.testclient import TestClient

    for table in server.db.t: table.delete_where()
    return TestClient(server.app, base_url=f"http://127.0.0.1:{server.config.PORT}")  # a Host the app answers to


@pytest.fixture
def live(client):
    "The TestClient with its event loop kept running between requests, so background steps go on."
    with client: yield client


def wait_for(condition, timeout: float = 30):
    "condition()'s first true value, asked every 50 ms; fails after timeout seconds."
    deadline = time.monotonic() + timeout
    while not (result := condition()):
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.05)
    return result


def run_notebook(path: Path, parameters: str) -> str:
    "Runs a notebook headless with its parameters cell set to parameters; returns what it printed. Fails on an error."
    import nbformat
    from nbclient import NotebookClient

    notebook = nbformat.read(path, as_version=4)
    [cell] = [cell for cell in notebook.cells if "parameters" in cell.metadata.get("tags", [])]
    cell.source = parameters
    NotebookClient(notebook, timeout=120, resources={"metadata": {"path": str(path.parent)}}).execute()
    outputs = [o for cell in notebook.cells if cell.cell_type == "code" for o in cell.outputs]
    assert not [o for o in outputs if o.output_type == "error"]
    return "".join(o.get("text", "") for o in outputs)


@pytest.fixture
def data_env(tmp_path):
    "The environment for a process of its own, with its own empty data/ and logs/."
    return os.environ | {"DATA_DIR": str(tmp_path / "data"), "LOG_DIR": str(tmp_path / "logs")}


@pytest.fixture
def fork_copy(tmp_path):
    "A copy of this fork without its data, environment or secrets: a fork on its first run."
    return Path(shutil.copytree(ROOT, tmp_path / "fork", ignore=NOT_COPIED))


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextmanager
def running_process(command: list[str], cwd: Path, env: dict, port: int, timeout: float = 60):
    "Runs a server until the block ends; yields its process, with its base URL in .url, once it accepts connections."
    log = tempfile.TemporaryFile("w+")
    process = subprocess.Popen(command, cwd=cwd, env=env, stdout=log, stderr=subprocess.STDOUT,
                               start_new_session=True)
    try:
        deadline = time.monotonic() + timeout
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                if process.poll() is not None or time.monotonic() > deadline:
                    log.seek(0)
                    pytest.fail(f"{' '.join(command)} did not start:\n{log.read()}")
                time.sleep(0.2)
        process.url = f"http://127.0.0.1:{port}"
        yield process
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGTERM)
            process.wait(timeout=30)
        log.close()


@contextmanager
def running(command: list[str], cwd: Path, env: dict, port: int, timeout: float = 60):
    "Runs a server until the block ends; yields its base URL once it accepts connections."
    with running_process(command, cwd, env, port, timeout) as process:
        yield process.url


@contextmanager
def app_process(env: dict, cwd: Path = ROOT):
    "`python server.py` on a free port, with the default HOST: the way ./run starts the app. Yields its process."
    port = free_port()
    env = {key: value for key, value in env.items() if key != "HOST"} | {"PORT": str(port)}
    with running_process([sys.executable, "server.py"], cwd, env, port) as process:
        yield process


@contextmanager
def app_server(env: dict, cwd: Path = ROOT):
    "`python server.py` on a free port, with the default HOST: the way ./run starts the app. Yields its base URL."
    with app_process(env, cwd) as process:
        yield process.url


@contextmanager
def served(fake):
    "Serves a fake's ASGI app in a thread until the block ends; yields the fake with its base URL in fake.url."
    with running_in_thread(fake.app) as url:
        fake.url = url
        yield fake


@pytest.fixture
def fake():
    "A fake LLM server that speaks the Ollama and OpenAI protocols. The Botify tests' own `fake` is the Botify API."
    with served(FakeLLM()) as fake:
        yield fake


@pytest.fixture(scope="module")
def browser():
    "Headless Chromium under Playwright, kept from reaching out on its own (no background or update requests)."
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=CHROMIUM, args=["--headless", "--no-sandbox", "--disable-gpu",
                                            "--disable-background-networking", "--disable-component-update"])
        yield browser
        browser.close()


def record_requests(target):
    "Keeps the URL of every request a page or browser context makes in target.requested."
    target.requested = []
    target.on("request", lambda request: target.requested.append(request.url))


def record_errors(context):
    """Keeps what the pages of the browser context log to their console as errors, and what they throw, in
    context.errors as (text, URL); and the URLs of the requests the app refused with a message, in context.refusals."""
    context.errors, context.refusals = [], set()
    context.on("console", lambda message: message.type == "error"
               and context.errors.append((message.text, message.location["url"])))
    context.on("weberror", lambda error: context.errors.append((f"uncaught {error.error}", error.page.url)))
    context.on("response", lambda response: response.headers.get("hx-retarget") == "#message"
               and context.refusals.add(response.url))


def reported_errors(context) -> list[str]:
    """The errors the pages of the context reported. Chromium's note of a refused request's status is none: the app
    refused it on purpose (guard.refusal) and the page shows why. Any other failed load is one."""
    return [f"{text} ({url})" for text, url in context.errors
            if not (text.startswith("Failed to load resource: the server responded") and url in context.refusals)]


@contextmanager
def browser_context(browser, **options):
    """A browser context of its own, its requests kept in context.requested. The test fails if any of its pages
    reported an error: a page that works logs none."""
    context = browser.new_context(**options)
    record_requests(context)
    record_errors(context)
    try:
        yield context
        assert reported_errors(context) == [], "\n".join(reported_errors(context))
    finally:
        context.close()


@contextmanager
def page_at(browser, url: str, timeout: float = 10_000, **options):
    "A page in a browser context of its own (browser_context) at base URL url; its requests in page.context.requested."
    with browser_context(browser, base_url=url, **{"viewport": {"width": 1280, "height": 800}} | options) as context:
        page = context.new_page()
        page.set_default_timeout(timeout)
        yield page


AXE_CORE = "axe-core@4.14.1"


def axe_core_script() -> Path:
    """axe.min.js, from $AXE_CORE_JS or installed with npm once into a cache shared by every fork on this machine.
    The fork's tests run on their own (./run test, the fork's CI), so they fetch axe themselves; without npm they fail
    rather than skip, so an accessibility check cannot silently stop running."""
    if os.environ.get("AXE_CORE_JS"):
        return Path(os.environ["AXE_CORE_JS"])
    cache = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "fork-tests" / AXE_CORE
    script = cache / "node_modules/axe-core/axe.min.js"
    if not script.exists():
        if not shutil.which("npm"):
            pytest.fail(f"the accessibility checks need npm to install {AXE_CORE} (apt-get install npm), "
                        "or AXE_CORE_JS set to an axe.min.js")
        cache.parent.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(dir=cache.parent, prefix="staging-"))  # parallel workers: the first one wins
        subprocess.run(["npm", "install", "--no-save", "--no-audit", "--no-fund", "--prefix", str(staging), AXE_CORE],
                       check=True, capture_output=True, timeout=300)
        try:
            staging.rename(cache)
        except OSError:
            shutil.rmtree(staging, ignore_errors=True)
    return script


def assert_accessible(page):
    "Runs axe-core on the page as it is now; fails naming every critical or serious violation and where it is."
    if not page.evaluate("() => Boolean(window.axe)"):
        page.add_script_tag(path=axe_core_script())
    violations = page.evaluate("async () => (await axe.run(document)).violations")
    found = [f"{v['impact']}: {v['id']} ({v['help']}) at {[node['target'] for node in v['nodes']]}"
             for v in violations if v["impact"] in ("critical", "serious")]
    assert found == [], "\n".join(found)


def assert_only_local_requests(requested: list[str]):
    "Fails unless there were requests and every one of them went to 127.0.0.1."
    assert {urlsplit(url).hostname for url in requested} == {"127.0.0.1"}, requested


def save_screenshot(page, name: str, **options):
    "Saves a screenshot of the page as name in $SCREENSHOT_DIR (else in a temporary folder), for a person to look at."
    screenshots = Path(os.environ.get("SCREENSHOT_DIR") or tempfile.mkdtemp(prefix="screenshots-"))
    screenshots.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=screenshots / name, **options)
