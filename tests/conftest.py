"""How scripts/test spreads the template's tests over pytest-xdist's workers (`-n auto --dist loadgroup`): each
module goes to one worker whole, as its tests share what its fixtures made (a template with releases, a Nix store),
except that test_update.py's updated forks are a group per flavour. Those three updates, each running its fork's
suite, are most of the time, so they come first: the other worker takes the rest meanwhile."""

import pytest


def group(item) -> str:
    flavour = item.callspec.params.get("updated") if hasattr(item, "callspec") else None
    return f"{item.module.__name__}-{flavour}" if flavour else item.module.__name__  # xdist: no "]" at the end


def pytest_collection_modifyitems(items):
    for item in items: item.add_marker(pytest.mark.xdist_group(group(item)))
    items.sort(key=lambda item: group(item) == item.module.__name__)  # stable: the updated forks first
