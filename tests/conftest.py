"""How scripts/test spreads the template's tests over pytest-xdist's workers (`-n auto --dist loadgroup
--no-loadscope-reorder`): each group goes to one worker whole, the groups in the order they are collected.

A module is a group, as its tests share what its fixtures made (a template with releases, a Nix store), except that
test_update.py's updated forks are a group per flavour. The groups that run a fork's whole suite take minutes each,
most of the time, so they come first: the other worker takes the rest meanwhile."""

import pytest

from template_tools import SUITE_AFTER_UPDATE


def group(item) -> str:
    flavour = item.callspec.params.get("updated") if hasattr(item, "callspec") else None
    return f"{item.module.__name__}-{flavour}" if flavour else item.module.__name__  # xdist: no "]" at the end


def runs_a_whole_fork_suite(item) -> bool:
    return item.module.__name__ == "test_forks" or group(item) in {f"test_update-{f}" for f in SUITE_AFTER_UPDATE}


def pytest_collection_modifyitems(items):
    for item in items: item.add_marker(pytest.mark.xdist_group(group(item)))
    items.sort(key=lambda item: not runs_a_whole_fork_suite(item))  # stable: otherwise in the order collected
