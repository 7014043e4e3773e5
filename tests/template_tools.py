"""Helpers shared by the template's tests and scripts: the flavour matrix and rendering."""

import os
import re
import shutil
import subprocess
import tempfile
import tomllib
from pathlib import Path

import copier
import yaml

ROOT = Path(__file__).resolve().parent.parent
QUESTIONS = yaml.safe_load((ROOT / "copier.yml").read_text())
FLAVOURS = QUESTIONS["flavour"]["choices"]
# Each flavour's fork runs its whole test suite once in scripts/test: these after an update (tests/test_update.py),
# the others on a fresh render (tests/test_forks.py). Botifython has every module pipulate has but for its deleted
# plugin, whose tests pipulate's fresh fork runs.
SUITE_AFTER_UPDATE = {"darwinix", "botifython"}
SUITE_WHEN_FRESH = [flavour for flavour in FLAVOURS if flavour not in SUITE_AFTER_UPDATE]


def render(dst: Path, src: Path = ROOT, vcs_ref: str = "HEAD", **answers) -> Path:
    """Render a fork into dst through copier's API, taking defaults for every unanswered question."""
    copier.run_copy(str(src), dst, data=answers, defaults=True, vcs_ref=vcs_ref, quiet=True)
    return dst


def git(cwd: Path, *args: str) -> str:
    return subprocess.run(["git", *args], cwd=cwd, check=True, capture_output=True, text=True).stdout


def flavour_requirements() -> set[str]:
    """Every requirement any flavour declares, test extras included (scripts/lock pins these)."""
    requirements = set()
    for flavour in FLAVOURS:
        with tempfile.TemporaryDirectory() as tmp:
            project = tomllib.loads((render(Path(tmp), flavour=flavour) / "pyproject.toml").read_text())["project"]
            requirements.update(project["dependencies"])
            for extra in project.get("optional-dependencies", {}).values():
                requirements.update(extra)
    return requirements


COMMITTER = {"GIT_AUTHOR_NAME": "Template tests", "GIT_AUTHOR_EMAIL": "tests@localhost",
             "GIT_COMMITTER_NAME": "Template tests", "GIT_COMMITTER_EMAIL": "tests@localhost"}


def commit_all(repo: Path, message: str) -> None:
    """Commit everything in repo (git init first if needed), with a fixed identity so it works on any machine."""
    if not (repo / ".git").exists():
        git(repo, "init", "--quiet", "--initial-branch=main")
    git(repo, "add", "--all")
    subprocess.run(["git", "commit", "--quiet", "--allow-empty", "-m", message], cwd=repo, check=True,
                   env=os.environ | COMMITTER)


# The migration of the move into core/ (0.2.0). The releases the tests tag on a snapshot all have the modules in
# core/, so it has nothing to move in their forks, yet copier would ask every update that crosses it for --trust:
# snapshots leave it out, and tests/test_update_layout.py crosses it from the release before the move.
LAYOUT_MIGRATION = re.compile(r'^  - version: "0\.2\.0"\n    command: .*/modules_into_core\.py"\]\n', re.M)


def snapshot(dst: Path, layout_migration: bool = False) -> Path:
    """A git repository in dst with the template as it is now, uncommitted changes included: tests that tag
    releases of their own work on it, while the real working tree may change under them."""
    for name in git(ROOT, "ls-files", "-z", "--cached", "--others", "--exclude-standard").split("\0"):
        source = ROOT / name
        if name and not name.startswith(".venv/") and source.is_file():
            (dst / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, dst / name)
    if not layout_migration:
        (dst / "copier.yml").write_text(LAYOUT_MIGRATION.sub("", (dst / "copier.yml").read_text()))
    commit_all(dst, "Template snapshot")
    return dst
