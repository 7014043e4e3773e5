"""What every family of figures measures with: rounds in pairs, medians and the rows they make, processes and
servers on free ports, their CPU time and peak memory, and the machine's load average."""

import os
import re
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.parse
import urllib.request
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path


# --- Measuring in pairs

def pairs(baseline, subject, runs: int, warmups: int) -> tuple[list, list]:
    "Calls baseline() then subject(), warmups times unmeasured, then runs times; returns both lists of results."
    for _ in range(warmups): baseline(), subject()
    results = [(baseline(), subject()) for _ in range(runs)]
    return [b for b, _ in results], [s for _, s in results]


def timed(action, *args, **kwargs) -> float:
    started = time.perf_counter()
    action(*args, **kwargs)
    return time.perf_counter() - started


@dataclass
class Row:
    figure: str
    baseline: str
    baseline_value: str
    subject_value: str
    compared: str  # the median of the per-pair ratios or differences
    target: str
    met: bool | None  # None: no target to meet


def ratio(base: list, subject: list) -> float:
    "The median of the per-pair ratios, subject / baseline."
    return statistics.median(s / b for b, s in zip(base, subject))


def ratio_row(figure, baseline, base, subject, unit, target, limit, higher_is_better=False) -> Row:
    "A row comparing subject with base by the median ratio; limit None: no target."
    median = ratio(base, subject)
    met = None if limit is None else median >= limit if higher_is_better else median <= limit
    return Row(figure, baseline, unit(statistics.median(base)), unit(statistics.median(subject)), f"{median:.2f}x",
               target, met)


def percentile(values, n: int) -> float:
    return statistics.quantiles(values, n=100, method="inclusive")[n - 1]


def seconds(value): return f"{value:.2f} s"
def millis(value): return f"{value * 1000:.1f} ms"
def per_second(value): return f"{value:,.0f}/s"


# --- Processes

def run(command, **kwargs):
    return subprocess.run([str(part) for part in command], check=True, capture_output=True, text=True, **kwargs)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextmanager
def server(command, cwd: Path, env: dict):
    "A server on a free 127.0.0.1 port (its PORT variable) until the block ends; yields its process and base URL."
    port = free_port()
    log = tempfile.TemporaryFile("w+")
    process = subprocess.Popen([str(part) for part in command], cwd=cwd, env=env | {"PORT": str(port)},
                               stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        yield process, f"http://127.0.0.1:{port}"
    except Exception:
        log.seek(0)
        print(f"{' '.join(map(str, command))} said:\n{log.read()[-3000:]}", file=sys.stderr)
        raise
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGTERM)
            process.wait(30)
        log.close()


def wait_for_200(url: str, process, timeout: float = 60):
    "Polls url (following redirects) until it answers 200."
    deadline = time.monotonic() + timeout
    while True:
        try:
            with urllib.request.urlopen(url, timeout=5) as response:
                if response.status == 200: return
        except (ConnectionError, urllib.error.URLError):
            pass  # not listening yet
        if process.poll() is not None or time.monotonic() > deadline: raise RuntimeError(f"{url} never answered 200")
        time.sleep(0.005)


def wait_for_port(url: str, process, timeout: float = 60):
    "Waits until the server's port takes connections, asking for nothing."
    host, port = urllib.parse.urlsplit(url).hostname, urllib.parse.urlsplit(url).port
    deadline = time.monotonic() + timeout
    while True:
        try: return socket.create_connection((host, port), timeout=5).close()
        except ConnectionError: pass  # not listening yet
        if process.poll() is not None or time.monotonic() > deadline: raise RuntimeError(f"{url} never listened")
        time.sleep(0.005)


def ws_url(url: str) -> str:
    "The app's WebSocket, the one its pages open."
    return url.replace("http://", "ws://", 1) + "/ws"


def cpu_seconds(pid: int) -> float:
    "The CPU time the process has used so far, user and system."
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def peak_rss(pid: int) -> int:
    "The process's peak resident set size, in bytes."
    status = Path(f"/proc/{pid}/status").read_text()
    return int(re.search(r"VmHWM:\s+(\d+) kB", status)[1]) * 1024


def resident(pid: int) -> int:
    "The process's resident set size now, in bytes."
    return int(re.search(r"VmRSS:\s+(\d+) kB", Path(f"/proc/{pid}/status").read_text())[1]) * 1024


def load_average() -> float:
    "The machine's load average over the last minute: said with a figure, since the machine may be shared."
    return os.getloadavg()[0]


class Scratch:
    "Fresh folders in the bench's temporary directory."

    def __init__(self, root: Path): self.root, self.count = root, 0

    def __call__(self, name: str) -> Path:
        self.count += 1
        return self.root / f"{name}-{self.count}"
