"""JupyterLab starts on localhost with a token, refuses requests without it, says where it is, and asks nothing of
the internet."""

import os
import shutil
import signal
import socket
import subprocess
import time
import urllib.error
import urllib.request
from pathlib import Path
from urllib.parse import urlsplit

import pytest

ROOT = Path(__file__).resolve().parent.parent
CHROMIUM = os.environ.get("CHROMIUM") or shutil.which("chromium") or "/usr/bin/chromium"
ON_THIS_MACHINE = {"127.0.0.1", "localhost", "::1"}
# Loaded by JupyterLab as a config file of the person's own (JUPYTER_CONFIG_DIR): notes every host name the server
# looks up, so that a test sees any request it would make off this machine.
NOTE_LOOKUPS = """
import socket
looked_up, getaddrinfo = open({path!r}, "a", buffering=1), socket.getaddrinfo
def noting_getaddrinfo(host, *args, **kwargs):
    looked_up.write(f"{{host}}\\n")
    return getaddrinfo(host, *args, **kwargs)
socket.getaddrinfo = noting_getaddrinfo
"""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def status(url: str, headers: dict | None = None) -> int:
    try:
        with urllib.request.urlopen(urllib.request.Request(url, headers=headers or {}), timeout=30) as response:
            return response.status
    except urllib.error.HTTPError as error:
        return error.code


def wait_for(condition, timeout: float = 90):
    deadline = time.monotonic() + timeout
    while not (result := condition()):
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.2)
    return result


class Jupyter:
    "`./run jupyter` on a free port, in a session of its own, with its terminal kept."

    def __init__(self, tmp: Path):
        self.port, self.token, self.lookups = free_port(), "test-token-0123456789", tmp / "lookups.txt"
        self.log = tmp / "logs" / "jupyter.log"
        (tmp / "config").mkdir()
        (tmp / "config" / "jupyter_server_config.py").write_text(NOTE_LOOKUPS.format(path=str(self.lookups)))
        env = os.environ | {"JUPYTER_PORT": str(self.port), "JUPYTER_TOKEN": self.token,
                            "JUPYTER_RUNTIME_DIR": str(tmp / "runtime"), "JUPYTER_CONFIG_DIR": str(tmp / "config"),
                            "LOG_DIR": str(tmp / "logs")}
        self.terminal = (tmp / "terminal.txt").open("w+")
        self.process = subprocess.Popen([str(ROOT / "run"), "jupyter", "--LabApp.expose_app_in_browser=True"],
                                        cwd=ROOT, env=env, stdout=self.terminal, stderr=subprocess.STDOUT,
                                        start_new_session=True)
        self.url = f"http://127.0.0.1:{self.port}"

    def output(self) -> str:
        self.terminal.seek(0)
        return self.terminal.read()

    def looked_up(self) -> set[str]:
        return set(self.lookups.read_text().split()) if self.lookups.exists() else set()

    def stop(self):
        if self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGTERM)
            self.process.wait(timeout=30)
        self.terminal.close()


@pytest.fixture(scope="module")
def jupyter(tmp_path_factory):
    jupyter = Jupyter(tmp_path_factory.mktemp("jupyter"))
    try:
        wait_for(lambda: "Ctrl-C stops it." in jupyter.output() or jupyter.process.poll() is not None)
        assert jupyter.process.poll() is None, f"JupyterLab did not start:\n{jupyter.output()}"
        yield jupyter
    finally:
        jupyter.stop()


def test_api_answers_with_the_token(jupyter):
    assert status(f"{jupyter.url}/api/status?token={jupyter.token}") == 200


def test_api_refuses_without_the_token(jupyter):
    assert status(f"{jupyter.url}/api/status") == 403


def test_api_refuses_a_wrong_token(jupyter):
    assert status(f"{jupyter.url}/api/status?token=wrong") == 403


def test_listens_on_127_0_0_1_only(jupyter):
    # A server bound to 0.0.0.0 would also answer on 127.0.0.2; one bound to 127.0.0.1 does not.
    with pytest.raises(OSError):
        socket.create_connection(("127.0.0.2", jupyter.port), timeout=1).close()


def test_the_terminal_ends_with_the_url_to_open_and_how_to_stop(jupyter):
    assert jupyter.output().endswith(
        f"JupyterLab: {jupyter.url}/lab/tree/notebooks?token={jupyter.token}\n"
        f"Ctrl-C stops it. Its messages go to {jupyter.log}.\n")


def test_a_port_in_use_is_one_line_naming_jupyter_port(jupyter):
    env = os.environ | {"JUPYTER_PORT": str(jupyter.port)}
    result = subprocess.run([str(ROOT / "run"), "jupyter"], cwd=ROOT, env=env, capture_output=True, text=True,
                            timeout=60)
    assert (result.returncode, result.stdout, result.stderr) == (1, "", (
        f"Port {jupyter.port} on 127.0.0.1 is in use (by another program, or another ./run): choose another with "
        f"JUPYTER_PORT, e.g. JUPYTER_PORT={jupyter.port + 1} ./run jupyter\n"))


def test_a_jupyterlab_that_cannot_start_says_why_on_the_terminal(tmp_path):
    (tmp_path / "jupyter_server_config.py").write_text("raise SystemExit('this config stops JupyterLab')\n")
    env = os.environ | {"JUPYTER_PORT": str(free_port()), "JUPYTER_CONFIG_DIR": str(tmp_path),
                        "LOG_DIR": str(tmp_path / "logs")}
    result = subprocess.run([str(ROOT / "run"), "jupyter"], cwd=ROOT, env=env, capture_output=True, text=True,
                            timeout=120)
    assert result.returncode == 1
    assert "JupyterLab stopped before it listened on 127.0.0.1:" in result.stderr
    assert "    this config stops JupyterLab\n" in result.stderr


@pytest.mark.skipif(not Path(CHROMIUM).exists(), reason=f"no Chromium at {CHROMIUM} (set CHROMIUM)")
def test_jupyterlab_asks_nothing_of_the_internet(jupyter):
    "No news, no update check, no extension lookups on PyPI: neither the page nor the server goes off 127.0.0.1."
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=[
            "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
            "--disable-component-update"])
        page = browser.new_page()
        page.set_default_timeout(90_000)  # JupyterLab's page is megabytes of scripts: slow on a loaded machine
        requested = []
        page.on("request", lambda request: requested.append(request.url))
        page.goto(f"{jupyter.url}/lab?token={jupyter.token}")
        page.wait_for_function("window.jupyterapp !== undefined")
        page.evaluate("window.jupyterapp.restored")
        # The plugin that asks "Would you like to get notified about official Jupyter news?", then fetches the news
        # and checks for updates through the server, is not even loaded.
        assert not page.evaluate("window.jupyterapp.hasPlugin('@jupyterlab/apputils-extension:announcements')")
        assert page.evaluate("window.jupyterapp.hasPlugin('@jupyterlab/apputils-extension:notification')")
        browser.close()
    assert {urlsplit(url).hostname for url in requested} == {"127.0.0.1"}, requested
    assert not [url for url in requested if "/lab/api/news" in url or "/lab/api/update" in url]
    # What the page no longer asks, the server would fetch from the internet (the news feed, PyPI): asked all the
    # same, it looks no host up.
    token = {"Authorization": f"token {jupyter.token}"}
    for path in ("/lab/api/news", "/lab/api/update", "/lab/api/extensions?query=jupyter&page=1&per_page=30"):
        assert status(jupyter.url + path, token) == 200, path
    assert jupyter.looked_up() - ON_THIS_MACHINE == set()
