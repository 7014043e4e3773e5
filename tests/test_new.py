"""scripts/new renders a flavour into a git repository, sets it up and starts it on localhost, saying what it does
as it does it and ending with what runs where; a mistake (a flavour, an answer, a folder in use) is one line. It
renders the newest release unless told otherwise, and records where the fork updates from."""

import os
import signal
import socket
import subprocess
import time
import urllib.error
import urllib.request

import pytest
import yaml

from template_tools import FLAVOURS, ROOT, commit_all, git, snapshot

NEW = str(ROOT / "scripts" / "new")


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


def start_new(flavour, dest, env, url) -> tuple[str, int]:
    """Run scripts/new on the template as it is now until it says what runs where (the last thing it says); return
    all it said and url's status then. Always stops what it started."""
    log = dest.parent / "new.log"
    with log.open("w") as out:
        process = subprocess.Popen([NEW, "--head", flavour, str(dest)], env=os.environ | env, stdout=out,
                                   stderr=subprocess.STDOUT, start_new_session=True)
    try:
        deadline = time.monotonic() + 600
        while "Ctrl-C stops" not in (said := log.read_text()):
            assert process.poll() is None and time.monotonic() < deadline, said
            time.sleep(0.5)
        return said, status(url)
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGTERM)
            process.wait(timeout=30)


def in_order(text: str, *parts: str) -> bool:
    "Whether every part is in text, each after the one before."
    at = 0
    for part in parts:
        at = text.find(part, at)
        if at < 0: return False
        at += len(part)
    return True


def new(*args: str, **env: str) -> subprocess.CompletedProcess:
    return subprocess.run([NEW, *args], env=os.environ | env, capture_output=True, text=True, timeout=300)


def test_new_darwinix_starts_jupyterlab_with_its_token(tmp_path):
    port, token = free_port(), "a-test-token-for-new"
    (tmp_path / "x").mkdir()  # an empty folder is as good as a new one
    env = {"JUPYTER_PORT": str(port), "JUPYTER_TOKEN": token}
    said, code = start_new("darwinix", tmp_path / "x", env, f"http://127.0.0.1:{port}/api/status?token={token}")
    assert code == 200
    assert status(f"http://127.0.0.1:{port}/api/status") == 0, "JupyterLab was left running"
    assert in_order(said, f"Rendered the darwinix flavour into {tmp_path / 'x'}.\n",
                    "Committed it to a new git repository there: ./run update follows the template from that commit.\n",
                    "Setting up .venv ...\n", "Set up. Starting it (./run start) ...\n",
                    f"JupyterLab: http://127.0.0.1:{port}/lab/tree/notebooks?token={token}\n"
                    f"Ctrl-C stops it. Its messages go to logs/jupyter.log.\n"), said
    assert git(tmp_path / "x", "status", "--porcelain") == "", "the fork's first commit left files out"
    assert git(tmp_path / "x", "log", "--format=%s") == "Render darwinix from the template\n"


@pytest.mark.parametrize("flavour", ["pipulate", "botifython"])
def test_new_server_flavour_serves_its_app_and_says_where(flavour, tmp_path):
    port, jupyter_port = free_port(), free_port()
    env = {"PORT": str(port), "JUPYTER_PORT": str(jupyter_port)}
    said, code = start_new(flavour, tmp_path / "x", env, f"http://127.0.0.1:{port}/")
    assert code == 200
    assert in_order(said, f"Rendered the {flavour} flavour into", "Committed it to a new git repository there",
                    "Setting up .venv ...", "Set up. Starting it (./run start) ...", "Uvicorn running on",
                    f"App:        http://127.0.0.1:{port}\n"
                    f"JupyterLab: http://127.0.0.1:{jupyter_port}/lab/tree/notebooks?token=",
                    "\nCtrl-C stops both. JupyterLab's messages go to logs/jupyter.log.\n"), said
    assert git(tmp_path / "x", "status", "--porcelain") == ""


def test_new_with_no_start_ends_saying_how_to_start(tmp_path):
    result = new("pipulate", str(tmp_path / "x"), NO_START="1")
    assert result.returncode == 0, result.stderr
    assert result.stderr.endswith(f"Set up. Start it with: cd {tmp_path / 'x'} && ./run\n")


def test_new_without_arguments_prints_usage_with_the_flavours():
    result = new()
    assert result.returncode == 2 and result.stderr.startswith(
        "Usage: scripts/new [--head | --vcs-ref REF] [--template-url URL] FLAVOUR DEST")
    assert result.stderr.endswith(f"Flavours: {', '.join(FLAVOURS)}.\n")


def test_a_flavour_that_is_not_one_is_one_line_naming_them(tmp_path):
    result = new("pipulat", str(tmp_path / "x"))
    assert (result.returncode, result.stderr) == (
        2, f"scripts/new: there is no flavour 'pipulat': choose one of {', '.join(FLAVOURS)}.\n")
    assert not (tmp_path / "x").exists()


@pytest.mark.parametrize("answer, message", [
    ("python_version=3.9", "Invalid choice for 'python_version': '3.9' is not in ['3.11', '3.12', '3.13']"),
    ("app_port=80", "Validation error for question 'app_port': The app port must be between 1024 and 65535, not 80."),
    ("app_port=abc", "app_port: invalid literal for int() with base 10: 'abc'"),
    ("project_name=Shop\ntouch marker #", "Validation error for question 'project_name': The project name must be one"
     " line of printable text: no line break, tab, terminal escape or other control character."),
])
def test_an_answer_copier_refuses_is_one_line(answer, message, tmp_path):
    result = new("pipulate", str(tmp_path / "x"), "-d", answer)
    assert result.returncode == 1 and "Traceback" not in result.stderr
    assert result.stderr.endswith(f"\nscripts/new: {message}\n") or result.stderr == f"scripts/new: {message}\n"
    assert not (tmp_path / "x").exists()


@pytest.mark.parametrize("inside", ["a file", "a git repository"])
def test_a_folder_in_use_is_refused_and_left_alone(inside, tmp_path):
    dest = tmp_path / "x"
    dest.mkdir()
    if inside == "a file": (dest / "notes.txt").write_text("mine")
    else: git(dest, "init", "--quiet")
    before = sorted(p.relative_to(dest) for p in dest.rglob("*"))
    result = new("pipulate", str(dest))
    assert (result.returncode, result.stderr) == (2, (
        f"scripts/new: {dest} already exists and is not an empty folder: give a new one (the fork gets a folder, and "
        "a git repository, of its own).\n"))
    assert sorted(p.relative_to(dest) for p in dest.rglob("*")) == before


def template_copy(path, *releases):
    """A copy of the template with these release tags, each on a commit of its own, and a commit after them; it
    borrows this template's tools (.venv)."""
    repo = snapshot(path)
    (repo / ".venv").symlink_to(ROOT / ".venv")
    with (repo / ".git/info/exclude").open("a") as exclude:
        exclude.write(".venv\n")
    for version in releases:
        (repo / "CHANGELOG.md").write_text((repo / "CHANGELOG.md").read_text() + f"\nRelease {version}.\n")
        commit_all(repo, f"Release {version.removeprefix('v')}")  # as scripts/release names it
        git(repo, "tag", version)
    (repo / "CHANGELOG.md").write_text((repo / "CHANGELOG.md").read_text() + "\nWork after the releases.\n")
    commit_all(repo, "Work after the releases")
    return repo


def new_from(template, *args):
    result = subprocess.run([str(template / "scripts/new"), *args], env=os.environ | {"NO_START": "1"},
                            capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr
    return result


def recorded(fork):
    assert git(fork, "status", "--porcelain") == "", "the fork's first commit left files out"
    answers = yaml.safe_load((fork / ".copier-answers.yml").read_text())
    return answers["_commit"], answers["_src_path"]


def test_new_renders_the_newest_release_and_records_the_template_remote(tmp_path):
    template = template_copy(tmp_path / "template", "v0.1.0", "v0.2.0", "v0.3.0rc1")
    git(template, "remote", "add", "origin", "https://example.org/acme/template.git")
    result = new_from(template, "darwinix", str(tmp_path / "fork"))
    assert recorded(tmp_path / "fork") == ("v0.2.0", "https://example.org/acme/template.git")
    assert "Rendering the template's newest release, v0.2.0.\n" in result.stderr
    assert "It updates from https://example.org/acme/template.git.\n" in result.stderr and "push" not in result.stderr


def test_new_renders_the_current_commit_when_asked_and_records_the_url_given(tmp_path):
    template = template_copy(tmp_path / "template", "v0.1.0")
    new_from(template, "--head", "--template-url", "gh:acme/template", "darwinix", str(tmp_path / "fork"))
    commit, source = recorded(tmp_path / "fork")
    assert commit.startswith("v0.1.0-1-g") and source == "gh:acme/template"



def test_new_takes_its_options_after_flavour_and_dest_too(tmp_path):
    template = template_copy(tmp_path / "template", "v0.1.0")
    new_from(template, "darwinix", str(tmp_path / "fork"), "-d", "project_name=Acme Lab", "--head")
    commit, _ = recorded(tmp_path / "fork")
    assert commit.startswith("v0.1.0-1-g")
    assert yaml.safe_load((tmp_path / "fork/.copier-answers.yml").read_text())["project_name"] == "Acme Lab"

def test_new_without_a_release_renders_the_current_commit_and_says_so(tmp_path):
    template = template_copy(tmp_path / "template")
    result = new_from(template, "darwinix", str(tmp_path / "fork"))
    head = git(template, "describe", "--tags", "--always").strip()
    assert recorded(tmp_path / "fork") == (head, str(template))
    assert f"The template has no release yet (scripts/release cuts one): rendering its current commit, {head}." \
        in result.stderr
    assert f"It updates from {template}, a path on this machine" in result.stderr


def test_new_in_a_clone_without_tags_renders_the_current_commit_and_names_the_command_that_restores_them(tmp_path):
    template = template_copy(tmp_path / "template", "v0.1.0", "v0.2.0")
    git(template, "tag", "--delete", "v0.1.0", "v0.2.0")  # as git clone --no-tags leaves it
    result = new_from(template, "darwinix", str(tmp_path / "fork"))
    head = git(template, "rev-parse", "--short", "HEAD").strip()
    assert recorded(tmp_path / "fork") == (head, str(template))
    assert ("This clone of the template has no release tags, though its history has releases 0.1.0, 0.2.0 (a clone "
            f"or mirror may leave tags out): rendering its current commit, {head}. scripts/release --restore-tags "
            "tags those releases; scripts/new then renders the newest.\n") in result.stderr
    assert "no release yet" not in result.stderr and "push" not in result.stderr


def test_new_says_when_the_remote_it_records_lacks_the_release_tag(tmp_path):
    template = template_copy(tmp_path / "template", "v0.1.0")
    origin = tmp_path / "origin.git"
    git(tmp_path, "clone", "--quiet", "--bare", "--no-tags", str(template), str(origin))  # as a push without tags
    git(template, "remote", "add", "origin", str(origin))
    result = new_from(template, "darwinix", str(tmp_path / "fork"))
    assert recorded(tmp_path / "fork") == ("v0.1.0", str(origin))
    assert (f"{origin} has no tag v0.1.0, the release this fork records, so the fork cannot update from there until "
            "it has: push the template's release tags there (git push --tags).\n") in result.stderr
