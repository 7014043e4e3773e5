"""Forks made before the template's modules moved into core/ update across the move. The release before it is this
repository's own commit before the move (from its git history), tagged v0.1.0 here; the template as it is now is
v0.2.0, with the migration that rewrites a fork's own imports. A fork of every flavour, customised in a moved file
and an unmoved one, with its own plugin importing five of the moved modules (a name of one the move split, from its
part), its own test and a notebook importing the crawler, data and settings, takes it: its edit in the moved file is
merged into the new path and named in a non-zero exit, every other edit is kept byte for byte (or rewritten by the
migration, which prints each line), the plugin loads, the notebook runs and the fork's tests pass."""

import json
import subprocess
from pathlib import Path
from types import SimpleNamespace

import pytest

from template_tools import FLAVOURS, ROOT, commit_all, git, render, snapshot
from test_update import ENV, append, release, run

EDIT = "\n# Acme's note in a template module.\n"
PLUGIN = '''"""Acme's own app: it uses five of the template's modules."""

import config
from crawler import Settings
from explore import Column
from url_checker import normal_url
from workflows import Step, run_label

from fasthtml.common import *

NAME = "acme"
DISPLAY_NAME = "Acme"
USES = (config.DATA_DIR, Settings, Column, normal_url, Step, run_label)


def setup(plugin):
    @plugin.page
    def view():
        return H2(f"Acme's own app: {normal_url('example.com')}")
'''
TEST = '''from url_checker import normal_url


def test_acme_app_is_loaded(server):
    assert server.PLUGINS["acme"].display_name == "Acme"
    assert normal_url("example.com") == "https://example.com"
'''
NOTEBOOK_CODE = ("import sys\nfrom pathlib import Path\n\nsys.path.insert(0, str(Path.cwd().parent))\n"
                 "from crawler import Crawl, Settings\n\nprint(Crawl.__module__)")
NOTEBOOK = {"cells": [{"cell_type": "code", "execution_count": None, "id": "acme", "metadata": {}, "outputs": [],
                       "source": NOTEBOOK_CODE}],
            "metadata": {"kernelspec": {"display_name": "Python 3", "language": "python", "name": "python3"}},
            "nbformat": 4, "nbformat_minor": 5}
SETTINGS = 'name = "Acme Bench"\n'
DATA = {"data/acme.csv": "id,name\n1,Acme\n"}


def before_the_move() -> str:
    "This repository's commit before the modules moved into core/: the parent of the commit that made core/."
    made = git(ROOT, "log", "--diff-filter=A", "--format=%H", "--", "template/core/__init__.py").split()
    assert made, "the layout test needs this repository's history (a clone with its whole history)"
    return f"{made[-1]}^"


@pytest.fixture(scope="module")
def template(tmp_path_factory):
    "v0.1.0: the template before the move; v0.2.0: the template as it is now, with the move's migration."
    repo = tmp_path_factory.mktemp("layout-template")
    archive = subprocess.run(["git", "archive", before_the_move()], cwd=ROOT, capture_output=True, check=True).stdout
    subprocess.run(["tar", "-x", "-C", str(repo)], input=archive, check=True)
    release(repo, "0.1.0")
    git(repo, "rm", "-r", "--quiet", ".")
    snapshot(repo, layout_migration=True)
    release(repo, "0.2.0")
    return repo


@pytest.fixture(scope="module", params=FLAVOURS)
def updated(request, template, tmp_path_factory):
    fork = render(tmp_path_factory.mktemp(request.param) / "fork", src=template, vcs_ref="v0.1.0",
                  flavour=request.param)
    has_server = (fork / "server.py").exists()
    moved, new_path = ("url_checker.py", "core/seo/url_checker.py") if has_server else \
        ("template_merge.py", "core/update/template_merge.py")
    append(fork / moved, EDIT)
    append(fork / "README.md", EDIT)
    mine = {}
    if has_server:
        append(fork / "server.py", EDIT)
        append(fork / "crawler.py", EDIT)  # moved and split in four: too changed to take the edit, so kept as it is
        mine = {"plugins/500_acme.py": PLUGIN, "tests/test_acme.py": TEST,
                "settings.toml": (fork / "settings.toml").read_text() + SETTINGS}
    if (fork / "notebooks").is_dir() and has_server:
        mine["notebooks/acme_crawl.ipynb"] = json.dumps(NOTEBOOK, indent=1) + "\n"
    for path, text in (mine | DATA).items():
        (fork / path).parent.mkdir(exist_ok=True)
        (fork / path).write_text(text)
    commit_all(fork, "Customise")
    refused = run(fork, "update", "--no-test")
    result = run(fork, "update", "--trust", "--no-test")
    return SimpleNamespace(fork=fork, has_server=has_server, moved=moved, new_path=new_path, mine=mine,
                           refused=refused, result=result)


def test_the_update_asks_for_trust_then_names_the_edited_moved_file_in_a_non_zero_exit(updated):
    assert updated.refused.returncode == 4, updated.refused.stderr
    assert updated.result.returncode == 1, updated.result.stderr
    assert (f"  {updated.moved} -> {updated.new_path}: renamed by the template; your changes are merged into "
            f"{updated.new_path}. Check it, then git add {updated.new_path}.") in updated.result.stderr
    if updated.has_server:
        assert ("  crawler.py: deleted by the template; your version is kept here. git rm crawler.py to follow the "
                "template, or git add crawler.py to keep it as a file of your own.") in updated.result.stderr


def test_every_edit_is_kept(updated):
    fork = updated.fork
    assert (fork / updated.new_path).read_text().endswith(EDIT) and not (fork / updated.moved).exists()
    assert [path for path in ("README.md", *(["server.py", "crawler.py"] if updated.has_server else []))
            if not (fork / path).read_text().endswith(EDIT)] == []
    assert {path: (fork / path).read_text() for path in DATA} == DATA
    if updated.has_server:
        assert (fork / "settings.toml").read_text().endswith(SETTINGS)


def test_the_migration_rewrites_the_forks_imports_and_prints_each_line(updated):
    if not updated.has_server:
        assert "your code that imports them" not in updated.result.stderr
        return
    plugin = (updated.fork / "plugins/500_acme.py").read_text()
    assert plugin == PLUGIN.replace("import config\n", "from core import config\n").replace(
        "from crawler import", "from core.seo.crawler import").replace("from explore import", "from core.explore import"
    ).replace("from url_checker import", "from core.seo.url_checker import").replace(
        "from workflows import Step, run_label",
        "from core.workflows import Step\nfrom core.workflows.runs import run_label")
    assert "  plugins/500_acme.py:4: from crawler import Settings  ->  from core.seo.crawler import Settings" \
        in updated.result.stderr
    assert ("  plugins/500_acme.py:7: from workflows import Step, run_label  ->  from core.workflows import Step; "
            "from core.workflows.runs import run_label") in updated.result.stderr
    assert "  tests/test_acme.py:1: from url_checker import normal_url  ->  from core.seo.url_checker import " \
           "normal_url" in updated.result.stderr


def test_the_plugin_loads_the_notebook_runs_and_the_forks_tests_pass(updated):
    fork = updated.fork
    if updated.has_server: git(fork, "rm", "--quiet", "--force", "crawler.py")  # as the update says, to follow it
    git(fork, "add", "--all")
    checked = run(fork, "check")  # the fork's own code against the new modules, as ./run update checks it
    assert checked.returncode == 0, checked.stderr
    result = run(fork, "test", "tests/test_acme.py" if updated.has_server else "tests/test_data_stack.py")
    assert result.returncode == 0, result.stdout[-5000:]
    if "notebooks/acme_crawl.ipynb" in updated.mine:
        ran = subprocess.run([str(fork / ".venv/bin/jupyter"), "nbconvert", "--to", "notebook", "--execute",
                              "--stdout", "notebooks/acme_crawl.ipynb"], cwd=fork, env=ENV, capture_output=True,
                             text=True, timeout=600)
        assert ran.returncode == 0, ran.stderr
        assert "core.seo.crawler" in ran.stdout
