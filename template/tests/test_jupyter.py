"""JupyterLab starts on localhost with a token, and refuses requests without it."""

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
        with urllib.request.urlopen(url, timeout=5) as response:
            return response.status
    except urllib.error.HTTPError as error:
        return error.code


@pytest.fixture(scope="module")
def jupyter(tmp_path_factory):
    port, token = free_port(), "test-token-0123456789"
    env = os.environ | {"JUPYTER_PORT": str(port), "JUPYTER_TOKEN": token,
                        "JUPYTER_RUNTIME_DIR": str(tmp_path_factory.mktemp("runtime"))}
    log = (tmp_path_factory.mktemp("log") / "jupyter.log").open("w+")
    process = subprocess.Popen([str(ROOT / "run"), "jupyter"], cwd=ROOT, env=env,
                               stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 90
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                if process.poll() is not None or time.monotonic() > deadline:
                    log.seek(0)
                    pytest.fail(f"JupyterLab did not start:\n{log.read()}")
                time.sleep(0.3)
        yield base, token
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGTERM)
            process.wait(timeout=30)


def test_api_answers_with_the_token(jupyter):
    base, token = jupyter
    assert status(f"{base}/api/status?token={token}") == 200


def test_api_refuses_without_the_token(jupyter):
    base, _ = jupyter
    assert status(f"{base}/api/status") == 403


def test_api_refuses_a_wrong_token(jupyter):
    base, _ = jupyter
    assert status(f"{base}/api/status?token=wrong") == 403


def test_listens_on_127_0_0_1_only(jupyter):
    # A server bound to 0.0.0.0 would also answer on 127.0.0.2; one bound to 127.0.0.1 does not.
    port = int(jupyter[0].rsplit(":", 1)[1])
    with pytest.raises(OSError):
        socket.create_connection(("127.0.0.2", port), timeout=1).close()
