"""What the app leaves on the machine: files readable by the person alone."""

import os
import stat
from pathlib import Path

import httpx

from conftest import app_server


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
