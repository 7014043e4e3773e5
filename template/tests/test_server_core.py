"""The core's building blocks: the key-value store, schema migration, plugin discovery (the database connection:
test_server_database.py)."""

import json
import re
import sqlite3
import subprocess
import sys
from logging.handlers import RotatingFileHandler

import pytest

from conftest import ROOT, shipped


def test_store_is_a_dict_kept_in_sqlite(server, client):
    store = server.store
    store["model"] = "llama3.2"
    store["limits"] = {"history": 40, "on": True}
    assert store["model"] == "llama3.2" and store["limits"] == {"history": 40, "on": True}
    assert "model" in store and "missing" not in store
    assert store.get("missing", "default") == "default"
    assert sorted(store) == ["limits", "model"] and len(store) == 2
    store["model"] = "qwen2.5:7b"
    assert store["model"] == "qwen2.5:7b" and len(store) == 2
    del store["model"]
    assert "model" not in store and list(store) == ["limits"]
    with pytest.raises(KeyError):
        store["model"]
    with pytest.raises(KeyError):
        del store["model"]
    row = server.db.q("select value from store where key = 'limits'")[0]
    assert json.loads(row["value"]) == {"history": 40, "on": True}


@shipped("plugins/010_todos.py")
def test_a_database_of_the_previous_schema_is_migrated_without_losing_rows(server, tmp_path, data_env):
    # The todo table as it was before todos could be reordered: no priority column.
    db_path = tmp_path / "data" / server.config.DB_PATH.name
    db_path.parent.mkdir()
    with sqlite3.connect(db_path) as old:
        old.execute("CREATE TABLE profile (id INTEGER PRIMARY KEY, name TEXT)")
        old.execute("CREATE TABLE todo (id INTEGER PRIMARY KEY, title TEXT, done INTEGER, profile_id INTEGER)")
        old.execute("INSERT INTO profile VALUES (1, 'Default')")
        old.executemany("INSERT INTO todo VALUES (?, ?, ?, 1)", [(1, "Old one", 1), (2, "Old two", 0)])
    old.close()

    subprocess.run([sys.executable, "-c", "import server"], cwd=ROOT, env=data_env, check=True)

    with sqlite3.connect(db_path) as migrated:
        columns = [row[1] for row in migrated.execute("PRAGMA table_info(todo)")]
        rows = migrated.execute("SELECT id, title, done, profile_id FROM todo ORDER BY id").fetchall()
        tables = {row[0] for row in migrated.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
    migrated.close()
    assert "priority" in columns
    assert rows == [(1, "Old one", 1, 1), (2, "Old two", 0, 1)]
    assert {"profile", "store", "todo"} <= tables


def test_plugins_start_in_number_order_and_xx_files_are_skipped(server, tmp_path):
    from core.plugins import plugin_files
    for name in ("10_second.py", "9_first.py", "xx_switched_off.py", "helpers.py", "README.md", "200_third.py"):
        (tmp_path / name).write_text("")
    assert [path.name for path in plugin_files(tmp_path)] == ["9_first.py", "10_second.py", "200_third.py"]


@shipped("plugins/010_todos.py")
def test_the_todo_list_is_a_plugin(server):
    todos = server.PLUGINS["todos"]
    assert todos.display_name == "Todos" and todos.url() == "/todos"
    assert set(todos.tables) == {"todo"} and todos.tables["todo"] in server.SCOPED



@shipped("plugins/010_todos.py")
def test_one_log_line_per_request_or_action_without_what_people_type(server, client):
    log = server.config.LOG_DIR / "app.log"
    before = len(log.read_text())
    client.post("/todos", data={"title": "my private words"})
    client.get("/todos/999")
    written = log.read_text()[before:]
    # "2026-01-31 12:00:00,000 INFO POST /todos 200 3ms": the message after the date, time and level
    messages = [re.sub(r" \d+ms$", "", line.split(" ", 3)[3]) for line in written.splitlines()]
    assert re.fullmatch(r"todo \d+ added", messages[0])
    assert messages[1:] == ["POST /todos 200", "GET /todos/999 404"]
    assert "my private words" not in written


def test_logs_rotate(server):
    assert isinstance(server.log_file, RotatingFileHandler)
    assert server.log_file.maxBytes > 0 and server.log_file.backupCount > 0
