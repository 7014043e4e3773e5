"""./run check (fork_check.py) names each call of your code that the template's modules no longer take, and is
quiet on code that fits: every module here, the template's own included, checked as if it were yours."""

import os
import subprocess
import sys
from pathlib import Path


ROOT = Path(__file__).resolve().parent.parent
# Code of a fork's own that calls a template module (this one: every flavour has it, and it imports little).
MINE = '''from core.update import fork_check
import module_that_is_gone


def add(text: str):  # a POST route's handler
    found = fork_check.misfits()
    return fork_check.helper_that_is_gone(found)
'''


def check(*paths, env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "core.update.fork_check", *map(str, paths)], capture_output=True,
                          text=True, timeout=600, env=os.environ | (env or {}))


def test_every_module_here_checked_as_yours_is_quiet():
    files = sorted(path.relative_to(ROOT) for folder in (ROOT, *ROOT.glob("core/**/"), ROOT / "plugins", ROOT / "tests")
                   for path in folder.glob("*.py"))
    result = check(*files)
    assert result.returncode == 0, result.stderr
    assert f"Your code fits the template's modules ({len(files)} file(s) of yours checked)." in result.stderr


def test_each_call_that_no_longer_fits_is_named_with_its_file_and_line(tmp_path):
    mine = tmp_path / "500_mine.py"
    mine.write_text(MINE)
    # A cache of its own: mypy's would know a module of this name from another run, at another path.
    result = check(mine, env={"MYPY_CACHE_DIR": str(tmp_path / "cache")})
    assert result.returncode == 1
    assert result.stderr.startswith("Your code no longer fits the template's modules here (mypy):\n")
    for line, message in [(2, 'Cannot find implementation or library stub for module named "module_that_is_gone"'),
                          (6, 'Missing positional argument "paths" in call to "misfits"'),
                          (7, 'Module has no attribute "helper_that_is_gone"')]:
        assert f"  {mine}:{line}: error: {message}" in result.stderr
