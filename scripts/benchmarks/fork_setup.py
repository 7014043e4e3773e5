"""Set-up of a fresh fork: ./run setup (uv) against pip, both into a new venv with a warm cache."""

import os
import shutil
import statistics
import sys
import time
import tomllib
from pathlib import Path

from .measuring import Row, Scratch, pairs, ratio, run, seconds, timed
from .plan import Plan


def pip_setup_time(fork: Path, venv: Path) -> float:
    "What ./run setup installs, the pip way: the pyproject's dependencies and test extra, constrained by the lock."
    project = tomllib.loads((fork / "pyproject.toml").read_text())["project"]
    requirements = venv.parent / "requirements.txt"
    requirements.write_text("\n".join(project["dependencies"] + project["optional-dependencies"]["test"]))
    shutil.rmtree(venv, ignore_errors=True)
    started = time.perf_counter()
    run(["python3", "-m", "venv", venv])
    run([venv / "bin/python", "-m", "pip", "install", "--quiet", "--disable-pip-version-check",
         "-c", fork / "requirements.lock", "-r", requirements, "-r", fork / "requirements-local.txt"])
    return time.perf_counter() - started


def uv_setup_time(fork: Path) -> float:
    shutil.rmtree(fork / ".venv", ignore_errors=True)
    return timed(run, [fork / "run", "setup"], cwd=fork, env=os.environ | {"PYTHON": "python3"})  # pip's python


def setup_rows(plan: Plan, fork: Path, fresh: Scratch) -> list[Row]:
    print("fresh fork set-up, pip and uv ...", file=sys.stderr)
    pip_venv = fresh("pip") / ".venv"
    pip_venv.parent.mkdir()
    base, subject = pairs(lambda: pip_setup_time(fork, pip_venv), lambda: uv_setup_time(fork),
                          plan.setup_runs, plan.setup_warmups)
    shutil.rmtree(pip_venv.parent)
    uv_time = statistics.median(subject)
    return [Row("fresh fork set-up: venv + install, warm cache (`./run setup`, uv)", "pip, the same requirements",
                seconds(statistics.median(base)), seconds(uv_time), f"{ratio(base, subject):.2f}x", "≤ 30 s",
                uv_time <= 30)]
