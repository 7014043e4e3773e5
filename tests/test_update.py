"""Forks stay in sync. A copy of the template gets two releases; forks of every flavour are rendered from the first,
customised in every way a fork may be, and take the second through their own `./run update` without losing anything.
Conflicts, dirty trees, flavour switches, migrations, drift and the scheduled update job are covered too."""

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

from template_tools import FLAVOURS, QUESTIONS, commit_all, git, render, snapshot

OLD, NEW = "v0.1.0", "v0.2.0"
UPSTREAM = "Upstream change in 0.2.0"
# The forks' ./run setup takes uv from the template's own tools when it is not on PATH already.
ENV = os.environ | {"PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"}


def run(fork: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([str(fork / "run"), *args], cwd=fork, env=ENV, capture_output=True, text=True,
                          timeout=1800)


def insert_after_first_line(path: Path, line: str) -> None:
    first, rest = path.read_text().split("\n", 1)
    path.write_text(f"{first}\n{line}\n{rest}")


def substitute(path: Path, pattern: str, replacement: str) -> None:
    text, count = re.subn(pattern, replacement, path.read_text(), flags=re.MULTILINE)
    assert count == 1, f"{pattern!r} should occur once in {path}"
    path.write_text(text)


def answers(fork: Path) -> dict:
    return yaml.safe_load((fork / ".copier-answers.yml").read_text())


def rendered_files(root: Path) -> dict[str, bytes]:
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in root.rglob("*") if p.is_file()}


def visible_files(repo: Path) -> dict[str, bytes]:
    """Every file git sees in the working tree (tracked or untracked, not ignored), with its content."""
    names = git(repo, "ls-files", "-z", "--cached", "--others", "--exclude-standard").split("\0")
    return {name: (repo / name).read_bytes() for name in names if name and (repo / name).is_file()}


def fork_python(fork: Path, code: str) -> str:
    return subprocess.run([str(fork / ".venv/bin/python"), "-c", code], cwd=fork, capture_output=True, text=True,
                          check=True).stdout.strip()


@pytest.fixture(scope="session")
def template(tmp_path_factory):
    """The template with two releases: OLD as it is now, NEW with an upstream change of every kind."""
    repo = snapshot(tmp_path_factory.mktemp("template"))
    git(repo, "tag", OLD)
    rendered = repo / "template"
    for edited in ["run.jinja", "flake.nix.jinja", *(p.name for p in rendered.glob("server.py*"))]:
        insert_after_first_line(rendered / edited, f"# {UPSTREAM}.")
    insert_after_first_line(rendered / "README.md.jinja", f"\n{UPSTREAM}: a new paragraph.")
    (rendered / "LICENSE.jinja").write_text((rendered / "LICENSE.jinja").read_text() + f"\n{UPSTREAM}.\n")
    (rendered / "CONTRIBUTING.md").write_text(f"# Contributing\n\n{UPSTREAM}: a new file.\n")
    (rendered / ".pre-commit-config.yaml").unlink()
    substitute(rendered / "config.py.jinja", r'("chat_history_limit": )\d+', r"\g<1>60")
    python = QUESTIONS["python_version"]
    other_python = next(version for version in python["choices"] if version != python["default"])
    substitute(repo / "copier.yml", r'(^python_version:\n(?:  .*\n)*?  default: )"[\d.]+"', rf'\g<1>"{other_python}"')
    commit_all(repo, "Release 0.2.0")
    git(repo, "tag", NEW)
    return repo


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
    # 3. Extra Python requirements and Nix packages through the extension points.
    write("requirements-local.txt", (fork / "requirements-local.txt").read_text() + "tabulate\n")
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


@pytest.fixture(scope="module", params=FLAVOURS)
def updated(request, template, tmp_path_factory):
    """A fork rendered from OLD, customised and committed, then `./run update` to NEW."""
    fork = render(tmp_path_factory.mktemp(request.param) / "fork", src=template, vcs_ref=OLD, flavour=request.param)
    commit_all(fork, "Render from the template")
    mine = customise(fork)
    # 4. An edit in a template-owned file, away from the lines the template changes.
    (fork / "README.md").write_text((fork / "README.md").read_text() + ACME_README)
    # 5. An optional file deleted.
    (fork / "LICENSE").unlink()
    # 6. Data and secrets, which git ignores.
    for path, text in NEVER_TOUCHED.items():
        (fork / path).parent.mkdir(exist_ok=True)
        (fork / path).write_text(text)
    untouched = {path: (fork / path).stat().st_mtime_ns for path in NEVER_TOUCHED}
    commit_all(fork, "Customise")
    head = git(fork, "rev-parse", "HEAD")
    return SimpleNamespace(fork=fork, mine=mine, untouched=untouched, head=head, result=run(fork, "update"),
                           has_server=(fork / "server.py").exists())


def test_update_merges_and_the_fork_tests_pass(updated):
    assert updated.result.returncode == 0, updated.result.stdout[-5000:] + updated.result.stderr[-5000:]
    assert " passed" in updated.result.stdout.splitlines()[-1]
    assert f"Updated to template {NEW}" in updated.result.stderr
    # Without --trust: the template has a migration, but this update does not cross its version.
    assert QUESTIONS["_migrations"] and "--trust" not in updated.result.stderr


def test_update_leaves_no_conflicts(updated):
    assert git(updated.fork, "ls-files", "--unmerged") == ""
    files = visible_files(updated.fork)
    assert not [name for name in files if name.endswith((".rej", ".orig"))]
    assert not [name for name, content in files.items() if re.search(rb"^(<<<<<<<|>>>>>>>) ", content, re.M)]


def test_fork_owned_files_are_kept(updated):
    assert {path: (updated.fork / path).read_text() for path in updated.mine} == updated.mine


def test_edit_in_a_template_owned_file_is_merged(updated):
    readme = (updated.fork / "README.md").read_text()
    assert readme.endswith(ACME_README)
    assert f"{UPSTREAM}: a new paragraph." in readme


def test_upstream_changes_arrive(updated):
    fork = updated.fork
    edited = ["run", "flake.nix", *(["server.py"] if updated.has_server else [])]
    assert [name for name in edited if f"# {UPSTREAM}." not in (fork / name).read_text()] == []
    assert (fork / "CONTRIBUTING.md").read_text().endswith(f"{UPSTREAM}: a new file.\n")
    assert not (fork / ".pre-commit-config.yaml").exists()
    # A changed question default does not change an answer the fork has already given.
    assert answers(fork)["python_version"] == QUESTIONS["python_version"]["default"]
    if updated.has_server:  # A changed setting default arrives, under the fork's own settings.
        settings = json.loads(fork_python(fork, "import config, json; print(json.dumps(config.SETTINGS))"))
        assert (settings["name"], settings["accent"], settings["chat_history_limit"]) == ("Acme Bench", "#8e24aa", 60)


def test_deleted_file_stays_deleted(updated):
    # The template changed LICENSE in this release; the fork's deletion still wins.
    assert not (updated.fork / "LICENSE").exists()


def test_data_and_secrets_are_untouched(updated):
    fork = updated.fork
    assert {path: (fork / path).read_text() for path in NEVER_TOUCHED} == NEVER_TOUCHED
    assert {path: (fork / path).stat().st_mtime_ns for path in NEVER_TOUCHED} == updated.untouched


def test_update_is_left_uncommitted_for_review(updated):
    assert git(updated.fork, "rev-parse", "HEAD") == updated.head
    assert git(updated.fork, "status", "--porcelain").strip()


PAGE = """
import os, tempfile
os.environ["DATA_DIR"] = os.environ["LOG_DIR"] = tempfile.mkdtemp()  # not the fork's own data/
from starlette.testclient import TestClient
import server
print(TestClient(server.app).get("/").text)
"""


def test_fork_shows_the_new_template_version(updated):
    assert answers(updated.fork)["_commit"] == NEW
    if updated.has_server:  # in the page footer
        assert fork_python(updated.fork, "import config; print(config.TEMPLATE_VERSION)") == NEW
        assert NEW in fork_python(updated.fork, PAGE)


@pytest.fixture
def fork(template, tmp_path):
    """A pipulate fork rendered from OLD and committed."""
    fork = render(tmp_path / "fork", src=template, vcs_ref=OLD, flavour="pipulate")
    commit_all(fork, "Render from the template")
    return fork


def test_conflicting_edit_fails_the_update_and_names_the_file(fork):
    insert_after_first_line(fork / "flake.nix", "# Acme's own line, where the template adds one too.")
    commit_all(fork, "Edit flake.nix")
    result = run(fork, "update")
    assert result.returncode == 1
    assert "The update conflicts with your changes in these files:\n  flake.nix\n" in result.stderr
    assert git(fork, "diff", "--name-only", "--diff-filter=U").split() == ["flake.nix"]
    assert "<<<<<<< before updating" in (fork / "flake.nix").read_text()
    assert " passed" not in result.stdout


def test_update_refuses_a_dirty_tree(fork):
    draft = (fork / "README.md").read_text() + "A draft.\n"
    (fork / "README.md").write_text(draft)
    result = run(fork, "update")
    assert result.returncode == 1
    assert "Refusing to update: the working tree has uncommitted changes" in result.stderr
    assert " M README.md" in result.stderr
    assert (fork / "README.md").read_text() == draft
    assert answers(fork)["_commit"] == OLD


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
        fresh = render(tmp_path / flavour, src=template, vcs_ref=OLD, **recorded | {"flavour": flavour})
        assert visible_files(fork) == rendered_files(fresh)
        commit_all(fork, f"Switch to {flavour}")
        if flavour == "botifython":
            assert visible_files(fork) != rendered
    assert visible_files(fork) == rendered


def test_drift_shows_edits_to_template_owned_files_only(fork):
    result = run(fork, "drift")
    assert result.returncode == 0, result.stderr
    assert f"No drift: the template-owned files match template {OLD}." in result.stderr
    (fork / "settings.toml").write_text('name = "Acme Bench"\n')
    (fork / "plugins").mkdir(exist_ok=True)
    (fork / "plugins/500_acme.py").write_text(ACME_PLUGIN)
    assert run(fork, "drift").returncode == 0
    (fork / "README.md").write_text((fork / "README.md").read_text() + ACME_README)
    (fork / "LICENSE").unlink()
    result = run(fork, "drift")
    assert result.returncode == 1
    assert "--- template: README.md\n+++ README.md\n" in result.stdout
    assert "+Our own section at the end of a template-owned file." in result.stdout
    assert "--- template: LICENSE\n+++ LICENSE\n" in result.stdout
    assert "settings.toml" not in result.stdout and "500_acme" not in result.stdout


def scheduled_job_check(fork: Path, tmp_path: Path) -> str:
    """Runs the update workflow's check step as GitHub would, returns what it sets in GITHUB_OUTPUT."""
    workflow = yaml.safe_load((fork / ".github/workflows/update.yml").read_text())
    [check] = [step for step in workflow["jobs"]["update"]["steps"] if step.get("id") == "check"]
    output = tmp_path / "github_output"
    output.write_text("")
    subprocess.run(["bash", "-e", "-c", check["run"]], cwd=fork, env=ENV | {"GITHUB_OUTPUT": str(output)},
                   check=True, capture_output=True)
    return output.read_text()


def test_scheduled_job_finds_a_new_release_and_opens_a_pull_request(fork, tmp_path):
    workflow = yaml.safe_load((fork / ".github/workflows/update.yml").read_text())
    assert workflow[True]["schedule"]  # PyYAML reads the key `on` as True
    steps = workflow["jobs"]["update"]["steps"]
    assert any(step.get("run", "").strip() == "./run update" for step in steps)
    assert any(step.get("uses", "").startswith("peter-evans/create-pull-request@") for step in steps)
    run(fork, "setup")
    assert scheduled_job_check(fork, tmp_path) == "update=true\n"
    subprocess.run([sys.executable, "-m", "copier", "update", "--defaults"], cwd=fork, check=True, capture_output=True)
    commit_all(fork, "Update")
    assert scheduled_job_check(fork, tmp_path) == "update=false\n"


def test_every_migration_has_a_version():
    # copier asks for --trust on every update if a migration has no version, and only when one is crossed if all do.
    assert all("version" in migration for migration in QUESTIONS["_migrations"])


@pytest.fixture(scope="module")
def migration_template(tmp_path_factory):
    """The template before and after the release whose migration moves the database into data/."""
    [migration] = QUESTIONS["_migrations"]
    repo = snapshot(tmp_path_factory.mktemp("migration-template"))
    config, gitignore = repo / "template/config.py.jinja", repo / "template/.gitignore"
    now = config.read_text(), gitignore.read_text()
    substitute(config, r"^DB_PATH = .*$", 'DB_PATH = ROOT / f"{SLUG}.db"')
    gitignore.write_text(now[1] + "/*.db\n/*.db-*\n")
    commit_all(repo, "The layout before the migration")
    git(repo, "tag", "v0.0.1")
    config.write_text(now[0])
    gitignore.write_text(now[1])
    commit_all(repo, "The layout after the migration")
    git(repo, "tag", f"v{migration['version']}")
    return repo


def test_migration_moves_the_database_when_the_update_crosses_its_version(migration_template, tmp_path):
    fork = render(tmp_path / "fork", src=migration_template, vcs_ref="v0.0.1", flavour="pipulate")
    commit_all(fork, "Render from the template")
    with sqlite3.connect(fork / "pipulate.db") as db:
        db.execute("CREATE TABLE note (text)")
        db.execute("INSERT INTO note VALUES ('kept')")
    db.close()
    refused = run(fork, "update")
    assert refused.returncode == 4
    assert "crosses a template release with a migration" in refused.stderr
    assert f"CHANGELOG.md in {migration_template}" in refused.stderr and "run: ./run update --trust" in refused.stderr
    assert answers(fork)["_commit"] == "v0.0.1" and not git(fork, "status", "--porcelain")
    subprocess.run([str(fork / ".venv/bin/copier"), "update", "--defaults", "--trust"], cwd=fork, check=True,
                   capture_output=True)
    assert not list(fork.glob("pipulate.db*"))
    with sqlite3.connect(fork / "data/pipulate.db") as db:
        assert db.execute("SELECT text FROM note").fetchall() == [("kept",)]
    db.close()
    assert fork_python(fork, "import config; print(config.DB_PATH)") == str(fork / "data/pipulate.db")
