"""What the app and ./run leave on the machine: files readable by the person alone, the Jupyter token in no log
and on no command line, and no listener left behind however `./run start` is stopped, or when it cannot start."""

import os
import signal
import socket
import stat
import subprocess
import tempfile
import time
from pathlib import Path

import httpx
import pytest

from conftest import ROOT, app_server, free_port, shipped, wait_for

pytestmark = shipped("plugins/010_todos.py")  # its writes go to the todo list

JUPYTER = "jupyter: true" in (ROOT / ".copier-answers.yml").read_text()
TOKEN = "test-token-not-for-any-log-0123456789"


def mode(path: Path) -> int: return stat.S_IMODE(path.stat().st_mode)


def first_run_env() -> dict:
    "The environment of a fork's first run: data/ and logs/ in the fork itself."
    return {key: value for key, value in os.environ.items() if key not in ("DATA_DIR", "LOG_DIR")}


def test_what_the_app_creates_is_readable_by_the_person_alone(fork_copy):
    with app_server(first_run_env(), cwd=fork_copy) as url:
        assert httpx.post(f"{url}/todos", data={"title": "private"}).status_code == 200
    created = [fork_copy / ".sesskey", *(fork_copy / "data").rglob("*"), *(fork_copy / "logs").rglob("*")]
    assert len(created) >= 5, created
    for path in [fork_copy / "data", fork_copy / "logs", *created]:
        assert mode(path) & 0o077 == 0, f"{path} is {oct(mode(path))}"


def test_wider_modes_left_by_an_older_version_are_narrowed_at_start(fork_copy):
    (fork_copy / "data").mkdir(mode=0o755)
    (fork_copy / "logs").mkdir(mode=0o755)
    (fork_copy / ".sesskey").write_text("an-older-key-0123456789abcdef")
    for path in (fork_copy / "data", fork_copy / "logs"): path.chmod(0o755)
    (fork_copy / ".sesskey").chmod(0o644)
    with app_server(first_run_env(), cwd=fork_copy):
        pass
    assert (mode(fork_copy / "data"), mode(fork_copy / "logs"), mode(fork_copy / ".sesskey")) == (0o700, 0o700, 0o600)


def test_narrowing_never_widens(server, tmp_path):
    "A read-only data/ stays read-only (the app then says so, rather than writing where it was told not to)."
    folder = tmp_path / "read-only"
    folder.mkdir(mode=0o555)
    folder.chmod(0o555)
    server.keep_private(folder)
    assert mode(folder) == 0o500


# --- ./run start: the app and JupyterLab, stopped together

def descendants(pid: int) -> list[int]:
    "The processes pid started, and theirs, and so on."
    parents = {}
    for stat_file in Path("/proc").glob("[0-9]*/stat"):
        try: parents[int(stat_file.parent.name)] = int(stat_file.read_text().rsplit(")", 1)[1].split()[1])
        except OSError: continue  # gone meanwhile
    found, new = [], [pid]
    while new:
        new = [child for child, parent in parents.items() if parent in new]
        found += new
    return found


def alive(pid: int) -> bool:
    try: return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError: return False


def listening(port: int) -> bool:
    try: socket.create_connection(("127.0.0.1", port), timeout=1).close()
    except OSError: return False
    return True


def cmdline(pid: int) -> str:
    try: return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
    except OSError: return ""  # a short-lived one (JupyterLab runs `npm prefix -g` as it starts) is gone already


class RunStart:
    "`./run start` in a session of its own (as a terminal runs it), on free ports, with throwaway data and logs."

    def __init__(self, tmp_path: Path):
        self.ports = {"PORT": free_port(), "JUPYTER_PORT": free_port()}
        self.logs, self.started = tmp_path / "logs", []
        env = os.environ | {name: str(port) for name, port in self.ports.items()} | {
            "DATA_DIR": str(tmp_path / "data"), "LOG_DIR": str(self.logs), "JUPYTER_TOKEN": TOKEN,
            "JUPYTER_RUNTIME_DIR": str(tmp_path / "runtime")}
        self.terminal = tempfile.TemporaryFile("w+")
        # SIGINT as a terminal leaves it (a test runner started in the background may have it ignored)
        self.process = subprocess.Popen([str(ROOT / "run"), "start"], cwd=ROOT, env=env, stdout=self.terminal,
                                        stderr=subprocess.STDOUT, start_new_session=True,
                                        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))

    def ready(self):
        "Waits until the app and JupyterLab both listen; notes the processes ./run started."
        deadline = time.monotonic() + 180
        while not all(map(listening, self.ports.values())):
            if self.process.poll() is not None or time.monotonic() > deadline:
                pytest.fail(f"./run start did not start both:\n{self.output()}")
            time.sleep(0.3)
        self.started = descendants(self.process.pid)
        (self.server,) = [pid for pid in self.started if cmdline(pid).endswith("server.py ")]
        (self.jupyter,) = [pid for pid in self.started if "jupyter-lab" in cmdline(pid)]

    def output(self) -> str:
        self.terminal.seek(0)
        return self.terminal.read()

    def stopped(self) -> bool:
        "Whether ./run ended within a minute, with nothing it started left alive or listening."
        try: self.process.wait(timeout=60)
        except subprocess.TimeoutExpired: return False
        return not any(map(alive, self.started)) and not any(map(listening, self.ports.values()))

    def kill(self):
        if self.process.poll() is None: os.killpg(self.process.pid, signal.SIGKILL)
        for pid in self.started:
            if alive(pid): os.kill(pid, signal.SIGKILL)
        self.terminal.close()


STOPS = {"Ctrl-C": lambda run: os.killpg(run.process.pid, signal.SIGINT),
         "SIGTERM to ./run": lambda run: os.kill(run.process.pid, signal.SIGTERM),
         "SIGTERM to the server": lambda run: os.kill(run.server, signal.SIGTERM),
         "the server killed": lambda run: os.kill(run.server, signal.SIGKILL)}
needs_jupyter = pytest.mark.skipif(not JUPYTER, reason="this fork runs no JupyterLab beside the app")


@pytest.fixture(scope="module")
def run_starts(tmp_path_factory):
    "A `./run start` for each test below, started all at once: JupyterLab takes seconds to start."
    runs = {case: RunStart(tmp_path_factory.mktemp("run")) for case in [*STOPS, "token"]}
    try:
        for run in runs.values(): run.ready()
        yield runs
    finally:
        for run in runs.values(): run.kill()


@needs_jupyter
@pytest.mark.parametrize("stop", STOPS)
def test_run_start_stopped_any_way_leaves_no_listener(run_starts, stop):
    run = run_starts[stop]
    assert httpx.get(f"http://127.0.0.1:{run.ports['PORT']}/todos").status_code == 200
    STOPS[stop](run)
    assert run.stopped(), f"left running: {[cmdline(pid) for pid in run.started if alive(pid)]}"


@needs_jupyter
def test_run_start_ends_with_what_runs_where_and_how_to_stop(run_starts):
    run = run_starts["token"]
    wait_for(lambda: "Ctrl-C stops both." in run.output())
    assert (f"App:        http://127.0.0.1:{run.ports['PORT']}\n"
            f"JupyterLab: http://127.0.0.1:{run.ports['JUPYTER_PORT']}/lab/tree/notebooks?token={TOKEN}\n"
            f"Ctrl-C stops both. JupyterLab's messages go to {run.logs}/jupyter.log.\n") in run.output()


@needs_jupyter
def test_the_jupyter_token_is_shown_on_the_terminal_only(run_starts):
    run = run_starts["token"]
    assert f"token={TOKEN}" in run.output()  # the URL to open
    assert TOKEN not in cmdline(run.jupyter)  # every user of the machine can read a command line
    log = run.logs / "jupyter.log"
    assert "ServerApp" in log.read_text() and mode(log) == 0o600
    os.kill(run.process.pid, signal.SIGTERM)
    assert run.stopped()
    assert TOKEN not in "".join(path.read_text() for path in run.logs.iterdir())


# --- ./run start that cannot start: a line saying why, a non-zero status, nothing left running

def start_to_the_end(tmp_path: Path, **env: str) -> subprocess.CompletedProcess:
    "`./run start` with free ports unless env says otherwise, run until it ends by itself."
    env = {"PORT": str(free_port()), "JUPYTER_PORT": str(free_port()), "LOG_DIR": str(tmp_path / "logs")} | env
    return subprocess.run([str(ROOT / "run"), "start"], cwd=ROOT, env=os.environ | env, capture_output=True,
                          text=True, timeout=180)


@pytest.fixture
def port_in_use():
    "A port in use, and the next one too: the port ./run suggests instead must be one that is free."
    while True:
        with socket.create_server(("127.0.0.1", 0)) as listener:
            try:
                with socket.create_server(("127.0.0.1", listener.getsockname()[1] + 1)):
                    yield listener.getsockname()[1]
                    return
            except OSError:
                continue


@pytest.mark.parametrize("variable", ["PORT", pytest.param("JUPYTER_PORT", marks=needs_jupyter)])
def test_a_port_in_use_is_one_line_naming_its_variable(variable, port_in_use, tmp_path):
    result = start_to_the_end(tmp_path, **{variable: str(port_in_use)})
    assert (result.returncode, result.stdout, result.stderr) == (1, "", (
        f"Port {port_in_use} on 127.0.0.1 is in use (by another program, or another ./run): choose another with "
        f"{variable}, e.g. {variable}={port_in_use + 2} ./run start\n"))


@needs_jupyter
def test_a_jupyterlab_that_cannot_start_stops_the_app_saying_why(tmp_path):
    (tmp_path / "config").mkdir()
    (tmp_path / "config" / "jupyter_server_config.py").write_text("raise SystemExit('this config stops JupyterLab')\n")
    port, jupyter_port = free_port(), free_port()
    result = start_to_the_end(tmp_path, PORT=str(port), JUPYTER_PORT=str(jupyter_port),
                              JUPYTER_CONFIG_DIR=str(tmp_path / "config"))
    assert result.returncode == 1
    log = tmp_path / "logs" / "jupyter.log"
    assert (f"JupyterLab stopped before it listened on 127.0.0.1:{jupyter_port}. The end of {log}:\n"
            "    this config stops JupyterLab\n"
            "The app stops too: ./run start runs both or neither. ./run app serves the app alone.\n") in result.stderr
    assert "Application shutdown complete." in result.stderr and not listening(port)
