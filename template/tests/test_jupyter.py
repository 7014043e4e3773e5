"""JupyterLab starts on localhost with a token, refuses requests without it, and says where it is, or why it
cannot start."""

import os
import signal
import socket
import subprocess
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def status(url: str) -> int:
    try:
        with urllib.request.urlopen(url, timeout=30) as response:
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
        self.port, self.token, self.log = free_port(), "test-token-0123456789", tmp / "logs" / "jupyter.log"
        env = os.environ | {"JUPYTER_PORT": str(self.port), "JUPYTER_TOKEN": self.token,
                            "JUPYTER_RUNTIME_DIR": str(tmp / "runtime"),
                            "LOG_DIR": str(tmp / "logs")}
        self.terminal = (tmp / "terminal.txt").open("w+")
        self.process = subprocess.Popen([str(ROOT / "run"), "jupyter"],
                                        cwd=ROOT, env=env, stdout=self.terminal, stderr=subprocess.STDOUT,
                                        start_new_session=True)
        self.url = f"http://127.0.0.1:{self.port}"

    def output(self) -> str:
        self.terminal.seek(0)
        return self.terminal.read()

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

