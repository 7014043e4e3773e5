"""scripts/new renders a flavour into a git repository, sets it up and starts it on localhost."""

import os
import signal
import socket
import subprocess
import time
import urllib.error
import urllib.request

import pytest

from template_tools import ROOT, git


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
    except OSError:
        return 0


def start_new(flavour, dest, env, url, log):
    """Run scripts/new until url answers; return the status; always stop what it started."""
    process = subprocess.Popen([str(ROOT / "scripts" / "new"), flavour, str(dest)], env=os.environ | env,
                               stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        deadline = time.monotonic() + 600
        while (code := status(url)) == 0:
            assert process.poll() is None and time.monotonic() < deadline, log.read_text()
            time.sleep(0.5)
        return code
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGTERM)
            process.wait(timeout=30)


def test_new_darwinix_starts_jupyterlab_with_its_token(tmp_path):
    port, token = free_port(), "a-test-token-for-new"
    log = tmp_path / "new.log"
    with log.open("w") as out:
        env = {"JUPYTER_PORT": str(port), "JUPYTER_TOKEN": token}
        assert start_new("darwinix", tmp_path / "x", env, f"http://127.0.0.1:{port}/api/status?token={token}", out) == 200
    assert status(f"http://127.0.0.1:{port}/api/status") == 0, "JupyterLab was left running"
    assert git(tmp_path / "x", "status", "--porcelain") == "", "the fork's first commit left files out"
    assert "Render darwinix" in git(tmp_path / "x", "log", "--oneline")


@pytest.mark.parametrize("flavour", ["pipulate", "botifython"])
def test_new_server_flavour_serves_its_app(flavour, tmp_path):
    port, jupyter_port = free_port(), free_port()
    log = tmp_path / "new.log"
    with log.open("w") as out:
        env = {"PORT": str(port), "JUPYTER_PORT": str(jupyter_port)}
        assert start_new(flavour, tmp_path / "x", env, f"http://127.0.0.1:{port}/", out) == 200
    assert git(tmp_path / "x", "status", "--porcelain") == ""


def test_new_without_arguments_prints_usage():
    result = subprocess.run([str(ROOT / "scripts" / "new")], capture_output=True, text=True)
    assert result.returncode == 2 and "Usage: scripts/new FLAVOUR DEST" in result.stderr
