"""Forks never lose work through `./run update`. A copy of the template gets a release history: an untagged commit,
v0.1.0, v0.2.0 (edits, a new file, renames, a changed plugin and licence, a line appended to .gitignore), a commit
between releases, v0.3.0 (a second edit, a deleted file) and a commit past it. Forks of every flavour, customised
in every way a fork may be, take it: skipping a release, through renames and deletions of files they changed or
left alone, conflicts, answer changes, migrations, and from every state a fork's release can be in. Each test
checks the exit code, the message, and that every change of the fork's is still somewhere a person finds it.

The darwinix and botifython forks run their whole test suite after their update (botifython has every module
pipulate has); the others update with --no-test, which merges without testing, and run only the tests that
concern them, to keep this module fast."""

import json
import os
import re
import sqlite3
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import pytest
import yaml
from pathspec import PathSpec

from template_tools import (COMMITTER, FLAVOURS, QUESTIONS, SUITE_AFTER_UPDATE, commit_all, git, render,
                            snapshot)

UPSTREAM_2, UPSTREAM_3 = "Upstream change in 0.2.0", "Upstream change in 0.3.0"
NEWEST = "v0.3.0"
# The forks' ./run setup takes uv from the template's own tools when it is not on PATH already.
ENV = os.environ | {"PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"}
FORK_OWNED = PathSpec.from_lines("gitignore", QUESTIONS["_skip_if_exists"])


def run(fork: Path, *args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([str(fork / "run"), *args], cwd=fork, env=env or ENV, capture_output=True, text=True,
                          timeout=1800)


def insert_after_first_line(path: Path, line: str) -> None:
    first, rest = path.read_text().split("\n", 1)
    path.write_text(f"{first}\n{line}\n{rest}")


def append(path: Path, text: str) -> None:
    path.write_text(path.read_text() + text)


def substitute(path: Path, pattern: str, replacement: str) -> None:
    text, count = re.subn(pattern, replacement, path.read_text(), flags=re.MULTILINE)
    assert count == 1, f"{pattern!r} should occur once in {path}"
    path.write_text(text)


def rename(repo: Path, old: str, new: str, *referring: str) -> None:
    """Renames a template file and every mention of its name in the files that refer to it."""
    (repo / new).write_bytes((repo / old).read_bytes())
    (repo / old).unlink()
    for path in referring:
        text = (repo / path).read_text()
        assert Path(old).name in text, f"{path} does not mention {old}"
        (repo / path).write_text(text.replace(Path(old).name, Path(new).name))


def answers(fork: Path) -> dict:
    return yaml.safe_load((fork / ".copier-answers.yml").read_text())


def visible_files(repo: Path) -> dict[str, bytes]:
    """Every file git sees in the working tree (tracked or untracked, not ignored), with its content."""
    names = git(repo, "ls-files", "-z", "--cached", "--others", "--exclude-standard").split("\0")
    return {name: (repo / name).read_bytes() for name in names if name and (repo / name).is_file()}


def rendered_files(root: Path) -> dict[str, bytes]:
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in root.rglob("*") if p.is_file()}


def fork_python(fork: Path, code: str) -> str:
    return subprocess.run([str(fork / ".venv/bin/python"), "-c", code], cwd=fork, capture_output=True, text=True,
                          check=True).stdout.strip()


def unmerged(fork: Path) -> list[str]:
    return sorted({line.split("\t")[1] for line in git(fork, "ls-files", "--unmerged").splitlines()})


def describe(repo: Path, ref: str = "HEAD") -> str:
    return git(repo, "describe", "--tags", "--always", ref).strip()


def release(repo: Path, version: str) -> None:
    commit_all(repo, f"Release {version}")
    git(repo, "tag", f"v{version}")


@pytest.fixture(scope="session")
def template(tmp_path_factory):
    """The template with a history: untagged, v0.1.0, v0.2.0, between, v0.3.0, past (commit names as a fork
    records them)."""
    repo = snapshot(tmp_path_factory.mktemp("template"))
    history = SimpleNamespace(repo=repo, untagged=describe(repo))
    append(repo / "CHANGELOG.md", "\nThe first release.\n")
    release(repo, "0.1.0")

    rendered = repo / "template"
    for edited in ["run.jinja", "flake.nix.jinja", "server.py", "plugins/020_url_checker.py"]:
        insert_after_first_line(rendered / edited, f"# {UPSTREAM_2}.")
    insert_after_first_line(rendered / "README.md.jinja", f"\n{UPSTREAM_2}: a new paragraph.")
    append(rendered / "LICENSE.jinja", f"\n{UPSTREAM_2}.\n")
    append(rendered / ".gitignore", f"# {UPSTREAM_2}: editor backups\n*.bak\n")
    (rendered / "CONTRIBUTING.md").write_text(f"# Contributing\n\n{UPSTREAM_2}: a new file.\n")
    substitute(rendered / "core/config.py.jinja", r'("chat_history_limit": )\d+', r"\g<1>60")
    python = QUESTIONS["python_version"]
    history.other_python = next(version for version in python["choices"] if version != python["default"])
    substitute(repo / "copier.yml", r'(^python_version:\n(?:  .*\n)*?  default: )"[\d.]+"',
               rf'\g<1>"{history.other_python}"')
    insert_after_first_line(rendered / "static/app.css", f"/* {UPSTREAM_2}. */")
    rename(repo, "template/static/app.css", "template/static/theme.css", "template/core/layout.py",
           "template/tests/test_server_routes.py")
    rename(repo, "template/tests/test_jupyter.py", "template/tests/test_jupyterlab.py", "copier.yml")
    release(repo, "0.2.0")

    append(repo / "CHANGELOG.md", "\nWork after 0.2.0.\n")
    commit_all(repo, "Work between releases")
    history.between = describe(repo)

    (rendered / ".pre-commit-config.yaml").unlink()
    insert_after_first_line(rendered / "run.jinja", f"# {UPSTREAM_3}.")
    release(repo, "0.3.0")

    append(repo / "CHANGELOG.md", "\nWork after 0.3.0.\n")
    commit_all(repo, "Work after the newest release")
    history.past = describe(repo)
    return history


def fork_of(template, path: Path, ref: str, **answers) -> Path:
    fork = render(path, src=template.repo, vcs_ref=ref, **answers)
    commit_all(fork, "Render from the template")
    return fork


# --- A customised fork of every flavour takes two releases at once, and then its whole test suite passes ---------


def customise(fork: Path) -> dict[str, str]:
    """Makes every kind of change a fork may make in its own files; returns them, path -> content."""
    mine = {}

    def write(path: str, text: str) -> None:
        (fork / path).parent.mkdir(parents=True, exist_ok=True)
        (fork / path).write_text(text)
        mine[path] = text

    # 1. Its own plugin (or notebook, without a server) and its own tests.
    if (fork / "server.py").exists():
        write("plugins/500_acme.py", ACME_PLUGIN)
        write("tests/test_acme.py", ACME_TEST + ACME_SERVER_TEST)
        # 2. Its own settings and system prompt.
        write("settings.toml", (fork / "settings.toml").read_text() + 'name = "Acme Bench"\naccent = "#8e24aa"\n')
        write("prompts/system.md", "You are Acme's assistant. Answer in one sentence.\n")
    else:
        write("notebooks/acme.ipynb", json.dumps(ACME_NOTEBOOK, indent=1) + "\n")
        write("tests/test_acme.py", ACME_TEST)
    # 3. Extra Python requirements, a version that wins over the lock, and Nix packages, through the extension points.
    write("requirements-local.txt", (fork / "requirements-local.txt").read_text() + "tabulate\n")
    write("requirements-override.txt", (fork / "requirements-override.txt").read_text() + f"idna=={OVERRIDDEN_IDNA}\n")
    write("local.nix", ACME_LOCAL_NIX)
    return mine


ACME_PLUGIN = '''"""Acme's own app: a plugin the template does not ship, so template updates never touch it."""

from fasthtml.common import *

NAME = "acme"
DISPLAY_NAME = "Acme"


def setup(plugin):
    @plugin.page
    def view():
        return H2("Acme's own app")
'''
ACME_TEST = '''"""Acme's own tests, one with the package Acme added in requirements-local.txt."""

from tabulate import tabulate


def test_tabulate_from_requirements_local():
    assert "Acme" in tabulate([["Acme", 1]])
'''
ACME_SERVER_TEST = '''

def test_acme_app_is_loaded(server):
    assert server.PLUGINS["acme"].display_name == "Acme"
'''
ACME_NOTEBOOK = {"cells": [{"cell_type": "markdown", "id": "acme", "metadata": {}, "source": "# Acme's notebook"}],
                 "metadata": {}, "nbformat": 4, "nbformat_minor": 5}
ACME_LOCAL_NIX = """{ pkgs }:
{
  packages = [ pkgs.sqlite ];
  shellHook = ''export ACME_SHELL=1'';
}
"""
ACME_README = "\n## Acme's notes\n\nOur own section at the end of a template-owned file.\n"
NEVER_TOUCHED = {"data/acme.csv": "id,name\n1,Acme\n", "logs/acme-old.log": "an old log line\n",
                 ".jupyter-token": "acme-token-0123456789\n", ".sesskey": "acme-session-key\n",
                 "botify_token.txt": "acme-botify-token\n"}
OVERRIDDEN_IDNA = "3.10"  # requirements.lock pins another version
SHIPPED_PLUGIN = "plugins/020_url_checker.py"


@pytest.fixture(scope="module", params=[pytest.param(flavour, marks=pytest.mark.fork_suite)
                                        if flavour in SUITE_AFTER_UPDATE else flavour for flavour in FLAVOURS])
def updated(request, template, tmp_path_factory):
    """A fork rendered from v0.1.0, customised and committed, then `./run update` to v0.3.0; then the update
    committed and `./run update` once more."""
    fork = fork_of(template, tmp_path_factory.mktemp(request.param) / "fork", "v0.1.0", flavour=request.param)
    has_server = (fork / "server.py").exists()
    mine = customise(fork)
    # 4. An edit in a template-owned file, away from the lines the template changes.
    append(fork / "README.md", ACME_README)
    # 5. Template files deleted: the licence, and a shipped plugin (the template changes both in v0.2.0).
    deleted = ["LICENSE", *([SHIPPED_PLUGIN] if has_server else [])]
    for path in deleted:
        (fork / path).unlink()
    # 6. Data and secrets, which git ignores.
    for path, text in NEVER_TOUCHED.items():
        (fork / path).parent.mkdir(exist_ok=True)
        (fork / path).write_text(text)
    untouched = {path: (fork / path).stat().st_mtime_ns for path in NEVER_TOUCHED}
    commit_all(fork, "Customise")
    head = git(fork, "rev-parse", "HEAD")
    # Botifython has every module pipulate has: pipulate's fork updates with --no-test, then runs its own tests and
    # the template's tests of the plugin it deleted (its whole suite runs on a fresh render, in test_forks.py).
    whole_suite = request.param in SUITE_AFTER_UPDATE
    result = run(fork, "update") if whole_suite else run(fork, "update", "--no-test")
    tests = result if whole_suite else run(fork, "test", "tests/test_acme.py", "tests/test_server_workflows.py")
    status = git(fork, "status", "--porcelain")
    commit_all(fork, "Update from the template")
    return SimpleNamespace(fork=fork, mine=mine, untouched=untouched, head=head, result=result, tests=tests,
                           whole_suite=whole_suite, status=status, deleted=deleted, has_server=has_server,
                           again=run(fork, "update"))


def test_update_merges_two_releases_at_once_and_the_fork_tests_pass(updated):
    assert updated.result.returncode == 0, updated.result.stdout[-5000:] + updated.result.stderr[-5000:]
    assert f"Updating from template v0.1.0 to {NEWEST}." in updated.result.stderr
    assert (f"Updated to template {NEWEST}. Nothing is committed" if updated.whole_suite else
            f"Merged template {NEWEST} without running the tests (--no-test)") in updated.result.stderr
    assert updated.tests.returncode == 0, updated.tests.stdout[-5000:]
    assert " passed" in updated.tests.stdout.splitlines()[-1]
    # Without --trust: the template has a migration, but this update does not cross its version.
    assert QUESTIONS["_migrations"] and "--trust" not in updated.result.stderr


def test_update_leaves_no_conflicts(updated):
    assert "conflict" not in updated.result.stderr
    files = visible_files(updated.fork)
    assert not [name for name in files if name.endswith((".rej", ".orig"))]
    assert not [name for name, content in files.items() if re.search(rb"^(<<<<<<<|>>>>>>>) ", content, re.M)]


def test_fork_owned_files_are_kept(updated):
    assert {path: (updated.fork / path).read_text() for path in updated.mine} == updated.mine


def test_edit_in_a_template_owned_file_is_merged(updated):
    readme = (updated.fork / "README.md").read_text()
    assert readme.endswith(ACME_README)
    assert f"{UPSTREAM_2}: a new paragraph." in readme


def test_changes_of_both_releases_arrive(updated):
    fork = updated.fork
    assert f"# {UPSTREAM_3}.\n# {UPSTREAM_2}." in (fork / "run").read_text()  # each inserted after the first line
    edited = ["flake.nix", *(["server.py"] if updated.has_server else [])]
    assert [name for name in edited if f"# {UPSTREAM_2}." not in (fork / name).read_text()] == []
    assert (fork / "CONTRIBUTING.md").read_text().endswith(f"{UPSTREAM_2}: a new file.\n")
    # A changed question default does not change an answer the fork has already given.
    assert answers(fork)["python_version"] == QUESTIONS["python_version"]["default"]
    if updated.has_server:  # A changed setting default arrives, under the fork's own settings.
        settings = json.loads(fork_python(fork, "import json; from core import config; print(json.dumps(config.SETTINGS))"))
        assert (settings["name"], settings["accent"], settings["chat_history_limit"]) == ("Acme Bench", "#8e24aa", 60)


def test_files_the_fork_left_alone_follow_renames_and_deletions(updated):
    fork = updated.fork
    assert (fork / "tests/test_jupyterlab.py").exists() and not (fork / "tests/test_jupyter.py").exists()
    assert not (fork / ".pre-commit-config.yaml").exists()
    if updated.has_server:
        assert f"/* {UPSTREAM_2}. */" in (fork / "static/theme.css").read_text()
        assert not (fork / "static/app.css").exists()


def test_deleted_template_files_stay_deleted_and_the_skipped_changes_are_listed(updated):
    assert [path for path in updated.deleted if (updated.fork / path).exists()] == []
    assert "You deleted these template files, so this update's changes to them are not applied" in updated.result.stderr
    assert [path for path in updated.deleted if f"\n  {path}\n" not in updated.result.stderr] == []


def test_template_tests_of_a_deleted_plugin_and_only_those_are_skipped_with_the_reason(updated):
    reasons = set(re.findall(r"^SKIPPED \[\d+\] [^ ]+ (.*)$", updated.tests.stdout, re.M))
    deleted = f"{SHIPPED_PLUGIN} is not in this fork, so the template's tests of it are skipped"
    assert reasons == ({deleted} if updated.has_server else set())


def test_template_tests_of_a_deleted_notebook_are_skipped_with_the_reason(template, tmp_path):
    fork = fork_of(template, tmp_path / "fork", NEWEST, flavour="darwinix")
    (fork / "notebooks/data_starter.ipynb").unlink()
    result = run(fork, "test", "tests/test_data_stack.py")
    assert result.returncode == 0, result.stdout
    assert "1 passed, 1 skipped" in result.stdout.splitlines()[-1]
    assert "notebooks/data_starter.ipynb is not in this fork, so the template's tests of it are skipped" in result.stdout


def test_the_fork_override_wins_over_the_lock_pin(updated):
    lock = (updated.fork / "requirements.lock").read_text()
    assert re.search(r"^idna==(?!3\.10\b)", lock, re.M)
    assert fork_python(updated.fork, "import idna; print(idna.__version__)") == OVERRIDDEN_IDNA


def test_data_and_secrets_are_untouched(updated):
    fork = updated.fork
    assert {path: (fork / path).read_text() for path in NEVER_TOUCHED} == NEVER_TOUCHED
    assert {path: (fork / path).stat().st_mtime_ns for path in NEVER_TOUCHED} == updated.untouched


def test_update_is_left_uncommitted_for_review(updated):
    assert git(updated.fork, "rev-parse", "HEAD^") == updated.head
    assert updated.status.strip()


PAGE = """
import os, tempfile
os.environ["DATA_DIR"] = os.environ["LOG_DIR"] = tempfile.mkdtemp()  # not the fork's own data/
from starlette.testclient import TestClient
import server
print(TestClient(server.app, base_url="http://127.0.0.1").get("/").text)  # a Host the app answers to
"""


def test_fork_shows_the_new_template_version(updated):
    assert answers(updated.fork)["_commit"] == NEWEST
    if updated.has_server:  # in the page footer
        assert fork_python(updated.fork, "from core import config; print(config.TEMPLATE_VERSION)") == NEWEST
        assert NEWEST in fork_python(updated.fork, PAGE)


def test_an_update_with_nothing_new_says_so_and_runs_no_tests(updated):
    assert updated.again.returncode == 0, updated.again.stderr
    assert f"Nothing new: this fork is on template {NEWEST}, the newest release." in updated.again.stderr
    assert "passed" not in updated.again.stdout and "Updated" not in updated.again.stderr
    assert git(updated.fork, "status", "--porcelain") == ""


# --- A fork changed files the template renames or deletes, and appended where the template appends -------------


@pytest.fixture(scope="module")
def clashing(template, tmp_path_factory):
    """A pipulate fork of v0.1.0 that edited a file v0.2.0 renames and one v0.3.0 deletes, appended to .gitignore
    as v0.2.0 does, and deleted a file v0.2.0 renames; then `./run update --no-test`."""
    fork = fork_of(template, tmp_path_factory.mktemp("clashing") / "fork", "v0.1.0", flavour="pipulate")
    insert_after_first_line(fork / "static/app.css", "/* Acme's colours, where the template adds a line too. */")
    append(fork / "static/app.css", ACME_CSS)
    append(fork / ".pre-commit-config.yaml", ACME_HOOK)
    append(fork / ".gitignore", "# Acme's scratch files\n*.scratch\n")
    (fork / "tests/test_jupyter.py").unlink()
    commit_all(fork, "Customise")
    mine = {path: git(fork, "show", f"HEAD:{path}") for path in ("static/app.css", ".pre-commit-config.yaml")}
    return SimpleNamespace(fork=fork, mine=mine, result=run(fork, "update", "--no-test"))


ACME_CSS = "\n/* Acme's own rule */\n.acme { color: #8e24aa; }\n"
ACME_HOOK = """  - repo: local
    hooks:
      - id: acme-lint
        name: Acme's lint
        entry: "true"
        language: system
"""


def test_clashes_fail_the_update_before_the_tests(clashing):
    assert clashing.result.returncode == 1
    assert "passed" not in clashing.result.stdout
    assert "Then run ./run test and commit. To drop the update instead: git reset --hard && git clean -fd" \
           in clashing.result.stderr


def test_a_renamed_file_gets_the_fork_changes_merged_in(clashing):
    theme = (clashing.fork / "static/theme.css").read_text()
    assert ACME_CSS in theme and f"/* {UPSTREAM_2}. */" in theme  # both sides, one of them in a conflict block
    assert theme.count("<<<<<<< before updating") == 1 and "/* Acme's colours" in theme
    assert ("static/app.css -> static/theme.css: renamed by the template; your changes are merged into "
            "static/theme.css with 1 conflict block(s) to resolve. Check it, then git add static/theme.css.") \
        in clashing.result.stderr
    # The fork's version is in the index too (git checkout --ours), and the old name is gone.
    assert git(clashing.fork, "show", ":2:static/theme.css") == clashing.mine["static/app.css"]
    assert not (clashing.fork / "static/app.css").exists()


def test_a_deleted_file_the_fork_changed_is_kept_as_a_conflict(clashing):
    assert (clashing.fork / ".pre-commit-config.yaml").read_text() == clashing.mine[".pre-commit-config.yaml"]
    assert "UD .pre-commit-config.yaml" in git(clashing.fork, "status", "--porcelain")  # "deleted by them"
    assert (".pre-commit-config.yaml: deleted by the template; your version is kept here. git rm "
            ".pre-commit-config.yaml to follow the template, or git add .pre-commit-config.yaml to keep it as a file "
            "of your own.") in clashing.result.stderr


def test_both_sides_appending_to_a_file_is_a_conflict(clashing):
    gitignore = (clashing.fork / ".gitignore").read_text()
    assert re.search(r"<<<<<<< before updating\n# Acme's scratch files\n\*\.scratch\n=======\n"
                     rf"# {UPSTREAM_2}: editor backups\n\*\.bak\n>>>>>>> after updating\n", gitignore)
    assert "The update conflicts with your changes in these files:\n  .gitignore\n" in clashing.result.stderr


def test_a_file_the_fork_deleted_stays_deleted_under_its_new_name(clashing):
    assert not (clashing.fork / "tests/test_jupyter.py").exists()
    assert not (clashing.fork / "tests/test_jupyterlab.py").exists()
    assert "  tests/test_jupyter.py (renamed to tests/test_jupyterlab.py, which is left out too)\n" \
           in clashing.result.stderr


def test_every_clash_is_a_git_conflict_that_blocks_the_commit(clashing):
    assert unmerged(clashing.fork) == [".gitignore", ".pre-commit-config.yaml", "static/theme.css"]
    commit = subprocess.run(["git", "commit", "-m", "Update"], cwd=clashing.fork, capture_output=True, text=True)
    assert commit.returncode != 0 and "unmerged" in commit.stdout + commit.stderr


# --- Answers change -------------------------------------------------------------------------------------------


NOTES = "Acme runs Pipulate (pipulate) on port 5001 with Python {python}.\n"
ANSWER_CHANGES = {"project_slug": "seo-bench", "project_name": "SEO Bench", "app_port": "5050",
                  "python_version": "3.13", "flavour": "botifython"}


@pytest.mark.parametrize("name, value", ANSWER_CHANGES.items())
def test_an_answer_change_updates_the_template_files_keeps_the_data_and_names_old_mentions(template, tmp_path,
                                                                                           name, value):
    fork = fork_of(template, tmp_path / "fork", NEWEST, flavour="pipulate")
    old, notes = answers(fork)[name], NOTES.format(python=answers(fork)["python_version"])
    (fork / "NOTES.md").write_text(notes)
    commit_all(fork, "Notes")
    assert run(fork, "setup").returncode == 0
    database = fork_python(fork, "from core import config; print(config.DB_PATH)")
    Path(database).parent.mkdir()
    with sqlite3.connect(database) as db:
        db.execute("CREATE TABLE note (text)")
        db.execute("INSERT INTO note VALUES ('kept')")
    db.close()
    result = run(fork, "update", "--no-test", "-d", f"{name}={value}")
    assert result.returncode == 0, result.stderr
    assert f"Changing answers at template {NEWEST}, this fork's version." in result.stderr
    assert str(answers(fork)[name]) == value and answers(fork)["_commit"] == NEWEST
    # Every template-owned file is what the template renders with the new answer.
    fresh = rendered_files(render(tmp_path / "fresh", src=template.repo, vcs_ref=NEWEST,
                                  **{k: v for k, v in answers(fork).items() if not k.startswith("_")}))
    mine = visible_files(fork)
    assert [path for path in fresh if path != ".copier-answers.yml" and not FORK_OWNED.match_file(path)
            and mine.get(path) != fresh[path]] == []
    # The fork's own lines with the old value are named.
    assert f"These lines of yours still have the old {name}, {old!r}" in result.stderr
    assert f"  NOTES.md:1: {notes.strip()}\n" in result.stderr
    # The app keeps its data.
    assert fork_python(fork, "from core import config; print(config.DB_PATH)") == database == str(fork / "data/app.db")
    with sqlite3.connect(database) as db:
        assert db.execute("SELECT text FROM note").fetchall() == [("kept",)]
    db.close()


@pytest.mark.parametrize("answer, message", [
    ("app_port=80", "Validation error for question 'app_port': The app port must be between 1024 and 65535, not 80."),
    ("project_name=Shop\ntouch marker #", "Validation error for question 'project_name': The project name must be one "
                                          "line of printable text"),
])
def test_an_answer_the_template_refuses_is_named_in_one_line_and_changes_nothing(template, tmp_path, answer, message):
    fork = fork_of(template, tmp_path / "fork", NEWEST, flavour="pipulate")
    before = answers(fork)
    result = run(fork, "update", "--no-test", "-d", answer)
    assert result.returncode != 0
    assert message in result.stderr and "Traceback" not in result.stderr
    assert answers(fork) == before and git(fork, "status", "--porcelain") == ""


def test_a_new_python_version_says_the_venv_is_still_on_the_old_one(template, tmp_path):
    fork = fork_of(template, tmp_path / "fork", NEWEST, flavour="darwinix")
    assert run(fork, "setup").returncode == 0
    venv = fork_python(fork, "import sys; print(f'{sys.version_info[0]}.{sys.version_info[1]}')")
    new = next(version for version in QUESTIONS["python_version"]["choices"] if version != venv)
    result = run(fork, "update", "--no-test", "-d", f"python_version={new}")
    assert result.returncode == 0, result.stderr
    assert f".venv still runs Python {venv}: rebuild it with rm -rf .venv && ./run setup" in result.stderr
    assert f'python-version: "{new}"' in (fork / ".github/workflows/ci.yml").read_text()


# --- Every state a fork's release can be in -------------------------------------------------------------------


def test_a_fork_of_an_untagged_commit_updates_to_the_newest_release(template, tmp_path):
    fork = fork_of(template, tmp_path / "fork", template.untagged, flavour="darwinix")
    assert answers(fork)["_commit"] == template.untagged
    refused = run(fork, "update", "--no-test")
    # It crosses v0.1.0, which has a migration.
    assert refused.returncode == 4 and "Read it, then run: ./run update --trust --no-test" in refused.stderr
    assert answers(fork)["_commit"] == template.untagged and git(fork, "status", "--porcelain") == ""
    result = run(fork, "update", "--trust", "--no-test")
    assert result.returncode == 0, result.stderr
    assert f"Updating from template {template.untagged} to {NEWEST}." in result.stderr
    assert answers(fork)["_commit"] == NEWEST


def test_a_fork_between_releases_updates_to_the_next(template, tmp_path):
    fork = fork_of(template, tmp_path / "fork", template.between, flavour="darwinix")
    assert answers(fork)["_commit"] == template.between and template.between.startswith("v0.2.0-1-g")
    result = run(fork, "update", "--no-test")
    assert result.returncode == 0, result.stderr
    assert f"Updating from template {template.between} to {NEWEST}." in result.stderr
    assert "Downgrades" not in result.stderr and answers(fork)["_commit"] == NEWEST


def test_a_fork_past_the_newest_release_has_nothing_new_and_is_told_why(template, tmp_path):
    fork = fork_of(template, tmp_path / "fork", "HEAD", flavour="darwinix")
    assert answers(fork)["_commit"] == template.past
    result = run(fork, "update")
    assert result.returncode == 0, result.stderr
    assert (f"Nothing new: this fork is on template {template.past}, a commit after the newest release, {NEWEST}. "
            "The next release will update it.") in result.stderr
    assert "passed" not in result.stdout and git(fork, "status", "--porcelain") == ""
    head = run(fork, "update", "--vcs-ref=HEAD")
    assert head.returncode == 0 and f"Nothing new: this fork is on HEAD already ({template.past})." in head.stderr


def test_a_fork_cannot_be_taken_back_to_an_older_release(template, tmp_path):
    fork = fork_of(template, tmp_path / "fork", "v0.2.0", flavour="darwinix")
    result = run(fork, "update", "--vcs-ref=v0.1.0")
    assert result.returncode == 1
    assert "Template v0.1.0 is not newer than v0.2.0, the version this fork is on: copier cannot go back." \
           in result.stderr
    assert git(fork, "status", "--porcelain") == ""


@pytest.fixture(scope="module")
def untagged_template(tmp_path_factory):
    """A template that has never had a release: two commits, no tag."""
    repo = snapshot(tmp_path_factory.mktemp("untagged-template"))
    first = describe(repo)
    insert_after_first_line(repo / "template/run.jinja", f"# {UPSTREAM_2}.")
    commit_all(repo, "More work")
    return SimpleNamespace(repo=repo, first=first, newest=describe(repo))


def test_a_template_without_releases_is_followed_commit_by_commit(untagged_template, tmp_path):
    fork = render(tmp_path / "fork", src=untagged_template.repo, vcs_ref=untagged_template.first, flavour="darwinix")
    commit_all(fork, "Render from the template")
    result = run(fork, "update", "--no-test")
    assert result.returncode == 0, result.stderr
    assert "The template has no release yet (no version tag): following its newest commit." in result.stderr
    assert f"Updating from template {untagged_template.first} to {untagged_template.newest}." in result.stderr
    assert "No git tags found" not in result.stderr
    assert f"# {UPSTREAM_2}." in (fork / "run").read_text()
    commit_all(fork, "Update")
    again = run(fork, "update")
    assert again.returncode == 0
    assert ("Nothing new: the template has no release yet, and this fork is on its newest commit "
            f"({untagged_template.newest}).") in again.stderr
    assert "passed" not in again.stdout


@pytest.mark.parametrize("state, ref, available", [
    ("untagged", "untagged", True), ("at an old release", "v0.2.0", True), ("between releases", "between", True),
    ("at the newest release", NEWEST, False), ("past the newest release", "past", False)])
def test_check_update_tells_the_truth(template, tmp_path, state, ref, available):
    fork = fork_of(template, tmp_path / "fork", getattr(template, ref, ref), flavour="darwinix")
    check = subprocess.run([sys.executable, "-m", "copier", "check-update", "--output-format", "json"], cwd=fork,
                           capture_output=True, text=True)
    assert check.returncode == 0, check.stderr
    assert json.loads(check.stdout)["update_available"] is available, state


def test_check_update_tells_the_truth_without_releases(untagged_template, tmp_path):
    for ref, available in ((untagged_template.first, True), ("HEAD", False)):
        fork = render(tmp_path / ref, src=untagged_template.repo, vcs_ref=ref, flavour="darwinix")
        check = subprocess.run([sys.executable, "-m", "copier", "check-update", "--output-format", "json"],
                               cwd=fork, capture_output=True, text=True)
        assert json.loads(check.stdout)["update_available"] is available, check.stderr


# --- One commit, several names: tags added later, tags left out, two tags on one commit -----------------------


def tagless_clone(template, path: Path) -> Path:
    """A clone of the template with its release commits but none of its tags, as git clone --no-tags makes."""
    subprocess.run(["git", "clone", "--quiet", "--no-tags", str(template.repo), str(path)], check=True)
    return path


def restore_tags(clone: Path) -> str:
    done = subprocess.run([str(clone / "scripts/release"), "--restore-tags"], env=os.environ | COMMITTER,
                          capture_output=True, text=True, check=True)
    return done.stderr


def test_a_fork_of_a_commit_updates_without_conflicts_once_the_commit_is_tagged(template, tmp_path):
    clone = tagless_clone(template, tmp_path / "template")
    commit = git(clone, "rev-parse", "--short", git(template.repo, "rev-parse", "v0.2.0").strip()).strip()
    fork = fork_of(SimpleNamespace(repo=clone), tmp_path / "fork", commit, flavour="pipulate")
    assert answers(fork)["_commit"] == commit and commit not in (fork / "core/config.py").read_text()
    restore_tags(clone)  # the commit is v0.2.0 now, which a fresh render of it would say
    result = run(fork, "update", "--no-test")
    assert result.returncode == 0, result.stderr
    assert f"Updating from template {commit} to {NEWEST}." in result.stderr and "conflict" not in result.stderr
    assert unmerged(fork) == [] and answers(fork)["_commit"] == NEWEST


def test_a_fork_whose_template_lost_its_tags_is_given_the_command_that_restores_them(template, tmp_path):
    clone = tagless_clone(template, tmp_path / "template")
    fork = fork_of(template, tmp_path / "fork", "v0.2.0", flavour="darwinix")
    substitute(fork / ".copier-answers.yml", r"^_src_path: .*$", f"_src_path: {clone}")
    commit_all(fork, "Follow the clone")
    refused = run(fork, "update", "--no-test")
    release = git(clone, "rev-parse", "--short", git(template.repo, "rev-parse", "v0.2.0^{commit}").strip()).strip()
    assert refused.returncode == 1
    assert (f"The template at {clone} has no tag v0.2.0, the release .copier-answers.yml records, though it has that "
            f"release's commit, {release}: its tags were left out (a clone or mirror made without them). In the "
            "template's repository, scripts/release --restore-tags tags its releases again; then run this again.") \
        in refused.stderr
    assert "uncommitted" not in refused.stderr and git(fork, "status", "--porcelain") == ""
    assert f"Tagged v0.2.0 at {release}, its release commit." in restore_tags(clone)  # what the message says to do
    result = run(fork, "update", "--no-test")
    assert result.returncode == 0, result.stderr
    assert f"Updating from template v0.2.0 to {NEWEST}." in result.stderr


def test_an_unknown_release_or_another_repository_is_named_with_what_to_do(template, tmp_path):
    fork = fork_of(template, tmp_path / "fork", "v0.2.0", flavour="darwinix")
    unknown = run(fork, "update", "--no-test", "--vcs-ref=v9.9.9")
    assert unknown.returncode == 1
    assert (f"The template at {template.repo} has no tag or commit v9.9.9: pass one it has with --vcs-ref (its "
            "releases: v0.1.0, v0.2.0, v0.3.0).") in unknown.stderr
    other = tmp_path / "other"
    other.mkdir()
    commit_all(other, "Another project")
    substitute(fork / ".copier-answers.yml", r"^_src_path: .*$", f"_src_path: {other}")
    commit_all(fork, "Follow another repository")
    refused = run(fork, "update", "--no-test")
    assert refused.returncode == 1
    assert (f"The template at {other} has neither the tag v0.2.0, the release .copier-answers.yml records, nor its "
            "Release commit: _src_path in .copier-answers.yml points at another repository") in refused.stderr
    assert "uncommitted" not in refused.stderr and git(fork, "status", "--porcelain") == ""


def test_two_tags_on_one_commit_are_one_release(template, tmp_path):
    clone = tagless_clone(template, tmp_path / "template")
    for version in ("0.1.0", "0.2.0"):
        git(clone, "tag", f"v{version}", git(template.repo, "rev-parse", f"v{version}").strip())
    fork = fork_of(SimpleNamespace(repo=clone), tmp_path / "fork", "v0.2.0", flavour="darwinix")
    git(clone, "tag", NEWEST, "v0.2.0")  # released again under a new name, unchanged
    result = run(fork, "update", "--no-test")
    assert result.returncode == 0, result.stderr
    assert (f"Nothing new: this fork is on template {NEWEST}, the newest release (.copier-answers.yml names the same "
            "commit v0.2.0).") in result.stderr
    assert git(fork, "status", "--porcelain") == ""


# --- The fork's own code against the new template ---------------------------------------------------------


ACME_URLS_PLUGIN = '''"""Acme's URL counter: a plugin of the fork's own that calls a helper of the template's."""

from fasthtml.common import *

from core.seo.url_checker import parse_url_list

NAME = "acme_urls"
DISPLAY_NAME = "Acme URLs"


def setup(plugin):
    @plugin.page
    def view():
        return Form(Textarea(name="text"), Button("Count"), hx_post=plugin.url(), hx_target="#count"), P(id="count")

    @plugin.route("", methods="post")
    def count(text: str):
        urls, refused = parse_url_list(text)
        return P(f"{len(urls)} URLs, {len(refused)} lines refused", id="count")
'''


def test_a_call_of_the_forks_own_that_the_new_template_no_longer_takes_stops_the_update(template, tmp_path):
    clone = tmp_path / "template"
    subprocess.run(["git", "clone", "--quiet", str(template.repo), str(clone)], check=True)
    # The release after the newest: the helper gains a required parameter, and the template's own callers follow.
    rendered = clone / "template"
    substitute(rendered / "core/seo/url_checker.py", r"^def parse_url_list\(text: str\)",
               "def parse_url_list(text: str, limit: int)")
    substitute(rendered / "tests/test_server_url_checker.py", r'parse_url_list\("""',
               'parse_url_list(limit=5000, text="""')
    release(clone, "0.4.0")
    fork = fork_of(SimpleNamespace(repo=clone), tmp_path / "fork", NEWEST, flavour="pipulate")
    (fork / "plugins/500_acme_urls.py").write_text(ACME_URLS_PLUGIN)
    commit_all(fork, "Acme's URL counter")
    line = ACME_URLS_PLUGIN.splitlines().index("        urls, refused = parse_url_list(text)") + 1
    misfit = f'plugins/500_acme_urls.py:{line}: error: Missing positional argument "limit" in call to "parse_url_list"'
    result = run(fork, "update", "--no-test")
    assert result.returncode == 1 and f"\n  {misfit}  [call-arg]\n" in result.stderr, result.stderr
    assert ("The update is merged, but your code calls the template in ways it no longer takes (above). Fix them, or "
            "drop the update: git reset --hard && git clean -fd") in result.stderr
    assert answers(fork)["_commit"] == "v0.4.0"
    again = run(fork, "check")  # what the fork runs once it has fixed them
    assert again.returncode == 1 and misfit in again.stderr


# --- The working tree, drift, migrations and the weekly job ---------------------------------------------------


@pytest.fixture
def fork(template, tmp_path):
    """A pipulate fork rendered from v0.2.0 and committed."""
    return fork_of(template, tmp_path / "fork", "v0.2.0", flavour="pipulate")


def test_uncommitted_changes_block_the_update_and_the_advice_works(fork):
    (fork / "scratch.txt").write_text("a note of mine\n")
    append(fork / "README.md", "A draft.\n")
    refused = run(fork, "update", "--no-test")
    assert refused.returncode == 1
    assert "Refusing to update: the working tree has uncommitted changes" in refused.stderr
    assert " M README.md" in refused.stderr and "?? scratch.txt" in refused.stderr
    assert answers(fork)["_commit"] == "v0.2.0"
    # What the message says to do.
    git(fork, "stash", "push", "--include-untracked")
    assert run(fork, "update", "--no-test").returncode == 0 and answers(fork)["_commit"] == NEWEST
    git(fork, "stash", "pop")
    assert (fork / "scratch.txt").read_text() == "a note of mine\n" and (fork / "README.md").read_text().endswith(
        "A draft.\n")


def test_deleted_fork_owned_file_is_scaffolded_again(fork):
    # What the README tells forks: copier skips a fork-owned file only while it exists.
    (fork / "local.nix").unlink()
    commit_all(fork, "Delete local.nix")
    subprocess.run([sys.executable, "-m", "copier", "update", "--defaults"], cwd=fork, check=True, capture_output=True)
    assert (fork / "local.nix").exists()


def test_flavour_switch_and_back_leaves_no_stray_files(template, fork, tmp_path):
    rendered = visible_files(fork)
    recorded = {name: value for name, value in answers(fork).items() if not name.startswith("_")}
    for flavour in ("botifython", "pipulate"):
        subprocess.run([sys.executable, "-m", "copier", "update", "--defaults", "-d", f"flavour={flavour}",
                        "--vcs-ref=:current:"], cwd=fork, check=True, capture_output=True)
        fresh = render(tmp_path / flavour, src=template.repo, vcs_ref="v0.2.0", **recorded | {"flavour": flavour})
        assert visible_files(fork) == rendered_files(fresh)
        commit_all(fork, f"Switch to {flavour}")
        if flavour == "botifython":
            assert visible_files(fork) != rendered
    assert visible_files(fork) == rendered


def test_drift_shows_edits_to_template_owned_files_only(fork):
    result = run(fork, "drift")
    assert result.returncode == 0, result.stderr
    assert "No drift: the template-owned files match template v0.2.0." in result.stderr
    (fork / "settings.toml").write_text('name = "Acme Bench"\n')
    (fork / "plugins/500_acme.py").write_text(ACME_PLUGIN)
    assert run(fork, "drift").returncode == 0
    append(fork / "README.md", ACME_README)
    (fork / "LICENSE").unlink()
    result = run(fork, "drift")
    assert result.returncode == 1
    assert "--- template: README.md\n+++ README.md\n" in result.stdout
    assert "+Our own section at the end of a template-owned file." in result.stdout
    assert "--- template: LICENSE\n+++ LICENSE\n" in result.stdout
    assert "settings.toml" not in result.stdout and "500_acme" not in result.stdout


def test_a_template_path_that_does_not_work_here_says_how_to_point_at_the_url(fork):
    for source, why in (("../template", "copier resolves a relative path from wherever it runs"),
                        ("/nowhere/template", "there is no template there on this machine")):
        substitute(fork / ".copier-answers.yml", r"^_src_path: .*$", f"_src_path: {source}")
        commit_all(fork, "Move the template")
        result = run(fork, "update")
        assert result.returncode == 1
        assert f"This fork follows the template at '{source}', a path on the machine that rendered it: {why}" \
               in result.stderr
        assert "  _src_path: https://github.com/OWNER/TEMPLATE.git\n" in result.stderr


def scheduled_step(fork: Path, step_id: str, tmp_path: Path, env: dict | None = None) -> tuple[int, str, str]:
    """Runs a step of the update workflow as GitHub would: returns its exit code, output and GITHUB_OUTPUT."""
    workflow = yaml.safe_load((fork / ".github/workflows/update.yml").read_text())
    [step] = [step for step in workflow["jobs"]["update"]["steps"] if step.get("id", step.get("name")) == step_id]
    output = tmp_path / "github_output"
    output.write_text("")
    env = ENV | {"GITHUB_OUTPUT": str(output), "COPIER_CACHE_DIR": str(tmp_path / "copier-cache")} | (env or {})
    done = subprocess.run(["bash", "-e", "-c", step["run"]], cwd=fork, env=env, capture_output=True, text=True)
    return done.returncode, done.stdout + done.stderr, output.read_text()


def test_scheduled_job_finds_a_new_release_and_opens_a_pull_request(template, fork, tmp_path):
    workflow = yaml.safe_load((fork / ".github/workflows/update.yml").read_text())
    assert workflow[True]["schedule"]  # PyYAML reads the key `on` as True
    assert workflow["permissions"] == {"contents": "write", "pull-requests": "write"}
    steps = workflow["jobs"]["update"]["steps"]
    assert any(step.get("run", "").strip() == "./run update" for step in steps)
    token = "${{ secrets.TEMPLATE_UPDATE_TOKEN || github.token }}"
    assert [step["with"]["token"] for step in steps if step.get("uses", "").startswith(
        ("actions/checkout@", "peter-evans/create-pull-request@"))] == [token, token]
    # On GitHub the template is a URL: here, one for the local copy.
    substitute(fork / ".copier-answers.yml", r"^_src_path: .*$", f"_src_path: git+file://{template.repo}")
    commit_all(fork, "The template's URL")
    status, log, output = scheduled_step(fork, "check", tmp_path)
    assert (status, output) == (0, "update=true\n"), log
    cache = {"COPIER_CACHE_DIR": str(tmp_path / "copier-cache")}  # copier keeps a mirror of a URL's repository
    assert run(fork, "update", "--no-test", env=ENV | cache).returncode == 0
    commit_all(fork, "Update")
    assert scheduled_step(fork, "check", tmp_path)[2] == "update=false\n"


def test_scheduled_job_stops_on_a_template_path_with_what_to_do(fork, tmp_path):
    substitute(fork / ".copier-answers.yml", r"^_src_path: .*$", "_src_path: /home/someone/template")
    status, log, output = scheduled_step(fork, "check", tmp_path)
    assert status == 1 and output == ""
    assert "This fork follows the template at '/home/someone/template', a path on the machine that rendered it" in log
    assert "_src_path: https://github.com/OWNER/TEMPLATE.git" in log


def test_scheduled_job_without_a_token_stops_on_workflow_changes_with_the_instruction(fork, tmp_path):
    step = "Can the token push this update?"
    append(fork / "README.md", "An update's change.\n")
    assert scheduled_step(fork, step, tmp_path)[0] == 0
    append(fork / ".github/workflows/ci.yml", "# An update's change.\n")
    status, log, _ = scheduled_step(fork, step, tmp_path, {"UPDATE_TOKEN": ""})
    assert status == 1
    assert "::error::This update changes workflow files, which GitHub's own token may not push:" in log
    assert ".github/workflows/ci.yml" in log and "Add a repository secret TEMPLATE_UPDATE_TOKEN" in log
    assert "Contents, Pull requests and Workflows" in log
    assert scheduled_step(fork, step, tmp_path, {"UPDATE_TOKEN": "a-token"})[0] == 0


def test_every_migration_has_a_version():
    # copier asks for --trust on every update if a migration has no version, and only when one is crossed if all do.
    assert all("version" in migration for migration in QUESTIONS["_migrations"])


@pytest.fixture(scope="module")
def migration_template(tmp_path_factory):
    """The template before and after the release whose migration moves the database to data/app.db: v0.0.1 kept
    it as <slug>.db in the fork's root, v0.0.2 as data/<slug>.db."""
    [migration] = [migration for migration in QUESTIONS["_migrations"] if "database_into_data" in str(migration)]
    repo = snapshot(tmp_path_factory.mktemp("migration-template"))
    config, gitignore = repo / "template/core/config.py.jinja", repo / "template/.gitignore"
    now = config.read_text(), gitignore.read_text()
    substitute(config, r"^DB_PATH = .*$", 'DB_PATH = ROOT / f"{SLUG}.db"')
    gitignore.write_text(now[1] + "/*.db\n/*.db-*\n")
    release(repo, "0.0.1")
    substitute(config, r"^DB_PATH = .*$", 'DB_PATH = DATA_DIR / f"{SLUG}.db"')
    gitignore.write_text(now[1])
    release(repo, "0.0.2")
    config.write_text(now[0])
    release(repo, migration["version"])
    return repo


@pytest.mark.parametrize("ref, database, change", [("v0.0.1", "pipulate.db", []),
                                                   ("v0.0.2", "data/pipulate.db", ["-d", "project_slug=seo-bench"])])
def test_migration_moves_the_database_when_the_update_crosses_its_version(migration_template, tmp_path, ref,
                                                                          database, change):
    fork = render(tmp_path / "fork", src=migration_template, vcs_ref=ref, flavour="pipulate")
    commit_all(fork, "Render from the template")
    (fork / database).parent.mkdir(exist_ok=True)
    with sqlite3.connect(fork / database) as db:
        db.execute("CREATE TABLE note (text)")
        db.execute("INSERT INTO note VALUES ('kept')")
    db.close()
    refused = run(fork, "update", "--no-test", *change)
    assert refused.returncode == 4
    assert "crosses a template release with a migration" in refused.stderr
    assert f"CHANGELOG.md in {migration_template}" in refused.stderr
    assert f"run: ./run update --trust --no-test {' '.join(change)}".strip() in refused.stderr
    assert answers(fork)["_commit"] == ref and not git(fork, "status", "--porcelain")
    result = run(fork, "update", "--trust", "--no-test", *change)
    assert result.returncode == 0, result.stderr
    assert f"Moved {database} to data/app.db." in result.stdout + result.stderr
    assert not (fork / database).exists()
    with sqlite3.connect(fork / "data/app.db") as db:
        assert db.execute("SELECT text FROM note").fetchall() == [("kept",)]
    db.close()
    assert fork_python(fork, "from core import config; print(config.DB_PATH)") == str(fork / "data/app.db")
