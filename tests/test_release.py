"""scripts/release X.Y.Z refuses what should not be released, and otherwise dates the changelog and tags."""

import datetime
import os
import subprocess

import pytest

from template_tools import COMMITTER, commit_all, git, snapshot


@pytest.fixture
def repo(tmp_path):
    """A copy of the template whose scripts/test passes or fails on demand, in one second instead of minutes."""
    repo = snapshot(tmp_path)
    # This repository's own changelog may have just been released, leaving nothing under "## Unreleased".
    changelog = repo / "CHANGELOG.md"
    changelog.write_text(changelog.read_text().replace("## Unreleased\n", "## Unreleased\n\n- A change.\n", 1))
    set_tests(repo, passing=True)
    return repo


def set_tests(repo, passing):
    (repo / "scripts/test").write_text(f"#!/bin/sh\nexit {0 if passing else 1}\n")
    commit_all(repo, "Tests that pass" if passing else "Tests that fail")


def release(repo, version):
    return subprocess.run([str(repo / "scripts/release"), version], cwd=repo, capture_output=True, text=True,
                          env=os.environ | COMMITTER)


def tags(repo):
    return git(repo, "tag", "--list").split()


def test_release_dates_the_changelog_commits_and_tags(repo):
    notes = (repo / "CHANGELOG.md").read_text().split("## Unreleased\n", 1)[1]
    result = release(repo, "0.1.0")
    assert result.returncode == 0, result.stderr
    today = datetime.datetime.now(datetime.timezone.utc).date().isoformat()
    assert f"## Unreleased\n\n## 0.1.0 - {today}\n{notes}" in (repo / "CHANGELOG.md").read_text()
    assert tags(repo) == ["v0.1.0"]
    assert git(repo, "log", "-1", "--format=%s").strip() == "Release 0.1.0"
    assert git(repo, "rev-parse", "v0.1.0^{commit}") == git(repo, "rev-parse", "HEAD")
    assert git(repo, "status", "--porcelain") == ""


def test_release_refuses_a_dirty_tree(repo):
    (repo / "README.md").write_text("changed\n")
    result = release(repo, "0.1.0")
    assert result.returncode == 1 and "uncommitted changes" in result.stderr
    assert tags(repo) == []


def test_release_refuses_failing_tests(repo):
    set_tests(repo, passing=False)
    changelog = (repo / "CHANGELOG.md").read_text()
    result = release(repo, "0.1.0")
    assert result.returncode == 1 and "the tests fail" in result.stderr
    assert tags(repo) == [] and (repo / "CHANGELOG.md").read_text() == changelog


@pytest.mark.parametrize("version", ["0.1.0", "0.0.9"])
def test_release_refuses_a_version_not_above_the_last(repo, version):
    assert release(repo, "0.1.0").returncode == 0
    (repo / "CHANGELOG.md").write_text((repo / "CHANGELOG.md").read_text().replace(
        "## Unreleased\n", "## Unreleased\n\n- A change.\n"))
    commit_all(repo, "A change")
    result = release(repo, version)
    assert result.returncode == 1 and "not above the last release, v0.1.0" in result.stderr
    assert tags(repo) == ["v0.1.0"]


def test_release_refuses_an_empty_unreleased_section(repo):
    assert release(repo, "0.1.0").returncode == 0
    result = release(repo, "0.2.0")
    assert result.returncode == 1 and "nothing under '## Unreleased'" in result.stderr
    assert tags(repo) == ["v0.1.0"]


@pytest.mark.parametrize("version", ["", "1.0", "v1.0.0"])
def test_release_wants_a_plain_version(repo, version):
    result = release(repo, version)
    assert result.returncode == 2 and "Usage: scripts/release X.Y.Z | --restore-tags | --untagged" in result.stderr


def test_restore_tags_tags_each_release_commit_that_lacks_its_tag_as_the_release_did(repo):
    assert release(repo, "0.1.0").returncode == 0
    message = git(repo, "tag", "--list", "--format=%(contents)", "v0.1.0")
    git(repo, "tag", "--delete", "v0.1.0")  # as a clone made with --no-tags has it
    assert release(repo, "--untagged").stdout == "0.1.0\n"
    restored = release(repo, "--restore-tags")
    commit = git(repo, "rev-parse", "--short", "HEAD").strip()
    assert (restored.returncode, restored.stderr) == (0, f"Tagged v0.1.0 at {commit}, its release commit.\n")
    assert tags(repo) == ["v0.1.0"] and git(repo, "rev-parse", "v0.1.0^{commit}") == git(repo, "rev-parse", "HEAD")
    assert git(repo, "tag", "--list", "--format=%(contents)", "v0.1.0") == message
    assert release(repo, "--restore-tags").stderr == "Every release commit has its tag.\n"


def test_release_refuses_while_release_tags_are_missing(repo):
    assert release(repo, "0.1.0").returncode == 0
    git(repo, "tag", "--delete", "v0.1.0")
    (repo / "CHANGELOG.md").write_text((repo / "CHANGELOG.md").read_text().replace(
        "## Unreleased\n", "## Unreleased\n\n- Another change.\n"))
    commit_all(repo, "Another change")
    result = release(repo, "0.2.0")
    assert result.returncode == 1
    assert "this clone lacks the tags of releases it has (0.1.0): scripts/release --restore-tags." in result.stderr
    assert tags(repo) == []
