"""How scripts/test spreads the template's tests over pytest-xdist's workers (`-n auto --dist loadgroup
--no-loadscope-reorder`): each group goes to one worker whole, the groups in the order they are collected.

Tests that use the same module-scoped fixture (a template with releases, an updated fork, a Nix store) share what it
made, so they are a group; every other test is a group of its own, free to run on any worker. The tests marked
fork_suite run a fork's whole suite, minutes each, so they start first and the other workers take the rest meanwhile."""

import pytest


def shared_fixtures(item) -> list[str]:
    "The module- or class-scoped fixtures the test uses, each with the index of its parameter if it has one."
    indices = item.callspec.indices if hasattr(item, "callspec") else {}
    return sorted(f"{name}{indices.get(name, '')}" for name, defs in item._fixtureinfo.name2fixturedefs.items()
                  if defs[-1].scope in ("module", "class"))


@pytest.hookimpl(wrapper=True)
def pytest_collection_modifyitems(items):
    for item in items:  # before xdist reads the marks; a test without one is a group of its own
        if shared := shared_fixtures(item):
            item.add_marker(pytest.mark.xdist_group(f"{item.module.__name__}:{','.join(shared)}"))
    yield
    items.sort(key=lambda item: item.get_closest_marker("fork_suite") is None)  # after pytest's ordering; stable
