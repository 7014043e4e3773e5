"""The database layer (database.py): writers that wait their turn, write transactions that take the lock first, and
faults (a full disk, a read-only or vanished data folder, a lock held too long) answered with a sentence that names
the path and says what to do, saving nothing."""

import os
import re
import shutil
import subprocess
import sys
import threading
import time

import apsw
import httpx
import pytest

from conftest import ROOT, app_server, shipped

HX = {"HX-Request": "true"}
through_the_todos = shipped("plugins/010_todos.py")  # the tests that write todos, as a person would


def todo_count(server) -> int:
    return server.db.execute("SELECT count(*) FROM todo").fetchone()[0]


@pytest.fixture
def other(server):
    "A second connection to the app's database, as a notebook or a script has."
    connection = apsw.Connection(str(server.config.DB_PATH))
    yield connection
    if connection.in_transaction: connection.execute("ROLLBACK")
    connection.close()


@through_the_todos
def test_every_connection_uses_wal_and_waits_for_a_writer_to_finish(server, client, other):
    for connection in (server.db.conn, other):  # any connection the process opens, not only the app's own
        assert connection.pragma("journal_mode") == "wal" and connection.pragma("synchronous") == 1  # NORMAL
    other.execute("BEGIN IMMEDIATE")
    threading.Timer(0.5, lambda: other.execute("COMMIT")).start()
    started = time.monotonic()
    assert client.post("/todos", data={"title": "After the notebook"}, headers=HX).status_code == 200
    assert time.monotonic() - started >= 0.4 and todo_count(server) == 1


@through_the_todos
def test_a_transaction_that_reads_then_writes_never_fails_while_others_write(server, client, other):
    # A deferred transaction (BEGIN, or apsw's `with connection:`) that reads, then writes after another
    # connection committed, fails at once with SQLITE_BUSY_SNAPSHOT; db.transaction() takes the write lock first.
    server.db.execute("CREATE TABLE IF NOT EXISTS counter (n INTEGER)")
    server.db.execute("DELETE FROM counter")
    server.db.execute("INSERT INTO counter VALUES (0)")
    stop = threading.Event()

    def write_meanwhile():
        while not stop.is_set():
            other.execute("INSERT INTO todo (title, done, priority, profile_id) VALUES ('x', 0, 0, 9)")

    writer = threading.Thread(target=write_meanwhile)
    writer.start()
    try:
        for _ in range(50):
            with server.db.transaction():
                (n,) = server.db.execute("SELECT n FROM counter").fetchone()
                time.sleep(0.002)  # the other connection commits meanwhile, if it can
                server.db.execute("UPDATE counter SET n = ?", [n + 1])
    finally:
        stop.set()
        writer.join()
    assert server.db.execute("SELECT n FROM counter").fetchone()[0] == 50


@through_the_todos
def test_a_lock_held_without_writes_is_a_message_naming_the_database(server, client, other, monkeypatch):
    from core import database

    monkeypatch.setattr(database, "LOCK_TIMEOUT", 0.3)
    other.execute("BEGIN IMMEDIATE")  # a notebook that left its transaction open
    answer = client.post("/todos", data={"title": "Blocked"}, headers=HX)
    assert answer.status_code == 503 and answer.headers["HX-Retarget"] == "#message"
    assert f"The database {server.config.DB_PATH} is locked" in answer.text and "transaction open" in answer.text
    other.execute("ROLLBACK")
    assert todo_count(server) == 0


@through_the_todos
def test_a_full_disk_is_a_message_and_the_write_saves_nothing(server, client):
    client.get("/todos")
    pages = server.db.conn.pragma("page_count")
    server.db.conn.pragma("max_page_count", pages)  # what SQLite does on a full disk: SQLITE_FULL, FullError
    try:
        with pytest.raises(apsw.FullError):  # fill every page, so the next todo needs a new one
            while True: server.db.execute("INSERT INTO todo (title, done, priority, profile_id) VALUES (?, 0, 0, 99)",
                                          ["Filler " * 100])
        before = todo_count(server)
        answer = client.post("/todos", data={"title": "Filler " * 100}, headers=HX)
        assert answer.status_code == 507 and answer.headers["HX-Retarget"] == "#message"
        assert f"The disk that holds {server.config.DB_PATH} is full, so nothing was saved" in answer.text
        assert todo_count(server) == before
    finally:
        server.db.conn.pragma("max_page_count", 2 ** 30)
    assert client.post("/todos", data={"title": "Space again"}, headers=HX).status_code == 200


@through_the_todos
def test_a_write_whose_chat_note_fails_saves_nothing(server, client, monkeypatch):
    def full(profile_id, text, comment=False): raise apsw.FullError("database or disk is full")

    monkeypatch.setattr(server, "LISTENERS", [full])  # the todo is saved, then its note is not: both go
    answer = client.post("/todos", data={"title": "Half saved?"}, headers=HX)
    assert answer.status_code == 507 and "nothing was saved" in answer.text
    assert todo_count(server) == 0


@through_the_todos
def test_a_note_is_told_to_the_pages_once_its_change_is_saved_and_never_if_it_is_not(server, client, monkeypatch):
    told = []

    def listener(profile_id, text, comment=False):
        async def tell(): told.append(text)
        return tell()

    def full(profile_id, text, comment=False): raise apsw.FullError("database or disk is full")

    monkeypatch.setattr(server, "LISTENERS", [listener, full])
    assert client.post("/todos", data={"title": "Lost"}, headers=HX).status_code == 507
    monkeypatch.setattr(server, "LISTENERS", [listener])
    assert client.post("/todos", data={"title": "Kept"}, headers=HX).status_code == 200
    deadline = time.monotonic() + 5
    while not told and time.monotonic() < deadline: time.sleep(0.01)
    assert told == ["Added the todo: Kept"]


def start_failure(env: dict) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "server.py"], cwd=ROOT, env=env, capture_output=True, text=True, timeout=60)


def read_only(folder):
    """The folder made read-only for this process: by its mode, or for root (whom modes do not stop) by a
    read-only bind mount in a mount namespace of the process's own."""
    if os.geteuid() != 0:
        folder.chmod(0o500)
        return []
    return ["unshare", "--mount", "sh", "-c", f'mount --bind -o ro "{folder}" "{folder}" && exec "$0" "$@"']


@pytest.mark.parametrize("fault", ["read-only", "missing"])
def test_a_data_folder_the_app_cannot_write_stops_the_start_with_a_message(fault, data_env, tmp_path):
    data = tmp_path / "data"
    if fault == "read-only":
        data.mkdir()
        wrapper = read_only(data)
        result = subprocess.run([*wrapper, sys.executable, "server.py"], cwd=ROOT, env=data_env, capture_output=True,
                                text=True, timeout=60)
        data.chmod(0o700)
    else:
        (tmp_path / "a file").write_text("not a folder")
        result = start_failure(data_env | {"DATA_DIR": str(tmp_path / "a file" / "data")})
        data = tmp_path / "a file" / "data"
    assert result.returncode == 1
    assert "Traceback" not in result.stderr, result.stderr
    assert f"cannot start. The data folder {data}" in result.stderr
    assert "or set DATA_DIR to one" in result.stderr


@through_the_todos
def test_a_database_deleted_under_the_running_app_is_a_message_on_the_page(data_env):
    with app_server(data_env) as url, httpx.Client(base_url=url) as client:
        assert client.get("/todos").status_code == 200
        shutil.rmtree(data_env["DATA_DIR"])
        page = client.get("/todos")
        assert page.status_code == 503 and "<h1>The app cannot go on</h1>" in page.text
        assert "was deleted or moved while the app was running" in page.text and data_env["DATA_DIR"] in page.text
        added = client.post("/todos", data={"title": "Into the void"}, headers=HX)
        assert added.status_code == 503 and "restart the app" in added.text
