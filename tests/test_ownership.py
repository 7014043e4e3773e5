"""Every rendered file has exactly one owner, the one copier.yml gives it, and the "What you may edit" tables in
the template's README and in every fork's README say the same: no file in two classes, no file in none."""

import re

import pytest
from pathspec import PathSpec

from template_tools import FLAVOURS, QUESTIONS, ROOT, render

TEMPLATE, YOURS, NEVER_TOUCHED = "template", "yours", "never touched"
SKIP_IF_EXISTS = QUESTIONS["_skip_if_exists"]
# The flavour-specific entries of _exclude (Jinja conditions) keep files out of one flavour; the others are the
# paths no update ever writes or deletes.
EXCLUDED = [entry for entry in QUESTIONS["_exclude"] if "{%" not in entry]
# What the template can render; a fork-owned path it never renders (flake.lock, which the fork's first nix develop
# writes) is the fork's in every flavour.
TEMPLATE_FILES = [p.relative_to(ROOT / "template").as_posix().removesuffix(".jinja")
                  for p in (ROOT / "template").rglob("*") if p.is_file()]


def matches(patterns: list[str], path: str) -> bool:
    # The same gitignore-style matching copier uses for _skip_if_exists and _exclude.
    return PathSpec.from_lines("gitignore", patterns).match_file(path)


def matches_any(pattern: str, paths: list[str]) -> bool:
    return any(matches([pattern], path) for path in paths)


def owner(path: str) -> str:
    return YOURS if matches(SKIP_IF_EXISTS, path) else TEMPLATE


def ownership_table(readme: str) -> dict[str, list[str]]:
    """The "What you may edit" table: owner -> the backquoted path patterns of its rows."""
    section = readme.split("\n## What you may edit\n", 1)[1].split("\n## ", 1)[0]
    table = {}
    for line in section.splitlines():
        cells = [cell.strip() for cell in line.strip("| ").split(" | ")]
        if line.startswith("|") and len(cells) == 3 and cells[1] in (TEMPLATE, YOURS, NEVER_TOUCHED):
            table.setdefault(cells[1], []).extend(re.findall(r"`([^`]+)`", cells[0]))
    return table


def misfiled(files: list[str], table: dict[str, list[str]]) -> list[str]:
    """Files the table puts in no class, in two, or in another than copier.yml's."""
    problems = []
    for path in files:
        classes = [cls for cls, patterns in table.items() if matches(patterns, path)]
        if classes != [owner(path)]:
            problems.append(f"{path}: {owner(path)} in copier.yml, {' and '.join(classes) or 'nothing'} in the table")
    return problems


@pytest.fixture(scope="module", params=FLAVOURS)
def fork(request, tmp_path_factory):
    root = render(tmp_path_factory.mktemp(request.param), flavour=request.param)
    files = sorted(p.relative_to(root).as_posix() for p in root.rglob("*") if p.is_file())
    return root, files


def test_fork_readme_table_files_every_file_as_copier_yml_does(fork):
    root, files = fork
    assert misfiled(files, ownership_table((root / "README.md").read_text())) == []


def test_template_readme_table_files_every_file_as_copier_yml_does(fork):
    _, files = fork
    assert misfiled(files, ownership_table((ROOT / "README.md").read_text())) == []


def test_template_readme_table_lists_exactly_the_copier_yml_lists():
    table = ownership_table((ROOT / "README.md").read_text())
    assert sorted(table[YOURS]) == sorted(SKIP_IF_EXISTS)
    assert sorted(pattern.rstrip("/") for pattern in table[NEVER_TOUCHED]) == sorted(EXCLUDED)


def test_fork_readme_table_lists_the_copier_yml_lists_that_apply(fork):
    root, files = fork
    table = ownership_table((root / "README.md").read_text())
    theirs = [pattern for pattern in SKIP_IF_EXISTS
              if matches_any(pattern, files) or not matches_any(pattern, TEMPLATE_FILES)]
    assert sorted(table[YOURS]) == sorted(theirs)
    assert sorted(pattern.rstrip("/") for pattern in table[NEVER_TOUCHED]) == sorted(EXCLUDED)
